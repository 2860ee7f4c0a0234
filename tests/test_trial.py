"""Mistakes caught by the Recorder's trial pass, when it is created, not after training; a run
whose head cannot be rebuilt still opens; a Recorder never writes into a run that replaced its own."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import nbdebug


class Net(nn.Module):
    def __init__(self, features=6, hidden=16, classes=3, ending=None):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, classes)
        self.ending = ending

    def forward(self, x):
        logits = self.fc(self.body(x))
        return logits if self.ending is None else self.ending(logits, dim=1)


def test_a_head_that_does_not_produce_the_scores_is_named_with_the_one_that_does(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    with pytest.raises(
        ValueError, match=r"head=model.body.0 outputs \(2, 16\) but the model outputs \(2, 3\).*head=model.fc"
    ):
        nbdebug.Recorder(model, head=model.body[0], path=tmp_path / "run", train=(x, y))


def test_a_flattening_head_still_takes_its_input_as_it_is(tmp_path, blobs):
    x, y = blobs()
    torch.manual_seed(0)
    head = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    model = nn.Sequential(nn.Linear(6, 12), nn.Unflatten(1, (3, 4)), head)
    nbdebug.Recorder(model, head=head, path=tmp_path / "run", train=(x, y)).capture(0)
    run = nbdebug.load_run(tmp_path / "run")
    assert run.dim == 12
    with torch.no_grad():
        rebuilt = run.head(0)(torch.from_numpy(np.asarray(run.representations(0), dtype=np.float32)))
    np.testing.assert_allclose(torch.softmax(rebuilt, 1).numpy(), run.probabilities(0), atol=2e-3)


@pytest.mark.parametrize("ending, right", [(F.softmax, "probabilities"), (F.log_softmax, "log_probabilities")])
def test_functional_softmax_under_output_logits_is_found_by_value(tmp_path, blobs, ending, right):
    x, y = blobs()
    model = Net(ending=ending)
    with pytest.warns(UserWarning, match=rf"returns values a \w+ gives.*pass output='{right}'"):
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "warned", train=(x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y), output=right).capture(0)
    probs = nbdebug.load_run(tmp_path / "run").probabilities(0)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize(
    "ending, output, right",
    [
        (None, "probabilities", "logits"),
        (F.log_softmax, "probabilities", "log_probabilities"),
        (None, "log_probabilities", "logits"),
        (F.softmax, "log_probabilities", "probabilities"),
    ],
)
def test_outputs_that_are_not_what_output_says_are_refused(tmp_path, blobs, ending, output, right):
    x, y = blobs()
    model = Net(ending=ending)
    with pytest.raises(ValueError, match=rf"output='{output}' but the model's outputs .* pass output='{right}'"):
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y), output=output)


def test_a_single_unit_outside_zero_one_is_not_a_probability(tmp_path, blobs):
    x, y = blobs(classes=2)
    torch.manual_seed(0)
    model = Net(classes=1)
    with torch.no_grad():
        model.fc.bias.fill_(5.0)
    with pytest.raises(ValueError, match=r"not probabilities, which are in \[0, 1\]; pass output='logits'"):
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y), output="probabilities")


def test_a_failing_trial_pass_says_where_it_ran_and_on_what(tmp_path, blobs):
    x, y = blobs(features=5)
    model = Net(features=6)
    with pytest.raises(
        RuntimeError,
        match=r"running the model on the first two samples of train \(model\(batch\) with \(2, 5\)\) failed",
    ) as caught:
        nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    assert "mat1 and mat2" in str(caught.value) and isinstance(caught.value.__cause__, RuntimeError)


def test_capture_refuses_a_run_directory_that_was_replaced(tmp_path, blobs):
    x, y = blobs()
    model = Net()
    first = nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x, y))
    first.capture(0)
    second = nbdebug.Recorder(model, head=model.fc, path=tmp_path / "run", train=(x[:50], y[:50]), overwrite=True)
    with pytest.raises(RuntimeError, match="was replaced or removed after this Recorder created it"):
        first.capture(1)
    second.capture(0)
    run = nbdebug.load_run(tmp_path / "run")
    assert run.epochs == [0] and run.n_samples == 50


class Custom(nn.Module):
    """A head nbdebug has no description for."""

    def __init__(self, dim=16, classes=3):
        super().__init__()
        self.w = nn.Parameter(torch.randn(dim, classes) * 0.3)

    def forward(self, r):
        return r @ self.w


@pytest.mark.parametrize("projection", ["pca", None])
def test_a_run_whose_head_cannot_be_rebuilt_opens_without_territories(tmp_path, blobs, projection):
    x, y = blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), Custom())
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    with pytest.warns(UserWarning, match=r"head_module=model.2"):
        rec = nbdebug.Recorder(
            model, head=model[2], path=tmp_path / "run", train=(x[:90], y[:90]), test=(x[90:], y[90:])
        )
    for epoch in range(3):
        loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.capture(epoch)

    widget = nbdebug.show(tmp_path / "run", projection=projection, recommendations=3).wait()
    session = widget.session
    assert not session.has_territories
    assert session.embedding.shape == (3, 120, 2) and np.isfinite(session.embedding).all()
    assert widget.background == b"" and widget.background_size == [0, 0]
    assert "no class territories" in widget.status and "head_module=" in widget.status
    assert len(session.recommend(k=3)) == 3
    quality = session.faithfulness  # neighbours kept are measured; predictions preserved need the head
    assert "ppr_train" not in quality and np.isfinite(quality["npr_train"]).all()
    with pytest.raises(ValueError, match=r"nbdebug.show\(run, head_module=model.head\)"):
        session.background(0)

    # The line the warning gave: the model's own head module rebuilds every epoch's head.
    painted = nbdebug.show(tmp_path / "run", projection=projection, head_module=model[2], recommendations=0).wait()
    assert painted.session.has_territories and painted.background_size == [256, 256]
    assert painted.status == ""
    with torch.no_grad():
        expected = torch.softmax(model[2](torch.from_numpy(np.asarray(session.run.representations(2), np.float32))), 1)
    np.testing.assert_allclose(expected.numpy(), session.run.probabilities(2), atol=2e-3)
