"""Shared fixtures: small real runs recorded once per test session."""

from __future__ import annotations

import pytest

from nbdebug import Session
from nbdebug.demo import record_demo


@pytest.fixture(scope="session")
def digits_run_path(tmp_path_factory):
    """A real digits run: MLP, 10% flipped train labels, 6 epochs, test split and thumbnails,
    with the default visualizer fitted and cached.

    Treat it as read-only; copy it (shutil.copytree) before changing anything on disk.
    """
    path = tmp_path_factory.mktemp("runs") / "digits"
    record_demo(path, epochs=6, noise=0.1, seed=0, progress=False)
    # Fit the default visualizer once: it is cached in the run, so every Session and
    # widget on this run (or a copy of it) reuses it instead of fitting again.
    session = Session(path)
    session.projection.progress = False
    session.fit()
    return path
