"""Data repair on a recorded run: relabels saved and restored, corrected labels, answers and the
sample table, and the queries behind the widget's query bar."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nbdebug.interest.relabels import FILE
from nbdebug.query import matching, parse
from nbdebug.session import Session


def test_relabels_are_saved_restored_and_applied(digits_copy):
    session = Session(digits_copy, progress=False)
    run = session.run
    noisy = run.metadata["noisy"][:3]
    clean = run.metadata["clean_labels"]
    session.relabel({noisy[0]: clean[noisy[0]], noisy[1]: run.classes[clean[noisy[1]]]})  # an index, a name
    assert session.relabels == {noisy[0]: clean[noisy[0]], noisy[1]: clean[noisy[1]]}
    reopened = Session(digits_copy, progress=False)  # as after a kernel restart
    assert reopened.relabels == session.relabels
    corrected = reopened.corrected_labels()
    assert corrected[noisy[0]] == clean[noisy[0]] and corrected[noisy[1]] == clean[noisy[1]]
    untouched = np.setdiff1d(np.arange(run.n_samples), noisy[:2])
    assert (corrected[untouched] == run.labels[untouched]).all()
    reopened.relabel({noisy[0]: None, noisy[1]: int(run.labels[noisy[1]])})  # taken back, both ways
    assert Session(digits_copy, progress=False).relabels == {}
    assert (Session(digits_copy, progress=False).corrected_labels() == run.labels).all()


def test_unlabeled_samples_stay_unlabeled(record_tiny, tmp_path):
    session = Session(record_tiny(tmp_path / "run"), projection="pca", progress=False)
    unlabeled = session.run.indices("unlabeled")
    session.relabel({0: 2})
    assert (session.corrected_labels()[unlabeled] == -1).all()
    with pytest.raises(ValueError, match=rf"sample {unlabeled[0]} is unlabeled \(unlabeled split\)"):
        session.relabel({int(unlabeled[0]): 0})


@pytest.mark.parametrize(
    ("relabels", "error", "match"),
    [
        ([(1, 2)], TypeError, r"relabel takes a dict \{sample index: label\}"),
        ({"1": 2}, TypeError, "keys must be sample indices"),
        ({10**6: 2}, ValueError, r"sample index 1000000 is outside 0\.\.1796"),
        ({1: 10}, ValueError, r"class index in 0\.\.9"),
        ({1: "cat"}, ValueError, "'cat' is not a class of this run"),
        ({1: True}, ValueError, "class index"),
    ],
)
def test_bad_relabels_name_the_problem_and_save_nothing(digits_copy, relabels, error, match):
    session = Session(digits_copy, progress=False)
    with pytest.raises(error, match=match):
        session.relabel({0: 3, **relabels} if isinstance(relabels, dict) else relabels)
    assert session.relabels == {} and not (digits_copy / FILE).exists()


CRASH = textwrap.dedent("""
    import os, sys
    from nbdebug import load_run
    from nbdebug.interest.relabels import Relabels
    relabels = Relabels(load_run(sys.argv[1]))
    relabels.set({5: 1})
    relabels.set({6: 2, 7: 3})
    with open(relabels.path, "ab") as f:  # killed in the middle of the next line
        f.write(b'{"event": "relabel", "format": 1, "ind')
        f.flush()
        os.kill(os.getpid(), 9)
