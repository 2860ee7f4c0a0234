"""The monitor's runtime rules on tables of numbers: no model, no training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nbdebug.monitor import rules
from nbdebug.monitor.messages import MESSAGES
from nbdebug.monitor.thresholds import DEFAULT_THRESHOLDS

T = DEFAULT_THRESHOLDS  # beta1 1e-3, beta2 1e-4, beta3 70, gamma 0.7, omega 10, input_scale 3, theta 0.6
LAYERS = ["0", "2", "4"]
LOW, HIGH = 0.3, 0.9  # best accuracies below and above theta


def fired(finding, code):
    """The finding's code if it fired (checked against ``code``), else None."""
    if finding is None:
        return None
    assert finding.code == code
    return code


def explained(finding):
    """The finding's explanation: its evidence fills its message's template."""
    return MESSAGES[finding.code].explanation.format(step=7, epoch=1, **finding.evidence)


@pytest.mark.parametrize(
    "norms, best, fires",
    [
        ([1e-5, 0.5, 0.0101], LOW, True),  # ratio 9.9e-4 <= beta1, first 1e-5 <= beta2
        ([1e-5, 0.5, 0.0099], LOW, False),  # ratio 1.01e-3, just above beta1
        ([1.1e-4, 0.5, 1.0], LOW, False),  # ratio 1.1e-4, but the first norm is above beta2
        ([9e-5, 0.5, 1.0], LOW, True),  # the first norm just below beta2
        ([1e-5, 0.5, 0.0101], None, True),  # no accuracy yet counts as low
        ([1e-5, 0.5, 0.0101], HIGH, False),  # accuracy above theta: not reported
    ],
)
def test_vanishing_gradient(norms, best, fires):
    finding = rules.vanishing_gradient(LAYERS, norms, best, T)
    assert bool(fired(finding, "vanishing_gradient")) == fires
    if fires:
        assert finding.evidence["first_layer"] == "0" and finding.evidence["last_layer"] == "4"
        assert finding.evidence["ratio"] == pytest.approx(norms[0] / norms[-1])
        assert "first layer (0" in explained(finding)


def test_vanishing_gradient_needs_more_than_one_layer():
    assert rules.vanishing_gradient(["0"], [1e-6], LOW, T) is None


@pytest.mark.parametrize(
    "norms, best, fires",
    [
        ([71.0, 1.0, 1.0], LOW, True),  # ratio just above beta3
        ([69.0, 1.0, 1.0], LOW, False),  # just below
        ([70.0, 1.0, 1.0], LOW, True),  # at beta3
        ([1.0, 1.0, 0.0], LOW, True),  # no gradient at the last layer: infinite ratio
        ([0.0, 1.0, 0.0], LOW, True),  # the first layer with gradient is the second; none at the last
        ([0.0, 0.0, 0.0], LOW, False),  # no gradient anywhere: nothing to compare
        ([71.0, 1.0, 1.0], HIGH, False),
    ],
)
def test_exploding_gradient(norms, best, fires):
    finding = rules.exploding_gradient(LAYERS, norms, 7, best, T)
    assert bool(fired(finding, "exploding_gradient")) == fires
    if fires:
        assert finding.severity is None  # the message's own: a warning
        assert "at step 7" in finding.evidence["detail"] and "(4)" in finding.evidence["detail"]


@pytest.mark.parametrize(
    "norms, bad",
    [([1.0, math.nan, 2.0], ["2"]), ([math.inf, 1.0, -math.inf], ["0", "4"]), ([1.0, 2.0, 3.0], None)],
)
def test_nonfinite_gradient_is_an_error_naming_the_layers(norms, bad):
    finding = rules.nonfinite_gradient(LAYERS, norms, 7, None)
    if bad is None:
        assert finding is None
        return
    assert finding.code == "exploding_gradient" and finding.severity == "error"
    assert finding.evidence["layers"] == bad
    assert explained(finding).startswith(f"Gradients are NaN or infinite in {', '.join(bad)} at step 7.")


