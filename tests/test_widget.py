"""The landscape widget's kernel side: binary buffers and a validated epoch."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets

import nbdebug


def test_widget_sends_binary_buffers(digits_run_path):
    widget = nbdebug.show(digits_run_path)
    run = widget.session.run
    assert widget.epochs == run.epochs and widget.epoch == run.epochs[-1]
    positions = np.frombuffer(widget.positions, dtype=np.float32).reshape(6, 1797, 2)
    np.testing.assert_array_equal(positions, widget.session.embedding)
    assert np.array_equal(np.frombuffer(widget.labels, dtype=np.int16), run.labels)
    splits = np.frombuffer(widget.splits, dtype=np.uint8)
    assert (splits[run.indices("test")] == 1).all() and (splits[run.indices("train")] == 0).all()
    assert widget.classes == [str(d) for d in range(10)]
    assert set(widget.epoch_metrics[0]) == {"train_loss", "train_acc", "test_acc"}
    # Positions cross the wire as a buffer, not as JSON numbers.
    state = widget.get_state()
    assert isinstance(state["positions"], (bytes, memoryview))


def test_epoch_must_be_recorded(digits_run_path):
    widget = nbdebug.show(nbdebug.load_run(digits_run_path))
    widget.epoch = 2
    assert widget.epoch == 2
    with pytest.raises(traitlets.TraitError, match="recorded epochs"):
        widget.epoch = 0
    assert widget.epoch == 2


def test_show_rejects_other_objects():
    with pytest.raises(TypeError, match="show\\(\\) takes a Run, a Session"):
        nbdebug.show([1, 2, 3])
