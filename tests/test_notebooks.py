"""The example notebooks run from top to bottom."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def test_quickstart_runs_and_records_the_demo(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "quickstart.ipynb", folder)
    nb = nbformat.read(folder / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    assert (tmp_path / "runs" / "demo" / "run.json").exists()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "the widget shows epoch 30" in outputs
    assert "144 flipped labels" in outputs
    share = int(outputs.split("% of the first 50 recommendations")[0].split()[-1])
    assert share >= 80
    flipped_share = int(outputs.split("% of them flipped")[0].split()[-1])
    assert flipped_share >= 50  # a query for the flip's class pair finds mostly flipped labels
    repaired = int(outputs.split("agree with the clean ones for ")[1].split("%")[0])
    assert repaired >= 90


def test_monitor_notebook_shows_the_three_scram_scenarios(tmp_path):
    shutil.copy(NOTEBOOKS / "monitor.ipynb", tmp_path)
    nb = nbformat.read(tmp_path / "monitor.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "nan_loss" in outputs and "learning_rate_range" in outputs
    assert "unnormalized_input" in outputs and "overfitting" in outputs
    assert "memorizing_noisy_labels" in outputs and "Most likely cause: these labels are probably wrong" in outputs
    assert "'memorizing_noisy_labels')" in outputs.split("warnings on the timeline:")[1]  # a marker for it
    assert "warnings: [] |" in outputs  # the healthy run stays quiet


def test_repair_notebook_repairs_a_buggy_training_and_its_labels(tmp_path):
    folder = tmp_path / "notebooks"  # its data repair reads ../runs/demo, recorded there
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "repair.ipynb", folder)
    nb = nbformat.read(folder / "repair.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "inputs: standardized with the per-feature mean and std" in outputs
    assert "model.5: Softmax(dim=1) -> Identity()" in outputs
    assert "the user's model still ends with Softmax(dim=1)" in outputs
    assert "50 relabels" in outputs  # the quickstart's way: the flipped among the first 50 recommendations
    given, corrected = (int(n) for n in outputs.split("wrong training labels: ")[1].split()[:3:2])
    assert corrected <= given - 45  # the 50 relabels fixed flipped labels
    before, after = (float(v.rstrip("%")) for v in outputs.split("data repair: val accuracy ")[1].split()[:3:2])
    assert abs(after - before) < 3  # digits: label noise barely moves validation accuracy
