"""The landscape widget's kernel side: binary buffers, validated requests, the view, and
what is prepared in the background."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import traitlets

import nbdebug
import nbdebug.cards
import nbdebug.transport
import nbdebug.widget
from nbdebug.monitor.journal import append_warning
from nbdebug.monitor.warning import TrainingWarning


def frames_sent(widget, indices):
    """What the kernel sends when the page asks for the positions of frames ``indices``."""
    sent = []
    widget.send = lambda content, buffers=None: sent.append((content, buffers))
    widget._on_message(widget, {"type": "frames", "indices": indices}, [])
    return sent


def test_widget_sends_binary_buffers(digits_run_path):
    widget = nbdebug.show(digits_run_path).wait()
    run = widget.session.run
    assert widget.epochs == run.epochs and widget.epoch == run.epochs[-1]
    sent = frames_sent(widget, [5, 0, 3])
    assert [content for content, _ in sent] == [{"type": "frames", "indices": [5, 0, 3]}]
    # Positions cross the wire as buffers, one per frame, not as JSON numbers.
    buffers = sent[0][1]
    assert all(isinstance(b, memoryview) for b in buffers)
    positions = np.stack([np.frombuffer(b, dtype=np.float32).reshape(1797, 2) for b in buffers])
    np.testing.assert_array_equal(positions, widget.session.embedding[[5, 0, 3]])
    assert np.array_equal(np.frombuffer(widget.labels, dtype=np.int16), run.labels)
    splits = np.frombuffer(widget.splits, dtype=np.uint8)
    assert widget.split_names[1] == "test" and widget.split_names[0] == "train"
    assert (splits[run.indices("test")] == 1).all() and (splits[run.indices("train")] == 0).all()
    assert widget.classes == [str(d) for d in range(10)]
    assert set(widget.epoch_metrics[0]) == {"train_loss", "train_acc", "test_acc"}
    assert isinstance(widget.get_state()["labels"], (bytes, memoryview))


def test_no_message_to_the_page_exceeds_the_limit(digits_run_path, monkeypatch):
    widget = nbdebug.show(digits_run_path, recommendations=0).wait()
    frame = 1797 * 2 * 4
    monkeypatch.setattr(nbdebug.transport, "MAX_MESSAGE_BYTES", 2 * frame + 1)  # two frames a message
    sent = frames_sent(widget, [0, 1, 2, 3, 4])
    assert [content["indices"] for content, _ in sent] == [[0, 1], [2, 3], [4]]
    assert all(sum(b.nbytes for b in buffers) <= 2 * frame + 1 for _, buffers in sent)
    # A frame larger than a message goes in parts of consecutive samples.
    monkeypatch.setattr(nbdebug.transport, "MAX_MESSAGE_BYTES", 1000)  # 125 samples a message
    sent = frames_sent(widget, [4, 1])
    assert all(content["type"] == "frame_part" and buffers[0].nbytes <= 1000 for content, buffers in sent)
    assert [c["first"] for c, _ in sent if c["index"] == 4] == list(range(0, 1797, 125))
    for index in (4, 1):
        parts = [np.frombuffer(b[0], np.float32) for c, b in sent if c["index"] == index]
        np.testing.assert_array_equal(np.concatenate(parts).reshape(-1, 2), widget.session.embedding[index])
    # Frames the run does not have, repeated ones and malformed lists are refused and said so.
    for bad in ([6], [-1], "0", [True], [2, 2], [0] * 10**4):
        assert frames_sent(widget, bad) == []
        assert "indices" in widget.message


def test_epoch_must_be_recorded(digits_run_path):
    widget = nbdebug.show(nbdebug.load_run(digits_run_path)).wait()
    widget.epoch = 2
    assert widget.epoch == 2
    with pytest.raises(traitlets.TraitError, match="recorded epochs"):
        widget.epoch = 0
    assert widget.epoch == 2


def test_the_timeline_shows_the_runs_saved_warnings(digits_copy):
    assert nbdebug.show(digits_copy, recommendations=0).wait().warnings == []  # no warnings.jsonl
    fix = "optimizer = torch.optim.SGD(model.parameters(), lr=0.01)"
    for code, severity, after in [("learning_rate_range", "warning", None), ("nan_loss", "error", 3)]:
        warning = TrainingWarning(code, severity, "<b>x</b>", "an explanation", fix, epoch=0, step=0, cause="lr")
        append_warning(digits_copy, warning, after_capture=after)
    widget = nbdebug.show(digits_copy, recommendations=0).wait()
    assert [(w["epoch"], w["code"], w["severity"], w["title"], w["fix"]) for w in widget.warnings] == [
        (1, "learning_rate_range", "warning", "<b>x</b>", fix),
        (4, "nan_loss", "error", "<b>x</b>", fix),
    ]
    assert widget.shown_warnings_epoch == -1
    widget.set_state({"shown_warnings_epoch": 4})  # what a click on the marker at epoch 4 sends
    assert widget.shown_warnings_epoch == 4
    with pytest.raises(traitlets.TraitError, match=r"an epoch with warnings \[1, 4\], got 2"):
        widget.set_state({"shown_warnings_epoch": 2})
    with pytest.raises(traitlets.TraitError, match=r"landscape_warnings\(\) records at recorded epochs"):
        widget.set_state({"warnings": [{"epoch": 1, "code": "x"}]})
    assert widget.shown_warnings_epoch == 4 and len(widget.warnings) == 2


def test_show_rejects_other_objects():
    with pytest.raises(TypeError, match="show\\(\\) takes a Run, a Session"):
        nbdebug.show([1, 2, 3])


def test_selection_from_the_page_is_validated(digits_run_path, copy_run):
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5).wait()
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
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5).wait()
    first = widget.cards[0]["index"]
    assert len(widget.cards) == 5 and np.frombuffer(widget._recommended, np.uint32)[0] == first
    assert [card["thumbnail"] for card in widget.cards] == [[64 * k, 8, 8, 1] for k in range(5)]
    assert len(widget.card_thumbnails) == 5 * 64
    widget._on_message(widget, {"type": "feedback", "accept": [first], "reject": []}, [])
    assert widget.message == ""
    assert np.frombuffer(widget._accepted, np.uint32).tolist() == [first]
    assert first not in [card["index"] for card in widget.cards if card["kind"] == "recommended"]
    accepted = [card for card in widget.cards if card["kind"] == "accepted"]
    assert [card["index"] for card in accepted] == [first]  # listed to relabel
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
    widget = nbdebug.show(digits_run_path, epoch=3, recommendations=0).wait()
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
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5).wait()
    first = widget.cards[0]["index"]
    widget.session.feedback(reject=[first])
    assert np.frombuffer(widget._rejected, np.uint32).tolist() == [first]
    assert first not in [card["index"] for card in widget.cards]
    widget.session.new_intention()
    assert len(np.frombuffer(widget._rejected, np.uint32)) == 0


def test_a_closed_widget_no_longer_follows_the_session(digits_run_path, copy_run):
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5).wait()
    cards = widget.cards
    widget.close()
    widget.session.feedback(reject=[cards[0]["index"]])
    assert widget.cards == cards
    assert len(np.frombuffer(widget._rejected, np.uint32)) == 0


def test_the_first_frame_comes_before_the_recommendations(digits_run_path, copy_run, monkeypatch):
    release = threading.Event()
    prepare = nbdebug.Session.prepare

    def slow(self, *args, **kwargs):  # as long as the test says
        release.wait(30)
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(nbdebug.Session, "prepare", slow)
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5)
    # show() has returned: the dots (on request) and the territories are there, the rest is coming.
    assert widget.background_size == [256, 256] and widget.background_bounds == widget.view == widget.bounds
    assert widget.cards == [] and widget.frame_quality == [] and widget.status.startswith("computing")
    assert len(frames_sent(widget, [5])) == 1
    release.set()
    widget.wait(60)
    assert len(widget.cards) == 5 and widget.status == ""
    assert len(widget.frame_quality) == 6 and {"NPR", "NPR_error", "PPR", "PPR_error"} <= set(widget.frame_quality[-1])


def test_the_kernel_answers_the_page_while_faithfulness_is_estimated(digits_run_path, copy_run, monkeypatch):
    release, started = threading.Event(), threading.Event()
    faithfulness = nbdebug.TimeTravelVisualizer.faithfulness

    def slow(self, *args, **kwargs):  # as long as the test says
        started.set()
        release.wait(60)
        return faithfulness(self, *args, **kwargs)

    monkeypatch.setattr(nbdebug.TimeTravelVisualizer, "faithfulness", slow)
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5)
    assert started.wait(60) and widget.status.startswith("estimating")
    answered = []

    def page():  # what the page may ask meanwhile: frames, a zoom, an answer
        answered.append(len(frames_sent(widget, [0, 1])))
        x0, x1, y0, y1 = widget.bounds
        widget.set_state({"view": [x0, (x0 + x1) / 2, y0, y1]})
        widget._on_message(widget, {"type": "feedback", "accept": [widget.cards[0]["index"]]}, [])
        answered.append(widget.message)

    asking = threading.Thread(target=page)
    asking.start()
    asking.join(30)
    blocked = asking.is_alive()
    release.set()
    widget.wait(60)
    assert not blocked, "the page's requests waited for the faithfulness estimate"
    assert answered == [1, ""] and len(np.frombuffer(widget._accepted, np.uint32)) == 1
    assert widget.background_bounds[1] < widget.bounds[1] and widget.status == ""


def test_a_failed_preparation_is_shown_and_raised(digits_run_path, copy_run, monkeypatch):
    def broken(self, *args, **kwargs):
        raise ValueError("no attributes today")

    monkeypatch.setattr(nbdebug.Session, "prepare", broken)
    widget = nbdebug.show(copy_run(digits_run_path), recommendations=5)
    with pytest.raises(ValueError, match="no attributes today"):
        widget.wait(60)
    assert "no attributes today" in widget.status


def test_territories_follow_the_view(digits_run_path):
    widget = nbdebug.show(digits_run_path, recommendations=0).wait()
    whole = np.frombuffer(widget.background, np.uint8).reshape(256, 256, 4)
    x0, x1, y0, y1 = widget.bounds
    zoomed = [x0, (x0 + x1) / 2, y0, (y0 + y1) / 2]  # the lower-left quarter
    widget.view = zoomed
    assert widget.background_bounds == zoomed
    image = np.frombuffer(widget.background, np.uint8).reshape(256, 256, 4)
    # The quarter repainted at full resolution: the whole image's lower-left quarter, finer.
    expected = widget.session.background(widget.epoch, bounds=tuple(zoomed))
    np.testing.assert_array_equal(image, expected)
    assert not np.array_equal(image, whole)
    coarse = whole[128:, :128, :3].astype(int)
    fine = image[::2, ::2, :3].astype(int)
    assert np.abs(coarse - fine).mean() < 10  # the same territories, only sharper
    for bad in ([x1, x0, y0, y1], [x0, x1, y0, float("nan")], [-1e308, 1e308, y0, y1], [x0, x0 + 1e-300, y0, y1]):
        with pytest.raises(traitlets.TraitError, match="view must be finite"):
            widget.view = bad
    assert widget.view == zoomed
    with pytest.raises(traitlets.TraitError, match="position_budget must be"):
        widget.position_budget = -1


def test_a_card_keeps_its_thumbnail_when_another_has_none(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    (path / "thumbnails" / "test.npy").unlink()  # the test split has no thumbnails now
    widget = nbdebug.show(path, recommendations=0).wait()
    session = widget.session
    train, test = session.run.indices("train")[:3], session.run.indices("test")[:2]
    made, pixels = nbdebug.cards.cards(
        session.run,
        np.concatenate([train, test]),
        np.zeros(0, dtype=np.int64),
        widget._thumbnails,
        np.zeros(session.run.n_samples),
        {},
    )
    assert [card["thumbnail"] for card in made] == [[0, 8, 8, 1], [64, 8, 8, 1], [128, 8, 8, 1], None, None]
    images = session.run.thumbnails("train")
    assert pixels == np.ascontiguousarray(images[train]).tobytes()


def test_what_the_background_threads_use_is_imported_with_the_widget():
    # The job computes attributes in two threads; two threads importing scikit-learn for the
    # first time at once fail ("partially initialized module"), which a fresh kernel hit.
    needed = ("sklearn.cluster", "sklearn.neighbors")
    code = f"import sys, nbdebug.widget; print(sorted(m for m in {needed} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['sklearn.cluster', 'sklearn.neighbors']"
