"""Diagnosis: the most likely cause of each problem, from the model's structure and what the
monitor saw; and the fix shown in the architecture's terms."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from nbdebug.monitor import Monitor
from nbdebug.monitor.causes import CAUSES, fix_for
from nbdebug.monitor.diagnosis import LARGE_WEIGHT_SCALE, Architecture, Seen, describe, diagnose

MLP = Architecture("mlp", saturating=0, rectifiers=2, plain_rnn=False, weight_scale=0.6, frozen_share=0.0,
                   optimizer="Adam", lr=1e-3, momentum=True)  # fmt: skip


def test_describe_reads_the_family_activations_weights_and_optimizer():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    arch = describe(mlp, torch.optim.SGD(mlp.parameters(), lr=0.1))
    assert (arch.family, arch.saturating, arch.optimizer, arch.lr, arch.momentum) == ("mlp", 2, "SGD", 0.1, False)
    assert 0.3 < arch.weight_scale < 1.0  # PyTorch's default initialisation
    with torch.no_grad():
        mlp[0].weight.mul_(10)
    assert describe(mlp, None).weight_scale > LARGE_WEIGHT_SCALE
    encoder = nn.Sequential(nn.Embedding(10, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    assert describe(encoder, None).family == "transformer"
    assert describe(nn.Sequential(nn.MultiheadAttention(8, 2)), None).family == "transformer"
    assert describe(nn.Sequential(nn.Conv2d(1, 4, 3)), None).family == "convolutional"
    rnn = nn.Sequential(nn.RNN(4, 8))
    assert describe(rnn, None).family == "recurrent" and describe(rnn, None).plain_rnn
    frozen = nn.Sequential(nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 2))
    frozen[0].requires_grad_(False)
    assert describe(frozen, torch.optim.Adam(frozen[2].parameters())).frozen_share > 0.9
    held = torch.optim.Adam(copy.deepcopy(frozen).parameters())  # built on a copy: holds none of them
    assert describe(frozen, held).frozen_share == 1.0


@pytest.mark.parametrize(
    "code, arch, seen, evidence, cause",
    [
        ("vanishing_gradient", replace(MLP, saturating=2), Seen(), {}, "saturating_activations"),
        ("vanishing_gradient", MLP, Seen(), {}, "initialization"),
        ("vanishing_gradient", replace(MLP, plain_rnn=True, saturating=3), Seen(), {}, "recurrence"),
        ("exploding_gradient", MLP, Seen(), {}, "learning_rate"),
        ("exploding_gradient", replace(MLP, weight_scale=2.5), Seen(), {}, "initialization"),
        ("exploding_gradient", replace(MLP, weight_scale=2.4), Seen(), {}, "learning_rate"),
        ("exploding_gradient", MLP, Seen(input_rms=3.1), {}, "unnormalized_input"),
        ("exploding_gradient", MLP, Seen(input_rms=3.0), {}, "learning_rate"),
        ("dying_relu", MLP, Seen(from_start=True), {}, "initialization"),
        ("dying_relu", MLP, Seen(from_start=False), {}, "learning_rate"),
        ("oscillating_loss", MLP, Seen(batch_size=8), {}, "small_batch"),
        ("oscillating_loss", MLP, Seen(batch_size=9), {}, "learning_rate"),
        ("slow_convergence", replace(MLP, frozen_share=0.5), Seen(), {}, "frozen_parameters"),
        ("slow_convergence", replace(MLP, frozen_share=0.49, lr=1e-6), Seen(), {}, "learning_rate"),
        ("slow_convergence", replace(MLP, optimizer="SGD", lr=0.05, momentum=False), Seen(), {}, "optimizer"),
        ("slow_convergence", replace(MLP, optimizer="SGD", lr=1e-5, momentum=False), Seen(), {}, "learning_rate"),
        ("abnormal_data", MLP, Seen(nonfinite_input=True), {}, "nan_in_data"),
        ("nan_loss", MLP, Seen(nonfinite_input=True), {}, "nan_in_data"),
        ("nan_loss", MLP, Seen(), {}, "learning_rate"),
        ("overfitting", MLP, Seen(noisy_labels=True), {}, "label_noise"),
        ("overfitting", MLP, Seen(), {}, "no_regularization"),
        ("unnormalized_input", MLP, Seen(), {"min_value": 0.0, "max_abs": 255.0}, "raw_pixels"),
        ("unnormalized_input", MLP, Seen(), {"min_value": -0.1, "max_abs": 255.0}, "unscaled_features"),
        ("unnormalized_input", MLP, Seen(), {"min_value": 0.0, "max_abs": 300.0}, "unscaled_features"),
        ("class_collapse", MLP, Seen(), {"spread": 0.0}, "dead_representation"),
        ("class_collapse", MLP, Seen(), {"spread": 0.5}, "learning_rate"),
        ("params_not_in_optimizer", MLP, Seen(), {}, "optimizer_parameters"),
    ],
)
def test_diagnose(code, arch, seen, evidence, cause):
    found = diagnose(code, evidence, arch, seen, input_scale=3.0)
    assert found == cause
    assert code not in CAUSES or found in CAUSES[code]


def test_every_cause_has_a_fix_and_the_fix_fits_the_architecture():
    for code, causes in CAUSES.items():
        for cause in causes:
            # the mismatch warnings' fixes come from their rules (the loss or activation to use)
            assert fix_for(code, cause, "mlp") or code in ("improper_output_activation", "improper_loss"), code
    transformer = fix_for("vanishing_gradient", "saturating_activations", "transformer")
    assert "LayerNorm" in transformer and "BatchNorm" not in transformer
    assert "BatchNorm" in fix_for("vanishing_gradient", "saturating_activations", "mlp")


def test_a_sigmoid_stack_is_told_to_change_its_activations():
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(16, 16), nn.Sigmoid())], nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(256, 16), torch.randint(0, 2, (256,))
    with Monitor(model, optimizer, nn.CrossEntropyLoss()) as mon:
        for _ in range(12):
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            mon.step(loss=loss, inputs=x, targets=y, outputs=out)
    w = next(w for w in mon.warnings if w.code == "vanishing_gradient")
    assert w.cause == "saturating_activations" and "Most likely cause: the stack of saturating" in w.explanation
    assert "nn.ReLU()" in w.fix


@pytest.mark.parametrize("frozen_layers, reported", [((0, 2), True), ((2,), False)])
def test_a_mostly_frozen_model_is_reported_before_training(frozen_layers, reported):
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    for i in frozen_layers:  # layer 0: 4,160 of 6,570 values (63%); layer 2 alone: 2,080 (32%)
        model[i].requires_grad_(False)
    mon = Monitor(model, torch.optim.Adam(p for p in model.parameters() if p.requires_grad))
    found = [w for w in mon.warnings if w.code == "frozen_parameters"]
    assert bool(found) == reported
    if reported:
        assert found[0].cause == "frozen_parameters" and "requires_grad_(True)" in found[0].fix


def linear():
    return nn.Linear(8, 8)


@pytest.mark.parametrize(
    "model, reported",
    [
        (nn.Sequential(linear(), nn.Sigmoid(), linear(), nn.Tanh(), linear()), True),  # two between layers
        (nn.Sequential(linear(), nn.Tanh(), linear(), nn.ReLU(), linear()), False),  # one
        (nn.Sequential(linear(), nn.ReLU(), linear(), nn.Tanh(), linear(), nn.Sigmoid()), False),  # and an output one
    ],
)
def test_saturating_activations_between_layers_are_reported_before_training(model, reported):
    found = [w for w in Monitor(model).warnings if w.code == "saturating_activations"]
    assert bool(found) == reported
    if reported:
        assert found[0].cause == "saturating_activations" and "nn.ReLU()" in found[0].fix
