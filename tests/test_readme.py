"""The README's integration snippets run as written: each ```python block of its section
"Recording the training code you already have", as a script in a fresh folder."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import nbdebug
from tests.gloo_exit import run_repeating_gloo_exit_abort

ROOT = Path(nbdebug.__file__).parent.parent
SECTION = "## Recording the training code you already have"


def _snippets() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else len(text)]
    snippets = []
    for match in re.finditer(r"```python\n(.*?)```", section, re.S):
        heading = re.findall(r"^### (.+)$", section[: match.start()], re.M)[-1]
        snippets.append((heading, match.group(1)))
    return snippets


def test_the_section_has_a_snippet_per_integration():
    headings = [heading for heading, _ in _snippets()]
    assert headings == [
        "A Hugging Face model",
        "A Hugging Face model",
        "Lightning",
        "The Hugging Face Trainer",
        "torch.distributed (DDP)",
    ]


# What each snippet prints, or the run it leaves.
EXPECTED = [
    "'runs/bert': 64 samples, 2 classes, 3 epochs (0..2), representation dim 32",
    None,
    "[0, 1, 2]",
    "'eval_loss'",
    "3 epochs (0..2)",
]


@pytest.mark.parametrize("index", range(5))
def test_readme_snippet_runs(tmp_path, index):
    heading, code = _snippets()[index]
    if "lightning" in code:
        pytest.importorskip("lightning")
    if "transformers" in code:
        pytest.importorskip("transformers")

    def run(folder):
        script = folder / "snippet.py"
        script.write_text(code)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "MASTER_PORT": port,
        }
        return subprocess.run(
            [sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True, timeout=300
        )

    result, tmp_path = run_repeating_gloo_exit_abort(run, tmp_path)  # the DDP snippet: see tests/gloo_exit.py
    assert result.returncode == 0, f"{heading}:\n{result.stderr[-3000:]}"
    if EXPECTED[index] is None:
        assert nbdebug.load_run(tmp_path / "runs" / "scores").epochs == [0]
    else:
        assert EXPECTED[index] in result.stdout, result.stdout
