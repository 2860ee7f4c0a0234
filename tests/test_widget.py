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


def test_selection_from_the_page_is_validated(digits_run_path, copy_run):
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5)
    # What the page sends: uint32 indices as a binary buffer (a memoryview in the kernel).
    widget.set_state({"_selection": memoryview(np.array([7, 3, 3, 1500], dtype=np.uint32).tobytes())})
    assert widget.selection.tolist() == [3, 7, 1500]
    with pytest.raises(traitlets.TraitError, match="index >= 1797"):
        widget.set_state({"_selection": memoryview(np.array([1797], dtype=np.uint32).tobytes())})
    with pytest.raises(traitlets.TraitError, match="uint32"):
        widget.set_state({"_selection": memoryview(b"\x01\x02\x03")})
    assert widget.selection.tolist() == [3, 7, 1500]
    widget.selection = [5, 2]
    assert widget.selection.tolist() == [2, 5]
    with pytest.raises(ValueError, match="selection must be sample indices"):
        widget.selection = [-1]


def test_feedback_messages_are_validated_and_rerank(digits_run_path, copy_run):
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5)
    first = widget.cards[0]["index"]
    assert len(widget.cards) == 5 and np.frombuffer(widget._recommended, np.uint32)[0] == first
    assert widget.thumbnail_shape == [8, 8, 1] and len(widget.card_thumbnails) == 5 * 64
    widget._on_message(widget, {"type": "feedback", "accept": [first], "reject": []}, [])
    assert widget.message == ""
    assert np.frombuffer(widget._accepted, np.uint32).tolist() == [first]
    assert first not in [card["index"] for card in widget.cards]
    # Malformed or out-of-range requests change nothing and say why.
    for bad in (
        {"type": "feedback", "accept": ["7"]},
        {"type": "feedback", "reject": [10**6]},
        {"type": "feedback", "accept": [True]},
    ):
        widget._on_message(widget, bad, [])
        assert widget.message
    assert np.frombuffer(widget._accepted, np.uint32).tolist() == [first]
    assert len(np.frombuffer(widget._rejected, np.uint32)) == 0
    widget._on_message(widget, {"type": "new_intention"}, [])
    assert len(np.frombuffer(widget._accepted, np.uint32)) == 0


def test_show_opens_on_a_chosen_epoch_and_refuses_non_binary_selections(digits_run_path):
    widget = nbdebug.show(digits_run_path, epoch=3, recommendations=0)
    assert widget.epoch == 3 and widget.cards == []
    with pytest.raises(traitlets.TraitError, match="binary buffer"):
        widget.set_state({"_selection": 8})
    with pytest.raises(traitlets.TraitError, match="recorded epochs"):
        nbdebug.show(digits_run_path, epoch=99)


def test_show_gives_a_monitor_its_live_widget():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    with nbdebug.Monitor(
        model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=torch.nn.CrossEntropyLoss()
    ) as monitor:
        assert nbdebug.show(monitor) is monitor.widget


def test_answers_given_in_python_show_in_the_widget(digits_run_path, copy_run):
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5)
    first = widget.cards[0]["index"]
    widget.session.feedback(reject=[first])
    assert np.frombuffer(widget._rejected, np.uint32).tolist() == [first]
    assert first not in [card["index"] for card in widget.cards]
    widget.session.new_intention()
    assert len(np.frombuffer(widget._rejected, np.uint32)) == 0


def test_a_closed_widget_no_longer_follows_the_session(digits_run_path, copy_run):
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5)
    cards = widget.cards
    widget.close()
    widget.session.feedback(reject=[cards[0]["index"]])
    assert widget.cards == cards
    assert len(np.frombuffer(widget._rejected, np.uint32)) == 0