@pytest.mark.parametrize(
    "dead, total, fires",
    [(7, 10, True), (6, 10, False), (10, 10, True), (69, 100, False), (0, 0, False)],
)
def test_dying_relu_fraction_of_dead_neurons(dead, total, fires):
    # a hidden layer "0" of width total // 2 and a layer "2" with the rest; dead neurons first
    per_neuron = np.r_[np.zeros(dead), np.linspace(0.1, 1.0, total - dead)]
    widths = [("0", total // 2), ("2", total - total // 2)]
    finding = rules.dying_relu(per_neuron, widths, LOW, T)
    assert bool(fired(finding, "dying_relu")) == fires
    if fires:
        assert finding.evidence["dead"] == dead and finding.evidence["total"] == total
        assert finding.evidence["per_layer"] == {"0": min(dead, total // 2), "2": max(0, dead - total // 2)}
        assert f"{100 * dead / total:.0f}% of the hidden units" in explained(finding)


@pytest.mark.parametrize(
    "rms, code",
    [(3.01, "unnormalized_input"), (3.0, None), (0.9, None), (math.nan, "abnormal_data"), (math.inf, "abnormal_data")],
)
def test_input_rules(rms, code):
    nonfinite = rules.nonfinite_input(rms, 7, None)
    found = nonfinite if nonfinite is not None else rules.unnormalized_input(rms, T)
    assert (found.code if found else None) == code
    if code == "abnormal_data":
        assert "NaN or infinite" in explained(found)
    if code == "unnormalized_input":
        assert found.evidence == {"rms": rms}  # the monitor adds the batch's mean and largest |x|


@pytest.mark.parametrize(
    "rms, best, layer",
    [
        ([1.0, 10.0, 2.0], LOW, "2"),  # at omega
        ([1.0, 9.99, 2.0], LOW, None),  # just below
        ([12.0, 30.0, 11.0], LOW, "2"),  # the largest
        ([30.0, 30.0, 1.0], LOW, "0"),  # ties: the first
        ([1.0, 30.0, 2.0], HIGH, None),  # accuracy above theta
    ],
)
def test_large_layer_output(rms, best, layer):
    assert rules.nonfinite_layer_output(LAYERS, rms, 7, best, T) is None
    finding = rules.large_layer_output(LAYERS, rms, 7, best, T)
    assert (finding.evidence["layer"] if finding else None) == layer
    if layer:
        assert f"Layer {layer} produced outputs of typical size" in explained(finding)


@pytest.mark.parametrize(
    "rms, layer", [([1.0, math.nan, math.inf], "2"), ([50.0, 1.0, math.inf], "4"), ([50.0, 1.0, 2.0], None)]
)
def test_nonfinite_layer_output_whatever_the_accuracy(rms, layer):
    finding = rules.nonfinite_layer_output(LAYERS, rms, 7, HIGH, T)
    assert (finding.evidence["layer"] if finding else None) == layer
    if layer:
        assert f"Layer {layer} produced NaN or infinite values at step 7" in explained(finding)


@pytest.mark.parametrize(
    "accs, fires",
    [
        ([0.5, 0.6, 0.5, 0.6, 0.5], True),  # two swings of 10 points in five epochs
        ([0.5, 0.6, 0.5], False),  # fewer than trend_epochs epochs
        ([0.5, 0.6, 0.7, 0.8, 0.85], False),  # steady climb
        ([0.5, 0.52, 0.5, 0.52, 0.5], False),  # swings of 2 points, below zeta
        ([0.5, 0.6, 0.7, 0.8, 0.9, 0.85, 0.9, 0.95, 0.96, 0.97], False),  # one swing in ten epochs < eta
        ([0.5, 0.6, 0.7, 0.8, 0.9, 0.85, 0.9, 0.95, 0.9], True),  # two swings in nine epochs
    ],
)
def test_oscillating_accuracy(accs, fires):
    finding = rules.oscillating_accuracy(accs, T)
    assert bool(fired(finding, "oscillating_loss")) == fires
    if fires:
        assert finding.evidence["epochs"] == len(accs) and finding.evidence["swings"] >= 2


@pytest.mark.parametrize(
    "accs, fires",
    [
        ([0.30, 0.305, 0.31, 0.312], True),  # 0.4 points per epoch: at most delta (1 point)
        ([0.30, 0.305, 0.33, 0.332], False),  # 1.07 points per epoch
        ([0.30, 0.305, 0.329, 0.32], True),  # 0.97 points per epoch: one noisy jump is not progress
        ([0.05, 0.30, 0.30, 0.31, 0.315], True),  # only the last trend_epochs (4) count
        ([0.30, 0.305, 0.31], False),  # fewer than trend_epochs epochs
        ([0.65, 0.65, 0.655, 0.655], False),  # stalled, but above theta
        ([0.50, 0.45, 0.40, 0.35], True),  # falling is no progress either
    ],
)
def test_slow_convergence(accs, fires):
    finding = rules.slow_convergence(accs, T)
    assert bool(fired(finding, "slow_convergence")) == fires
    if fires:
        assert finding.evidence["accs"] == ", ".join(f"{a:.0%}" for a in accs[-8:])


@pytest.mark.parametrize(
    "train, val, val_n, fires",
    [
        ([0.80, 0.85, 0.90], [0.80, 0.77, 0.76], None, True),  # both last epochs 3+ points below the peak
        ([0.70, 0.80, 0.85, 0.90, 0.95], [0.85, 0.84, 0.83, 0.82, 0.81], None, True),  # a slow, steady fall
        ([0.80, 0.85, 0.90], [0.80, 0.77, 0.79], None, False),  # the last epoch is back within overfit_drop
        ([0.80, 0.85, 0.90], [0.80, 0.785, 0.78], None, False),  # 1.5 points: within overfit_drop
        ([0.90, 0.85, 0.88], [0.80, 0.77, 0.76], None, False),  # train did not rise since the peak
        ([0.70, 0.75, 0.80], [0.80, 0.77, 0.76], None, False),  # val ends only 4 points below train (< overfit_gap)
        ([0.85, 0.90], [0.79, 0.77], None, False),  # two epochs are not enough
        # sampling noise: 3 points on 360 samples is within 2 standard errors (6.1 points) ...
        ([0.80, 0.85, 0.90], [0.80, 0.77, 0.76], 360, False),
        # ... and beyond them on 5,000 (1.6 points, so overfit_drop's 2 decides)
        ([0.80, 0.85, 0.90], [0.80, 0.77, 0.76], 5000, True),
    ],
)
def test_overfitting(train, val, val_n, fires):
    finding = rules.overfitting(train, val, T, val_n)
    assert bool(fired(finding, "overfitting")) == fires
    if fires:
        peak = int(np.argmax(val[:-2]))
        assert finding.evidence["val"] == " → ".join(f"{v:.1%}" for v in [val[peak], *val[-2:]])
        assert "more than" in explained(finding)


@pytest.mark.parametrize(
    "a, b, n, noise",
    [
        (0.9, 0.9, None, 0.0),  # unknown size: no noise margin
        (0.9, 0.9, 360, 2 * math.sqrt(2 * 0.09 / 360)),  # 2 standard errors of a difference
        (1.0, 1.0, 100, 2 * math.sqrt(2 * (1 / 100) / 100)),  # perfect accuracy: one sample's flip
    ],
)
def test_sampling_noise(a, b, n, noise):
    assert rules.sampling_noise(a, b, n, T) == pytest.approx(noise)


def test_oscillation_needs_swings_beyond_sampling_noise():
    accs = [0.5, 0.6, 0.5, 0.6, 0.5, 0.6]  # swings of 10 points
    assert fired(rules.oscillating_accuracy(accs, T), "oscillating_loss")
    assert fired(rules.oscillating_accuracy(accs, T, n=1000), "oscillating_loss")  # noise 4.5 points
    assert rules.oscillating_accuracy(accs, T, n=100) is None  # noise 14 points: chance


@pytest.mark.parametrize(
    "task, loss, activation, best, shown",
    [
        ("multiclass", "CrossEntropyLoss", "softmax", LOW, "a softmax"),
        ("multiclass", "CrossEntropyLoss", "linear", LOW, None),
        ("multiclass", "CrossEntropyLoss", "log_softmax", LOW, None),
        ("multiclass", "NLLLoss", "linear", LOW, "no activation"),
        ("binary", "BCELoss", "linear", LOW, "no activation"),
        ("binary", "BCEWithLogitsLoss", "sigmoid", LOW, "a sigmoid"),
        ("binary", "BCELoss", "sigmoid", LOW, None),
        ("multiclass", "CrossEntropyLoss", "softmax", HIGH, None),  # accuracy above theta
        ("regression", "MSELoss", "relu", LOW, None),  # no ActSet for the loss
        ("regression", "CrossEntropyLoss", "softmax", LOW, None),  # the loss does not fit: improper_loss's job
    ],
)
def test_improper_output_activation(task, loss, activation, best, shown):
    finding = rules.improper_output_activation(task, loss, activation, best, T)
    assert (finding.evidence["activation"] if finding else None) == shown
    if shown:
        assert finding.code == "improper_output_activation" and finding.evidence["fix"]
        assert f"come from {shown}" in explained(finding)


@pytest.mark.parametrize(
    "task, loss, best, fires",
    [
        ("multiclass", "MSELoss", LOW, True),
        ("regression", "CrossEntropyLoss", LOW, True),
        ("binary", "BCEWithLogitsLoss", LOW, False),
        ("multiclass", "CrossEntropyLoss", LOW, False),
        ("multiclass", "MyCustomLoss", LOW, False),  # custom losses are the user's business
        ("multiclass", "MSELoss", HIGH, False),
    ],
)
def test_improper_loss(task, loss, best, fires):
    finding = rules.improper_loss(task, loss, best, T)
    assert bool(fired(finding, "improper_loss")) == fires
    if fires:
        assert finding.evidence["expected"] == ", ".join(rules.LOSS_SETS[task])
        assert f"the loss is {loss}" in explained(finding)


@pytest.mark.parametrize("loss, fires", [(math.nan, True), (math.inf, True), (-math.inf, True), (2.3, False)])
def test_nonfinite_loss(loss, fires):
    finding = rules.nonfinite_loss(loss)
    assert bool(fired(finding, "nan_loss")) == fires


@pytest.mark.parametrize("best, low", [(None, True), (0.6, True), (0.61, False)])
def test_accuracy_gate_is_theta(best, low):
    assert rules.accuracy_is_low(best, T) is low
    assert rules.format_accuracy(best) == ("unknown" if best is None else f"{best:.1%}")
