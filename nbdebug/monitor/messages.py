"""The monitor's message catalogue: the text of every warning, kept apart from the rules.

Each code has a severity, a title, an explanation and a fix; explanations and fixes are
``str.format`` templates over the warning's evidence (plus ``step`` and ``epoch``). The
templates and snippets here can be edited without touching any logic.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Message:
    """The text of one warning: its severity, a title, and templates formatted with its evidence."""

    severity: str
    title: str
    explanation: str  # str.format template over the evidence
    fix: str


MESSAGES: dict[str, Message] = {
    "vanishing_gradient": Message(
        WARNING,
        "Gradients vanish before they reach the first layers",
        "The gradient reaching the first layer ({first_layer}, norm {first_norm:.2e}) is "
        "{ratio:.1e} times the one at the last layer ({last_layer}), and accuracy is still low "
        "(best {best_acc}). The early layers then barely learn. This is typical of deep stacks "
        "of sigmoid or tanh activations; it may also be a badly scaled initialisation.",
        "# ReLU-family activations and batch normalization keep gradients alive\n"
        "nn.Sequential(nn.Linear(d_in, 64), nn.BatchNorm1d(64), nn.ReLU(),\n"
        "              nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),\n"
        "              nn.Linear(64, n_classes))",
    ),
    "exploding_gradient": Message(
        WARNING,
        "Gradients grow out of control",
        "{detail} Accuracy is still low (best {best_acc}). Updates this large throw the "
        "weights around instead of improving them. The usual causes are a learning rate that "
        "is too high or a weight initialisation that is too large.",
        "loss.backward()\n"
        "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
        "optimizer.step()\n"
        "# and/or lower the learning rate, e.g. for Adam:\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)",
    ),
    "dying_relu": Message(
        WARNING,
        "Most ReLU units have stopped learning",
        "{dead_pct:.0f}% of the hidden units ({dead} of {total}) got exactly zero gradient at "
        "step {step} while accuracy is still low (best {best_acc}). A ReLU that outputs 0 for "
        "every input passes no gradient back, so it may never recover. A learning rate that "
        "is too high, or large negative biases, often cause this.",
        "# LeakyReLU keeps a small gradient for negative inputs\n"
        "nn.LeakyReLU(0.01)  # instead of nn.ReLU()\n"
        "# and/or a smaller learning rate and He initialisation:\n"
        "nn.init.kaiming_normal_(layer.weight, nonlinearity='relu'); nn.init.zeros_(layer.bias)",
    ),
    "oscillating_loss": Message(
        WARNING,
        "Training accuracy swings up and down",
        "Over {epochs} epochs the training accuracy rose and fell again by at least "
        "{zeta:.0%} {swings} times (swings: {amplitudes}). Steady training climbs more or "
        "less smoothly; large swings usually mean the learning rate is too high for the batch "
        "size, though a very noisy dataset can look similar.",
        "# a smaller learning rate (and/or a larger batch) usually steadies training\n"
        "for group in optimizer.param_groups:\n"
        "    group['lr'] *= 0.1\n"
        "loader = DataLoader(train_set, batch_size=128, shuffle=True)",
    ),
    "slow_convergence": Message(
        WARNING,
        "Accuracy is barely improving",
        "Training accuracy has not gained more than {delta:.0%} in any epoch for {epochs} "
        "epochs (accuracy by epoch: {accs}) and is still low. The model may be stuck; "
        "a learning rate that is too small is the most common cause, but it could also be "
        "the initialisation or the optimizer.",
        "# try a larger learning rate or an adaptive optimizer\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)",
    ),
    "improper_output_activation": Message(
        WARNING,
        "The last layer's activation does not fit the task and loss",
        "The targets look like a {task} task and the loss is {loss}, which expects {expected}, "
        "but the model's outputs look like they come from {activation} (seen at step {step}). "
        "With accuracy still low (best {best_acc}) this mismatch is a likely reason.",
        "{fix}",
    ),
    "improper_loss": Message(
        WARNING,
        "The loss function does not fit the task",
        "The targets and outputs look like a {task} task, but the loss is {loss}; usual "
        "choices are {expected}. Accuracy is still low (best {best_acc}), which this mismatch "
        "would explain. If your task really is different, ignore this.",
        "{fix}",
    ),
    "abnormal_data": Message(
        WARNING,
        "Abnormal values flow through the network",
        "{detail} Accuracy is still low (best {best_acc}). NaN or Inf values in the data, or "
        "data on a very large scale, make training hard to converge.",
        "# drop samples with NaN/Inf and standardize features using training statistics\n"
        "keep = torch.isfinite(X_train).all(dim=1)\n"
        "X_train, y_train = X_train[keep], y_train[keep]\n"
        "mean, std = X_train.mean(0), X_train.std(0).clamp_min(1e-8)\n"
        "X_train, X_val = (X_train - mean) / std, (X_val - mean) / std",
    ),
    "overfitting": Message(
        WARNING,
        "The model may be overfitting",
        "Validation accuracy fell from its best {peak_epochs_ago} epochs ago in the last two epochs "
        "({val}) while training accuracy rose ({train}). The fall is more than {margin:.1%}, more "
        "than the validation set's size lets accuracy wobble by chance. The model is probably "
        "memorizing the training data instead of learning patterns that generalize.",
        "# regularize: weight decay, dropout, a smaller model, or stop early\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n"
        "nn.Dropout(0.3)  # between hidden layers\n"
        "# keep the weights of the epoch with the best validation accuracy",
    ),
    "unnormalized_input": Message(
        WARNING,
        "Inputs do not look normalized",
        "The input batch at step {step} has a typical size (root-mean-square) of {rms:.3g}, mean "
        "|x| = {mean_abs:.3g} and largest |x| = {max_abs:.3g}; inputs are conventionally scaled to "
        "about [-1, 1] or standardized. "
        "Raw pixel values (0-255) are a common cause. If the scale is intentional, ignore this.",
        "# scale with statistics of the training set\n"
        "X_train = X_train / 255.0  # images stored as 0-255\n"
        "# or standardize each feature:\n"
        "mean, std = X_train.mean(0), X_train.std(0).clamp_min(1e-8)\n"
        "X_train, X_val = (X_train - mean) / std, (X_val - mean) / std",
    ),
    "nan_loss": Message(
        ERROR,
        "The loss became NaN or infinite",
        "The loss was {loss} at step {step} (epoch {epoch}). Once the loss is NaN the weights "
        "are usually NaN too and training cannot recover. Most often a hyperparameter is out "
        "of range, typically the learning rate; NaN/Inf in the data or a log of zero in a "
        "custom loss are other causes.",
        "# lower the learning rate (often by 10x or more) and restart from fresh weights\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.01)\n"
        "# check the data: torch.isfinite(X_train).all()",
    ),
    "softmax_before_cross_entropy": Message(
        WARNING,
        "Softmax before CrossEntropyLoss",
        "The model ends with {layer} (Softmax), but nn.CrossEntropyLoss applies log-softmax "
        "itself. Softmax applied twice squashes the gradients and slows or stalls learning.",
        "# return raw scores (logits); apply softmax only to read probabilities\n"
        "model = nn.Sequential(..., nn.Linear(64, n_classes))  # no nn.Softmax at the end\n"
        "probs = model(x).softmax(dim=1)  # at prediction time",
    ),
    "bce_without_sigmoid": Message(
        ERROR,
        "BCELoss without a sigmoid",
        "The loss is nn.BCELoss, which expects probabilities in [0, 1], but the model ends "
        "with {layer} ({layer_type}), not a sigmoid. If your forward() applies torch.sigmoid "
        "itself, ignore this; otherwise use BCEWithLogitsLoss, which is also more stable.",
        "loss_fn = nn.BCEWithLogitsLoss()  # takes raw scores, applies the sigmoid itself",
    ),
    "cross_entropy_one_output": Message(
        ERROR,
        "CrossEntropyLoss with a single output unit",
        "The last layer {layer} has one output unit, but nn.CrossEntropyLoss needs one score "
        "per class; with one unit the softmax is always 1 and nothing is learned.",
        "# two classes: either two output units with CrossEntropyLoss ...\n"
        "nn.Linear(64, 2)\n"
        "# ... or one unit with BCEWithLogitsLoss and float targets\n"
        "loss_fn = nn.BCEWithLogitsLoss(); loss = loss_fn(model(x).squeeze(1), y.float())",
    ),
    "linear_without_activation": Message(
        WARNING,
        "Linear layers with no nonlinearity between them",
        "{pairs} follow each other with no activation in between. Two linear layers in a row "
        "collapse into one linear map, so the extra layer adds no expressive power.",
        "nn.Sequential(nn.Linear(d_in, 64), nn.ReLU(), nn.Linear(64, n_classes))",
    ),
    "dropout_too_high": Message(
        WARNING,
        "Dropout probability above 0.5",
        "{layers} drop more than half of the units on every step. That much noise usually "
        "slows or prevents learning; 0.1-0.5 is the usual range.",
        "nn.Dropout(0.3)",
    ),
    "learning_rate_range": Message(
        WARNING,
        "Learning rate outside the usual range",
        "{optimizer} has lr = {lr:g}; the usual range for it is about {low:g} to {high:g}. "
        "{consequence} This range is a rule of thumb, not a law.",
        "optimizer = torch.optim.{optimizer}(model.parameters(), lr={suggested:g})",
    ),
    "saturating_activations": Message(
        WARNING,
        "Sigmoid or tanh activations between layers",
        "{n} sigmoid or tanh activations sit between the layers ({layers}). They saturate for large "
        "inputs, where their gradient is almost 0, so a stack of them usually learns slowly or not "
        "at all in the early layers; ReLU-family activations train faster. If they are "
        "deliberate (e.g. gates you wrote yourself), ignore this.",
        "nn.ReLU()  # instead of nn.Sigmoid() / nn.Tanh() between layers",
    ),
    "frozen_parameters": Message(
        WARNING,
        "Most of the model is frozen",
        "{share:.0%} of the model's parameter values ({frozen:,} of {total:,}) have requires_grad=False, "
        "so training changes only the rest. If you are fine-tuning only the head on purpose, "
        "ignore this; a forgotten unfreeze after loading a model is a common mistake.",
        "for p in model.parameters():\n"
        "    p.requires_grad_(True)\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # built after unfreezing",
    ),
    "params_not_in_optimizer": Message(
        WARNING,
        "Some trainable parameters are not in the optimizer",
        "{n} parameter tensor(s) require gradients but the optimizer does not hold them "
        "({names}). They will get gradients but never change. If you froze them on purpose, "
        "set requires_grad=False instead.",
        "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # all of them\n"
        "# or freeze explicitly: for p in layer.parameters(): p.requires_grad_(False)",
    ),
    "class_collapse": Message(
        WARNING,
        "Classes are collapsing together in the representation",
        "At epoch {epoch} the class centroids of the recorded representations explain "
        "{separation:.0%} of their spread, down from {best:.0%} at epoch {best_epoch}: the "
        "features that told the classes apart are being lost.",
        "# a smaller learning rate, and gradient clipping\n"
        "for group in optimizer.param_groups:\n"
        "    group['lr'] *= 0.1",
    ),
    "memorizing_noisy_labels": Message(
        WARNING,
        "The model is memorizing samples whose labels look wrong",
        "About {count} training samples ({share:.1%}) have a given label that their nearest "
        "neighbours in the recorded representation contradict, and the model now predicts that "
        "label for them; it started at epoch {started} (fewest such samples then: {floor}). A "
        "model that fits labels its own features disagree with is memorizing noise.",
        "# inspect the samples, relabel the wrong ones, and retrain on the corrected labels\n"
        "widget = nbdebug.show(run)\n"
        "labels = nbdebug.Session(run).corrected_labels()",
    ),
}

# The stable codes: what the monitor reports while training, and what the lint reports before it.
RUNTIME_CODES = (
    "vanishing_gradient",
    "exploding_gradient",
    "dying_relu",
    "oscillating_loss",
    "slow_convergence",
    "improper_output_activation",
    "improper_loss",
    "abnormal_data",
    "overfitting",
    "unnormalized_input",
    "nan_loss",
)
# What only a monitor linked with a Recorder reports: checks of the recorded representations.
GEOMETRY_CODES = ("class_collapse", "memorizing_noisy_labels")
STATIC_CODES = (
    "softmax_before_cross_entropy",
    "bce_without_sigmoid",
    "cross_entropy_one_output",
    "linear_without_activation",
    "dropout_too_high",
    "learning_rate_range",
    "params_not_in_optimizer",
    "frozen_parameters",
    "saturating_activations",
)


# Sentences of the evidence that depend on what was seen; str.format templates.
DETAILS = {
    "nonfinite_gradient": "Gradients are NaN or infinite in {layers} at step {step}.",
    "gradient_ratio": (
        "The gradient at the first layer ({first_layer}, norm {first_norm:.3g}) is {ratio:.0f} times "
        "the one at the last layer ({last_layer}) at step {step}."
    ),
    "nonfinite_input": "The input batch at step {step} contains NaN or infinite values.",
    "layer_output": "Layer {layer} produced {what} at step {step} (threshold {omega:g}).",
    "nonfinite_output": "NaN or infinite values",
    "large_output": "outputs of typical size {value:.3g} (root-mean-square)",
    "lr_too_high": "Too high a rate makes the loss jump around or become NaN.",
    "lr_too_low": "Too low a rate makes training crawl.",
    "no_activation": "no activation",
    "activation": "a {activation}",
    "cause": " Most likely cause: {text}.",
}

# What each loss expects from the last layer.
EXPECTED_ACTIVATION = {
    "CrossEntropyLoss": "none (raw logits)",
    "NLLLoss": "log-softmax",
    "BCEWithLogitsLoss": "none (raw logits)",
    "BCELoss": "a sigmoid",
}

# The fixes of the mismatch warnings: by loss for the output activation, by task for the loss.
ACTIVATION_FIX = {
    "CrossEntropyLoss": "# CrossEntropyLoss wants raw scores: end the model with the Linear layer\n"
    "model = nn.Sequential(..., nn.Linear(64, n_classes))",
    "NLLLoss": "# NLLLoss wants log-probabilities\n"
    "model = nn.Sequential(..., nn.Linear(64, n_classes), nn.LogSoftmax(dim=1))",
    "BCEWithLogitsLoss": "# BCEWithLogitsLoss wants raw scores: drop the final activation\n"
    "model = nn.Sequential(..., nn.Linear(64, 1))",
    "BCELoss": "# BCELoss wants probabilities; better, switch to BCEWithLogitsLoss and drop it\n"
    "model = nn.Sequential(..., nn.Linear(64, 1), nn.Sigmoid())",
}
LOSS_FIX = {
    "multiclass": "loss_fn = nn.CrossEntropyLoss()  # integer class targets, raw logits",
    "binary": "loss_fn = nn.BCEWithLogitsLoss()  # float 0/1 targets, one raw score per sample",
    "multilabel": "loss_fn = nn.BCEWithLogitsLoss()  # multi-hot float targets",
    "regression": "loss_fn = nn.MSELoss()",
}
