"""A real JupyterLab on 127.0.0.1 and Debian's headless Chromium: what the browser tests
(``tests/browser/conftest.py``) and ``benchmarks.widget`` share."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Never a downloaded browser: Debian's chromium, started like this.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """The chromium on PATH; raises with the fix when there is none."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(executable):
        raise RuntimeError("Chromium is not installed: run `apt-get install chromium` (scripts/dev.sh test does this)")
    return executable


class Lab:
    """A running JupyterLab server serving ``root``."""

    def __init__(self, root: Path, url: str, token: str, server: subprocess.Popen):
        self.root, self.url, self.token, self.server = root, url, token, server

    def page_url(self, notebook: str) -> str:
        """The address that opens ``notebook`` (relative to root) in a fresh workspace."""
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"

    def notebook7_url(self, notebook: str) -> str:
        """The URL of ``notebook`` in Notebook 7 (served by the same server)."""
        return f"{self.url}/notebooks/{notebook}?token={self.token}"

    def stop(self) -> None:
        self.server.terminate()
        try:
            self.server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.server.kill()


def start_lab(root: Path, config_dir: Path, log: Path, pythonpath: str | None = None, timeout: float = 60) -> Lab:
    """Start JupyterLab on a free port with a fresh token (settings in ``config_dir``, output
    in ``log``, ``pythonpath`` ahead of this environment's packages for its kernels) and
    wait until it answers; raises with the log if it does not."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    # No "get notified about Jupyter news?" toast over the page's widgets.
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir)}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    with open(log, "w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                f"--ServerApp.port={port}",
                "--ServerApp.ip=127.0.0.1",
                "--ServerApp.allow_root=True",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.disable_check_xsrf=True",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            return Lab(root, url, token, server)
        except OSError as err:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"JupyterLab did not start:\n{log.read_text()}") from err
            time.sleep(0.3)


def write_notebook(path: Path, sources: list[str]) -> None:
    """A notebook of code cells with these sources, for the Python 3 kernel."""
    notebook = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
            for source in sources
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))
