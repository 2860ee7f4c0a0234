"""The monitor's thresholds, with where each default comes from, and the learning-rate ranges
of the static check.

The runtime symptoms follow AutoTrainer (Table 1, defaults from its §5.4) and SCRAM (Table 1).
"""

from __future__ import annotations

from .._validation import check_number

# Defaults, with where they come from. Keys are the names accepted by Monitor(thresholds=...).
DEFAULT_THRESHOLDS: dict[str, float] = {
    # AutoTrainer §5.4 Type-B: accuracy above which a training counts as good enough and the
    # gated problems (VG, EG, DR, IO, IL, AD) are no longer reported; task-dependent.
    "theta": 0.6,
    "beta1": 1e-3,  # VG: first-layer / last-layer gradient norm ratio at most this ...
    "beta2": 1e-4,  # ... and first-layer gradient norm at most this
    "beta3": 70.0,  # EG: first-layer / last-layer gradient norm ratio at least this
    "gamma": 0.7,  # DR: fraction of hidden neurons with exactly zero gradient
    "zeta": 0.03,  # OL: accuracy gap between a local maximum and the following minimum
    "eta": 0.2,  # OL: such gaps per epoch
    "delta": 0.01,  # SC: largest accuracy gain per epoch that still counts as "no progress"
    "omega": 10.0,  # AD: layer output size (root-mean-square here; l-inf in the paper)
    # VG/EG/DR/AD: extra consecutive capture steps a symptom must be seen on (paper: 0).
    # Deviation: 2, a window of three captures (seven steps at the default cadence), because
    # healthy models show these symptoms for a step or two: a zero-initialised residual branch
    # passes no gradient until its scale has had one update. NaN and Inf are reported at once.
    "alpha": 2,
    # Deviations (see the docs of the rules in nbdebug.monitor.rules using them):
    "trend_epochs": 4,  # OL/SC need this many epochs of accuracy before judging a trend
    "input_scale": 3.0,  # SCRAM range check: root-mean-square of a batch above this is "unnormalized"
    "overfit_drop": 0.02,  # SCRAM overfitting: validation accuracy must fall by at least this ...
    "overfit_gap": 0.05,  # ... and end at least this far below training accuracy
    # Epoch-level falls and swings must exceed the sampling noise of an accuracy measured on n
    # samples: more than noise_z standard errors of a difference of two such accuracies.
    "noise_z": 2.0,
    "dropout_max": 0.5,  # static: dropout probability above this
    "frozen_share": 0.5,  # static: this share of the parameter values frozen (requires_grad=False)
    # Checks of the recorded representations (nbdebug.monitor.geometry), new here:
    "collapse_ratio": 0.5,  # class collapse: separation below this share of its best ...
    "collapse_min": 0.2,  # ... when the best was at least this
    "suspect_agreement": 0.1,  # a suspect's label: shared by at most this share of its neighbours
    "memorized_share": 0.02,  # memorization: reported from this share of the training samples
}

# A learning rate outside [low, high] is flagged for these optimizers (static check).
LR_RANGES: dict[str, tuple[float, float]] = {
    "SGD": (1e-5, 1.0),
    "Adam": (1e-6, 3e-2),
    "AdamW": (1e-6, 3e-2),
    "Adamax": (1e-6, 3e-2),
    "NAdam": (1e-6, 3e-2),
    "RAdam": (1e-6, 3e-2),
    "RMSprop": (1e-6, 3e-2),
    "Adagrad": (1e-5, 1.0),
    "Adadelta": (1e-3, 10.0),
}


def validate_thresholds(thresholds: dict | None) -> dict[str, float]:
    """Defaults overridden by ``thresholds``; unknown names and bad values fail clearly."""
    merged = dict(DEFAULT_THRESHOLDS)
    if thresholds is None:
        return merged
    if not isinstance(thresholds, dict):
        raise TypeError(f"thresholds must be a dict like {{'theta': 0.8}}, got {type(thresholds).__name__}")
    for key, value in thresholds.items():
        if key not in merged:
            raise ValueError(f"thresholds has an unknown name {key!r}; known names: {sorted(merged)}")
        merged[key] = check_number(f"thresholds[{key!r}]", value, low=0)
    return merged
