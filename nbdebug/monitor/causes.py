"""The known causes of each problem, what the monitor says of each, and each cause's fix.

Kept apart from the rules and from :mod:`nbdebug.monitor.diagnosis` (which picks a cause), like
:mod:`nbdebug.monitor.messages`: text only. ``CAUSE_TEXT`` and ``FIXES`` are keyed by code, then
cause; a fix is a snippet, or a dict of snippets by architecture family
(``diagnosis.Architecture.family``, with "default"). Templates are ``str.format``-ed with the
warning's evidence, so snippets hold no braces.
"""

from __future__ import annotations

_LOWER_LR = (
    "# a 10x smaller learning rate, and clipping while you look for the right one\n"
    "for group in optimizer.param_groups:\n"
    "    group['lr'] *= 0.1\n"
    "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # after loss.backward()"
)
_REINIT = (
    "# back to PyTorch's default initialisation (or He initialisation for ReLU layers)\n"
    "for m in model.modules():\n"
    "    if isinstance(m, (nn.Linear, nn.Conv2d)):\n"
    "        m.reset_parameters()  # or nn.init.kaiming_normal_(m.weight, nonlinearity='relu')"
)
_STANDARDIZE = (
    "# standardize each feature with training statistics\n"
    "mean, std = X_train.mean(0), X_train.std(0).clamp_min(1e-8)\n"
    "X_train, X_val = (X_train - mean) / std, (X_val - mean) / std"
)
_DROP_NAN = (
    "# find and drop (or impute) the samples holding NaN or Inf\n"
    "keep = torch.isfinite(X_train).flatten(1).all(dim=1)\n"
    "X_train, y_train = X_train[keep], y_train[keep]"
)

# ReLU-family activations in place of saturating ones, in each architecture's terms.
_ACTIVATIONS = {
    "default": (
        "# ReLU-family activations and batch normalization keep gradients alive\n"
        "nn.Sequential(nn.Linear(d_in, 64), nn.BatchNorm1d(64), nn.ReLU(),\n"
        "              nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),\n"
        "              nn.Linear(64, n_classes))"
    ),
    "convolutional": (
        "# ReLU after each convolution, with batch normalization before it\n"
        "nn.Sequential(nn.Conv2d(c_in, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), ...)"
    ),
    "transformer": (
        "# GELU in the feed-forward blocks and LayerNorm before each sublayer (pre-LN)\n"
        "ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))\n"
        "x = x + attention(norm1(x)); x = x + ffn(norm2(x))"
    ),
    "recurrent": (
        "# keep the gates' sigmoids inside nn.LSTM / nn.GRU; use no extra sigmoid or tanh layers\n"
        "rnn = nn.LSTM(d_in, 64, batch_first=True)"
    ),
}

# The known causes of each problem, one sentence each on what the evidence points at.
CAUSE_TEXT: dict[str, dict[str, str]] = {
    "vanishing_gradient": {
        "saturating_activations": (
            "the stack of saturating activations (sigmoid or tanh) squashes the gradient at every layer"
        ),
        "initialization": "the initial weights are too small to pass the gradient back",
        "recurrence": "a plain RNN multiplies the gradient by the same weights at every time step",
    },
    "exploding_gradient": {
        "learning_rate": "the learning rate is too high: each update makes the next gradient larger",
        "initialization": (
            "the initial weights are scaled up (largest rms(weight) x sqrt(fan_in) is well above PyTorch's defaults)"
        ),
        "unnormalized_input": "the inputs are not normalized, so the first layer's gradients are huge",
    },
    "dying_relu": {
        "initialization": (
            "the units were dead on the initial weights, before any update: the initialisation (e.g. negative "
            "biases) switches them off"
        ),
        "learning_rate": (
            "the units died during training: updates too large for this learning rate pushed them where they output 0"
        ),
    },
    "oscillating_loss": {
        "learning_rate": "the learning rate is too high for this model and batch size",
        "small_batch": "batches this small make each update noisy",
    },
    "slow_convergence": {
        "learning_rate": "the learning rate is too small for this optimizer",
        "frozen_parameters": "most parameters are not trained (frozen, or not in the optimizer)",
        "optimizer": "plain SGD without momentum is slow on this model",
        "saturating_activations": "saturating activations (sigmoid or tanh) between the layers slow learning down",
    },
    "improper_output_activation": {
        "output_activation": "the output activation does not match the loss",
    },
    "improper_loss": {
        "loss": "the loss does not match the task",
    },
    "abnormal_data": {
        "nan_in_data": "the data holds NaN or Inf values",
        "unnormalized_input": "the inputs are not normalized",
        "initialization": "the initial weights are scaled up, so values grow from layer to layer",
        "learning_rate": "the learning rate is too high and the weights have grown out of range",
    },
    "overfitting": {
        "no_regularization": "the model fits the training set without regularization",
        "label_noise": (
            "the model is memorizing training samples whose labels look wrong (see the memorization warning)"
        ),
    },
    "unnormalized_input": {
        "raw_pixels": "the values look like raw pixel intensities (non-negative, up to 255)",
        "unscaled_features": "the features are on their raw scale",
    },
    "nan_loss": {
        "learning_rate": "the learning rate is too high and training diverged",
        "nan_in_data": "the data holds NaN or Inf values",
        "initialization": "the initial weights are scaled up and training diverged",
        "unnormalized_input": "the inputs are not normalized and training diverged",
    },
    "class_collapse": {
        "learning_rate": "updates too large for this learning rate destroyed the features",
        "dead_representation": "every sample now has the same representation (e.g. every unit before the head is dead)",
    },
    "memorizing_noisy_labels": {
        "label_noise": "these labels are probably wrong",
    },
}