""")


def test_a_process_killed_mid_write_loses_only_that_relabel(digits_copy):
    result = subprocess.run([sys.executable, "-c", CRASH, str(digits_copy)], capture_output=True)
    assert result.returncode == -9, result.stderr.decode()
    session = Session(digits_copy, progress=False)
    assert session.relabels == {5: 1, 6: 2, 7: 3}
    session.relabel({8: 4})  # starts on a line of its own
    lines = (digits_copy / FILE).read_text().splitlines()
    assert lines[-2].endswith('"ind') and '"index": 8' in lines[-1]
    with pytest.warns(UserWarning, match="line 4 is not a relabel event; skipped"):
        assert Session(digits_copy, progress=False).relabels == {5: 1, 6: 2, 7: 3, 8: 4}


def test_answers_and_the_table(digits_copy):
    session = Session(digits_copy, progress=False)
    run = session.run
    assert (session.answers == -1).all()
    session.feedback(accept=[3, 4], reject=[5])
    session.relabel({3: 7})
    answers = session.answers
    assert answers[[3, 4, 5]].tolist() == [1, 1, 0] and (np.delete(answers, [3, 4, 5]) == -1).all()
    answers[:] = 1  # a copy: the session's answers stay
    assert session.answers[0] == -1

    table = session.table([5, 3, run.n_samples - 1])
    assert list(table.columns[:7]) == ["index", "split", "label", "predicted", "confidence", "answer", "relabel"]
    assert list(table.columns[7:]) == [n if n != "confidence" else "confidence_score" for n in session.attribute_names]
    assert table["index"].tolist() == [5, 3, run.n_samples - 1]
    assert table["split"].tolist() == [str(run.split[i]) for i in (5, 3, run.n_samples - 1)]
    assert table["label"].tolist() == [run.classes[run.labels[i]] for i in (5, 3, run.n_samples - 1)]
    probabilities = np.asarray(run.probabilities(run.epochs[-1]))
    assert table["predicted"].tolist() == [
        run.classes[int(np.argmax(probabilities[i]))] for i in (5, 3, run.n_samples - 1)
    ]
    assert table["confidence"].to_numpy() == pytest.approx(probabilities[[5, 3, run.n_samples - 1]].max(axis=1))
    assert table["answer"].tolist() == [0, 1, -1]
    assert table["relabel"].isna().tolist() == [True, False, True] and table["relabel"].iloc[1] == "7"
    assert table["forgetting"].to_numpy() == pytest.approx(
        session.anomaly_scores[[5, 3, run.n_samples - 1], session.attribute_names.index("forgetting")]
    )
    assert len(session.table()) == run.n_samples
    first = session.table([0], epoch=run.epochs[0])
    assert first["confidence"].iloc[0] == pytest.approx(float(np.max(run.probabilities(run.epochs[0])[0])))
    with pytest.raises(ValueError, match="epoch must be one of the recorded epochs"):
        session.table(epoch=99)


def test_query_semantics(digits_run_path):
    session = Session(digits_run_path, progress=False)
    run = session.run
    epoch = run.epochs[2]
    guess = np.argmax(np.asarray(run.probabilities(epoch)), axis=1)
    all_ = np.arange(run.n_samples)

    def query(**kwargs):
        return matching(session, epoch, **kwargs).tolist()

    assert query() == all_.tolist()
    assert query(label=3) == np.flatnonzero(run.labels == 3).tolist() == query(label="3")
    assert query(label=[1, "2"]) == np.flatnonzero(np.isin(run.labels, [1, 2])).tolist()
    assert query(predicted=5) == np.flatnonzero(guess == 5).tolist()
    wrong = np.flatnonzero((run.labels >= 0) & (guess != run.labels))
    assert query(mispredicted=True) == wrong.tolist()
    assert sorted(query(mispredicted=False) + wrong.tolist()) == all_.tolist()
    assert query(split="test") == run.indices("test").tolist()
    assert query(indices=[9, 2, 9]) == [2, 9]
    forgetting = session.anomaly_scores[:, session.attribute_names.index("forgetting")]
    assert query(where="forgetting >= 0.5") == np.flatnonzero(forgetting >= 0.5).tolist()
    both = query(label=3, mispredicted=True, split="train", where=["forgetting>0.1", "margin <= 0.9"])
    margin = session.anomaly_scores[:, session.attribute_names.index("margin")]
    expected = (run.labels == 3) & np.isin(all_, wrong) & (run.split == "train") & (forgetting > 0.1) & (margin <= 0.9)
    assert both == np.flatnonzero(expected).tolist()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"label": 10}, ValueError, r"label must be class indices in 0\.\.9 or names"),
        ({"predicted": "cat"}, ValueError, "predicted must be class indices"),
        ({"predicted": -1}, ValueError, "predicted must be class indices"),
        ({"mispredicted": "yes"}, TypeError, "mispredicted must be True, False or None"),
        ({"split": "val"}, ValueError, r"split must name splits of this run \['test', 'train'\]"),
        ({"indices": [10**6]}, IndexError, r"indices holds \[1000000\], outside 0\.\.1796"),
        (
            {"where": "forgeting > 1"},
            ValueError,
            "'forgeting' is not an attribute; choose from session.attribute_names",
        ),
        ({"where": "forgetting is big"}, ValueError, "where must be conditions like 'forgetting >= 3'"),
        ({"where": "forgetting > a lot"}, ValueError, "must compare with a number"),
    ],
)
def test_bad_queries_name_the_argument(digits_run_path, kwargs, error, match):
    session = Session(digits_run_path, progress=False)
    with pytest.raises(error, match=match):
        matching(session, session.run.epochs[-1], **kwargs)


def test_the_query_bar_text():
    assert parse("") == {}
    assert parse('label = 3 predicted=cat,"big dog" mispredicted split=test indices=4,17') == {
        "label": ["3"],
        "predicted": ["cat", "big dog"],
        "mispredicted": True,
        "split": ["test"],
        "indices": [4, 17],
    }
    assert parse("forgetting >= 3 and margin<0.2 mispredicted=false") == {
        "where": ["forgetting>=3", "margin<0.2"],
        "mispredicted": False,
    }
    assert parse('label="<img src=x onerror=alert(1)>" predicted = "a b"') == {
        "label": ["<img src=x onerror=alert(1)>"],  # quoted: operators inside are text
        "predicted": ["a b"],
    }
    for text, match in [
        ("label=", "ends at label= without a value"),
        ("aum => 3", "=> is not one of"),
        ("label=3 label=4", "names label twice"),
        ("indices=a,b", "indices= takes sample indices"),
        ("mispredicted=maybe", "mispredicted= takes true or false"),
        ("forgetting", "cannot read 'forgetting'"),
        ('label="3', "cannot read the query"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse(text)


def test_the_table_names_pandas_when_it_is_missing(digits_run_path, monkeypatch):
    session = Session(digits_run_path, progress=False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"session.table\(\) needs pandas: pip install pandas"):
        session.table([0])
