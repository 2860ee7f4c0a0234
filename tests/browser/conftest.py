"""A real JupyterLab on 127.0.0.1 driven by headless Debian Chromium through Playwright.

Fixtures:
- ``lab``: a running JupyterLab server (its root is a temporary directory).
- ``notebook(cells)``: writes a notebook with those code cells into the server's root,
  opens it in a fresh browser page and returns a :class:`Notebook` to run cells and
  read their output like a person would (click the cell, Shift+Enter).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, root: Path, url: str, token: str):
        self.root, self.url, self.token = root, url, token


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root.parent / "jupyter-config")}
    with open(root.parent / "jupyterlab.log", "w") as log:
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
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError as err:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    raise RuntimeError(
                        "JupyterLab did not start:\n" + (root.parent / "jupyterlab.log").read_text()
                    ) from err
                time.sleep(0.3)
        yield Lab(root, url, token)
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(executable):
        pytest.fail("Chromium is not installed: run `apt-get install chromium` (scripts/dev.sh test does this)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class Notebook:
    """An open notebook page: run cells by clicking them and pressing Shift+Enter."""

    def __init__(self, page):
        self.page = page

    def cell(self, index: int):
        return self.page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(index)

    def run(self, index: int, timeout: float = 120_000) -> None:
        """Run cell ``index`` and wait until its execution count appears."""
        cell = self.cell(index)
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Shift+Enter")
        prompt = cell.locator(".jp-InputArea-prompt")
        self.page.wait_for_function(
            "el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle(), timeout=timeout
        )

    def output_text(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()


@pytest.fixture
def notebook(lab, browser, request):
    pages = []

    def open_notebook(cells: list[str], name: str | None = None) -> Notebook:
        name = name or f"{request.node.name}.ipynb".replace("[", "-").replace("]", "")
        nb = {
            "cells": [
                {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
                for src in cells
            ],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (lab.root / name).write_text(json.dumps(nb))
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        pages.append(page)
        # A fresh workspace each time, so notebooks of earlier tests do not reopen.
        page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
        page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for(timeout=60_000)
        # Wait until the kernel has started and is idle before running cells.
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
        return Notebook(page)

    yield open_notebook
    report = getattr(request.node, "report_call", None)
    for k, page in enumerate(pages):
        if report is not None and report.failed:  # keep what the page showed, for debugging
            shot = Path(tempfile.gettempdir()) / f"nbdebug-{request.node.name}-{k}.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failed page: {shot}")
        page.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.report_call = report