# The known causes of each problem (a warning's ``cause`` is one of its code's).
CAUSES: dict[str, tuple[str, ...]] = {code: tuple(causes) for code, causes in CAUSE_TEXT.items()}

FIXES: dict[str, dict[str, str | dict[str, str]]] = {
    "saturating_activations": {"saturating_activations": _ACTIVATIONS},  # the static check
    "vanishing_gradient": {
        "saturating_activations": _ACTIVATIONS,
        "initialization": _REINIT,
        "recurrence": (
            "# gated cells keep gradients alive over time; clip the rest\n"
            "rnn = nn.LSTM(d_in, 64, batch_first=True)  # or nn.GRU, instead of nn.RNN\n"
            "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)"
        ),
    },
    "exploding_gradient": {
        "learning_rate": _LOWER_LR,
        "initialization": _REINIT,
        "unnormalized_input": _STANDARDIZE,
    },
    "dying_relu": {
        "initialization": (
            "# biases at 0 and He initialisation: every unit starts alive\n"
            "for m in model.modules():\n"
            "    if isinstance(m, (nn.Linear, nn.Conv2d)):\n"
            "        nn.init.kaiming_normal_(m.weight, nonlinearity='relu'); nn.init.zeros_(m.bias)"
        ),
        "learning_rate": (
            "# a smaller learning rate; LeakyReLU keeps a small gradient if units still die\n"
            "for group in optimizer.param_groups:\n"
            "    group['lr'] *= 0.1\n"
            "nn.LeakyReLU(0.01)  # instead of nn.ReLU()"
        ),
    },
    "oscillating_loss": {
        "learning_rate": (
            "# a smaller learning rate (and/or a larger batch) usually steadies training\n"
            "for group in optimizer.param_groups:\n"
            "    group['lr'] *= 0.1"
        ),
        "small_batch": "loader = DataLoader(train_set, batch_size=64, shuffle=True)",
    },
    "slow_convergence": {
        "learning_rate": (
            "# a larger learning rate, or an adaptive optimizer\n"
            "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)"
        ),
        "frozen_parameters": (
            "# train every parameter: unfreeze them and give them all to the optimizer\n"
            "for p in model.parameters():\n"
            "    p.requires_grad_(True)\n"
            "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)"
        ),
        "optimizer": "optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)  # or Adam(lr=1e-3)",
        "saturating_activations": (
            "# ReLU-family activations learn faster than sigmoid or tanh hidden layers\n"
            "nn.ReLU()  # (GELU in a transformer) instead of nn.Sigmoid() / nn.Tanh()"
        ),
    },
    "abnormal_data": {
        "nan_in_data": _DROP_NAN,
        "unnormalized_input": _STANDARDIZE,
        "initialization": _REINIT,
        "learning_rate": _LOWER_LR,
    },
    "overfitting": {
        "no_regularization": (
            "# regularize: weight decay, dropout, a smaller model, or stop early\n"
            "optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)\n"
            "# and keep the weights of the epoch with the best validation accuracy"
        ),
        "label_noise": (
            "# look at the samples the memorization warning counts, and relabel or drop them\n"
            "widget = nbdebug.show(run)  # the misplaced samples; relabel them in the panel\n"
            "labels = nbdebug.Session(run).corrected_labels()"
        ),
    },
    "unnormalized_input": {
        "raw_pixels": "X_train, X_val = X_train / 255.0, X_val / 255.0  # pixels stored as 0-255",
        "unscaled_features": _STANDARDIZE,
    },
    "nan_loss": {
        "learning_rate": (
            "# lower the learning rate (often by 10x or more) and restart from fresh weights\n"
            "optimizer = torch.optim.SGD(model.parameters(), lr=0.01)"
        ),
        "nan_in_data": _DROP_NAN,
        "initialization": _REINIT,
        "unnormalized_input": _STANDARDIZE,
    },
    "class_collapse": {
        "learning_rate": _LOWER_LR,
        "dead_representation": "# look for dead units before the head (the monitor's dying_relu warning), then\n"
        + _LOWER_LR,
    },
    "memorizing_noisy_labels": {
        "label_noise": (
            "# inspect the samples, relabel the wrong ones, and retrain on the corrected labels\n"
            "widget = nbdebug.show(run)  # the misplaced samples; relabel them in the panel\n"
            "labels = nbdebug.Session(run).corrected_labels()"
        ),
    },
}


def fix_for(code: str, cause: str, family: str) -> str | None:
    """The fix template of ``cause`` for this architecture family; None if it has none (the
    message's own fix stands)."""
    fix = FIXES.get(code, {}).get(cause)
    if isinstance(fix, dict):
        return fix.get(family, fix["default"])
    return fix
