"""The monitor's warnings kept in a run directory (nbdebug.monitor.journal): what is written,
what is read back, and which recorded epoch each belongs to on the landscape's timeline."""

from __future__ import annotations

import json

import pytest

from nbdebug.monitor.journal import FILE, append_warning, landscape_epoch, landscape_warnings, read_warnings
from nbdebug.monitor.warning import TrainingWarning


def training_warning(code="overfitting", severity="warning", epoch=3, step=90, **text):
    fields = {"title": f"{code} title", "explanation": f"{code} explanation", "fix": "model.train()", "cause": ""}
    return TrainingWarning(code=code, severity=severity, epoch=epoch, step=step, **(fields | text))


def test_a_warning_is_read_back_as_written_and_its_text_stays_text(tmp_path):
    html = {"title": "<b>x</b>", "explanation": "<img src=x onerror=alert(1)> & more", "fix": "if a < b:\n    a = b"}
    append_warning(tmp_path, training_warning("overfitting", cause="no_regularization"), after_capture=2)
    append_warning(tmp_path, training_warning("nan_loss", "error", epoch=4, step=130, **html), after_capture=None)
    first, second = read_warnings(tmp_path)
    kept = ("event", "format", "code", "severity", "cause", "epoch", "step", "after_capture")
    assert {k: first[k] for k in kept} == {
        "event": "warning",
        "format": 1,
        "code": "overfitting",
        "severity": "warning",
        "cause": "no_regularization",
        "epoch": 3,
        "step": 90,
        "after_capture": 2,
    }
    assert (second["code"], second["severity"], second["after_capture"]) == ("nan_loss", "error", None)
    assert {k: second[k] for k in html} == html  # not escaped, not parsed: the same characters
    assert first["time"] <= second["time"]  # ISO times in UTC
    # One JSON object a line: appended, never rewritten.
    lines = (tmp_path / FILE).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["code"] for line in lines] == ["overfitting", "nan_loss"]


def test_no_file_means_no_warnings(tmp_path, recwarn):
    assert read_warnings(tmp_path) == []
    assert landscape_warnings(tmp_path, [1, 2, 3]) == []
    assert not recwarn.list


@pytest.mark.parametrize(
    ("after_capture", "epoch"),
    [
        (None, 2),  # before the first capture: the first snapshot shows that training
        (1, 2),  # after a capture nbdebug did not keep (epochs start at 2), before the first kept
        (2, 4),  # just after capture 2: the next snapshot, 4, shows the training it fired in
        (3, 4),  # between captures 2 and 4
        (4, 6),
        (5, 6),
        (6, 6),  # after the last capture (the run stopped there): the last snapshot
        (9, 6),
    ],
)
def test_a_warning_belongs_to_the_first_epoch_captured_after_it(after_capture, epoch):
    assert landscape_epoch({"after_capture": after_capture}, [2, 4, 6]) == epoch


def test_a_run_without_epochs_has_no_place_for_a_warning(tmp_path):
    assert landscape_epoch({"after_capture": None}, []) is None
    append_warning(tmp_path, training_warning(), after_capture=None)
    assert landscape_warnings(tmp_path, []) == []


def test_the_landscape_gets_plain_records_at_their_epochs(tmp_path):
    append_warning(tmp_path, training_warning("learning_rate_range", epoch=0, step=0), after_capture=None)
    append_warning(tmp_path, training_warning("overfitting", cause="no_regularization"), after_capture=3)
    append_warning(tmp_path, training_warning("nan_loss", "error", title="<b>x</b>"), after_capture=6)
    placed = landscape_warnings(tmp_path, [1, 2, 3, 4, 5, 6])
    assert [(w["epoch"], w["code"], w["severity"]) for w in placed] == [
        (1, "learning_rate_range", "warning"),
        (4, "overfitting", "warning"),
        (6, "nan_loss", "error"),
    ]
    assert placed[1] == {
        "epoch": 4,
        "code": "overfitting",
        "severity": "warning",
        "title": "overfitting title",
        "explanation": "overfitting explanation",
        "fix": "model.train()",
        "cause": "no_regularization",
    }
    assert placed[2]["title"] == "<b>x</b>"
    assert json.loads(json.dumps(placed)) == placed  # plain JSON, for the page


def test_a_corrupted_line_is_skipped_with_a_warning_and_a_cut_one_quietly(tmp_path, recwarn):
    for code in ("overfitting", "dead_relu", "nan_loss"):
        append_warning(tmp_path, training_warning(code), after_capture=1)
    path = tmp_path / FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"severity": "warning"', '"severity": 2')  # JSON, but not a warning
    path.write_text("\n".join([*lines, "{not json"]) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning) as caught:
        assert [w["code"] for w in read_warnings(tmp_path)] == ["overfitting", "nan_loss"]
    assert [str(w.message).split(FILE)[1] for w in caught] == [
        " line 2 is not a warning; skipped",
        " line 4 is not a warning; skipped",  # not JSON, and not the last line
    ]
    # A crash mid-write leaves the last line cut short: ignored without a word, and the next
    # warning starts a line of its own.
    path.write_text("\n".join(lines[:1]) + "\n" + lines[2][:25], encoding="utf-8")
    recwarn.clear()
    assert [w["code"] for w in read_warnings(tmp_path)] == ["overfitting"]
    assert not recwarn.list
    append_warning(tmp_path, training_warning("slow_convergence"), after_capture=1)
    with pytest.warns(UserWarning, match="line 2"):  # the cut line is mid-file now
        assert [w["code"] for w in read_warnings(tmp_path)] == ["overfitting", "slow_convergence"]
