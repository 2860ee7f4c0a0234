"""The widget's investigation tools, kernel side: queries and their highlight, the per-sample
panel, predictions for the tooltip, thumbnails, split visibility, misplaced dots and
relabelling from the page."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets

import nbdebug
from nbdebug.query import matching


def sent_by(widget, content):
    """What the kernel sends back to the page for the message ``content``."""
    sent = []
    widget.send = lambda message, buffers=None: sent.append((message, buffers))
    widget._on_message(widget, content, [])
    return sent


def test_queries_from_python_and_the_query_bar_highlight_the_same_samples(digits_run_path):
    widget = nbdebug.show(digits_run_path, epoch=3, recommendations=0).wait()
    session = widget.session
    assert widget.highlighted is None and not widget.highlighting
    found = widget.query(label=3, mispredicted=True)
    assert found.tolist() == matching(session, 3, label=3, mispredicted=True).tolist() and len(found)
    assert widget.highlighted.tolist() == found.tolist()
    widget._on_message(widget, {"type": "query", "text": "label=3 mispredicted"}, [])
    assert widget.message == "" and widget.query_text == "label=3 mispredicted"
    assert widget.highlighted.tolist() == found.tolist()
    widget.epoch = 5  # the matches stay highlighted across epochs
    assert widget.highlighted.tolist() == found.tolist()
    widget._on_message(widget, {"type": "query", "text": "forgeting>2"}, [])  # a typo: said, nothing changes
    assert "'forgeting' is not an attribute" in widget.message
    assert widget.highlighted.tolist() == found.tolist()
    widget._on_message(widget, {"type": "query", "text": ""}, [])
    assert widget.highlighted is None
    assert len(widget.query()) == session.run.n_samples and widget.highlighted is None
    assert (
        widget.query(label=0, split="test").tolist()
        == np.flatnonzero((session.run.labels == 0) & (session.run.split == "test")).tolist()
    )


def test_the_tooltips_predictions_follow_the_epoch_shown(digits_run_path):
    widget = nbdebug.show(digits_run_path, epoch=2, recommendations=0)
    run = widget.session.run
    for epoch in (2, 6):
        widget.epoch = epoch
        probabilities = np.asarray(run.probabilities(epoch), dtype=np.float32)
        assert widget.predictions_epoch == epoch
        assert np.frombuffer(widget._predicted, np.uint16).tolist() == probabilities.argmax(1).tolist()
        confidence = np.frombuffer(widget._confidence, np.uint8) / 255
        assert np.abs(confidence - probabilities.max(1)).max() <= 0.5 / 255 + 1e-6


def test_inspecting_a_sample_gives_its_trail_predictions_and_attributes(digits_copy):
    widget = nbdebug.show(digits_copy, recommendations=3).wait()
    session, run = widget.session, widget.session.run
    widget.inspected = 17
    detail = widget.inspected_detail
    assert detail["index"] == 17 and detail["split"] == str(run.split[17]) and detail["label"] == run.labels[17]
    np.testing.assert_allclose(np.array(detail["trail"]), session.embedding[:, 17], rtol=1e-6)
    assert detail["predicted"] == [int(np.argmax(run.probabilities(e)[17])) for e in run.epochs]
    assert detail["confidence"] == pytest.approx(
        [float(np.max(run.probabilities(e)[17])) for e in run.epochs], abs=1e-3
    )
    assert set(detail["attributes"]) == set(session.attribute_names) and detail["answer"] == -1
    session.feedback(accept=[17])  # from Python: the panel follows
    assert widget.inspected_detail["answer"] == 1
    with pytest.raises(traitlets.TraitError, match="inspected must be a sample index in 0..1796 or -1"):
        widget.inspected = 1797
    widget.inspected = -1
    assert widget.inspected_detail == {}


def test_relabels_from_the_page_are_saved_and_shown(digits_run_path, copy_run):
    path = copy_run(digits_run_path)
    widget = nbdebug.show(path, recommendations=5).wait()
    first = widget.cards[0]["index"]
    widget._on_message(widget, {"type": "feedback", "accept": [first], "reject": []}, [])
    new = (int(widget.session.run.labels[first]) + 1) % 10
    widget._on_message(widget, {"type": "relabel", "index": first, "label": new}, [])
    assert widget.message == "" and widget.session.relabels == {first: new}
    assert widget.relabelled == [[first, new]]
    accepted = [card for card in widget.cards if card["kind"] == "accepted"]
    assert accepted[0]["index"] == first and accepted[0]["relabel"] == str(new)
    for bad, says in [
        ({"type": "relabel", "index": first, "label": "cat"}, "'cat' is not a class"),
        ({"type": "relabel", "index": 10**6, "label": 1}, "index holds an index outside"),
        ({"type": "relabel", "index": "1", "label": 1}, "index must be a list of indices"),
    ]:
        widget._on_message(widget, bad, [])
        assert says in widget.message
    assert nbdebug.Session(path, progress=False).relabels == {first: new}  # on disk
    again = nbdebug.show(path, recommendations=0)  # reopened: shown again
    assert again.relabelled == [[first, new]]


def test_thumbnails_and_split_visibility(digits_run_path, record_tiny, tmp_path):
    widget = nbdebug.show(digits_run_path, recommendations=0)
    [(message, buffers)] = sent_by(widget, {"type": "thumbnail", "index": 5})
    assert message == {"type": "thumbnail", "index": 5, "shape": [8, 8, 1]}
    np.testing.assert_array_equal(np.frombuffer(buffers[0], np.uint8), widget._thumbnails.of(5).ravel())
    sent_by(widget, {"type": "thumbnail", "index": -2})
    assert "outside" in widget.message
    widget.hidden_splits = ["test"]
    with pytest.raises(traitlets.TraitError, match=r"hidden_splits must name splits \['train', 'test', 'unlabeled'\]"):
        widget.hidden_splits = ["val"]
    bare = nbdebug.show(nbdebug.Session(record_tiny(tmp_path / "run"), projection="pca", progress=False))
    [(message, buffers)] = sent_by(bare, {"type": "thumbnail", "index": 5})
    assert message["shape"] is None and buffers is None


def test_misplaced_dots_are_found_for_the_epoch_shown(digits_run_path):
    widget = nbdebug.show(digits_run_path, epoch=2, recommendations=0).wait()
    widget.show_misplaced = True
    widget._misplaced_job.join(60)
    expected = widget.session.misplaced(2)
    assert widget.misplaced_epoch == 2
    territory = np.frombuffer(widget._misplaced_territory, np.uint32)
    assert territory.tolist() == np.flatnonzero(expected["territory"]).tolist()
    assert (
        np.frombuffer(widget._misplaced_neighbours, np.uint32).tolist()
        == np.flatnonzero(expected["neighbours"]).tolist()
    )
    # About one training dot in 1 - PPR sits on a territory that is not its prediction.
    ppr = widget.session.faithfulness["ppr_train"][1]
    train = widget.session.run.indices("train")
    assert abs(expected["territory"][train].mean() - (1 - ppr)) < 0.02
    widget.epoch = 6
    widget._misplaced_job.join(60)
    assert widget.misplaced_epoch == 6
