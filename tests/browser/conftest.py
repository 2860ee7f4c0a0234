"""A real JupyterLab on 127.0.0.1 driven by headless Debian Chromium through Playwright.

Fixtures:
- ``lab``: a running JupyterLab server (its root is a temporary directory).
- ``notebook(cells, frontend="lab")``: writes a notebook with those code cells into the
  server's root, opens it in a fresh browser page (in JupyterLab, or Notebook 7 with
  ``frontend="notebook7"``) and returns a :class:`Notebook` to run cells and read their
  output like a person would (click the cell, Shift+Enter).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from benchmarks._lab import CHROMIUM_FLAGS, chromium_path, start_lab, write_notebook


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    server = start_lab(root, config_dir=root.parent / "jupyter-config", log=root.parent / "jupyterlab.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    try:
        executable = chromium_path()
    except RuntimeError as err:
        pytest.fail(str(err))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class Notebook:
    """An open notebook page: run cells by clicking them and pressing Shift+Enter."""

    def __init__(self, page, frontend: str = "lab"):
        self.page, self.frontend = page, frontend

    def cell(self, index: int):
        return self.page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(index)

    def wait_until_idle(self, timeout: float = 60_000) -> None:
        """Wait until the kernel has started and is idle: JupyterLab's status bar says so (its
        toolbar's indicator reads idle before the kernel connects); Notebook 7 has no status
        bar, and its indicator reads "unknown" until the kernel answers."""
        if self.frontend == "lab":
            self.page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=timeout)
        else:
            indicator = '.jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status="idle"]'
            self.page.locator(indicator).wait_for(timeout=timeout)

    def run(self, index: int, timeout: float = 120_000) -> None:
        """Run cell ``index`` and wait until its new execution count appears. A Shift+Enter the
        page missed while busy (the prompt did not change within 10 s) is pressed again."""
        from playwright.sync_api import TimeoutError as PageTimeout

        cell = self.cell(index)
        prompt = cell.locator(".jp-InputArea-prompt")
        before = prompt.evaluate("el => el.textContent")
        changed = "([el, before]) => el.textContent !== before"
        for attempt in range(3):
            cell.locator(".cm-content").click()
            self.page.keyboard.press("Shift+Enter")
            try:  # queued or running ("[*]"), or already done
                self.page.wait_for_function(changed, arg=[prompt.element_handle(), before], timeout=10_000)
                break
            except PageTimeout:
                if attempt == 2:
                    raise
        # Changed, so this run's count (which may equal the last one's after a kernel restart).
        self.page.wait_for_function(
            "el => /\\[\\d+\\]/.test(el.textContent)", arg=prompt.element_handle(), timeout=timeout
        )

    def output_text(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()


@pytest.fixture
def notebook(lab, browser, request):
    pages = []

    def open_notebook(cells: list[str], name: str | None = None, frontend: str = "lab") -> Notebook:
        name = name or f"{request.node.name}.ipynb".replace("[", "-").replace("]", "")
        write_notebook(lab.root / name, cells)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        pages.append(page)
        # JupyterLab opens a fresh workspace each time, so notebooks of earlier tests do not reopen.
        page.goto(lab.page_url(name) if frontend == "lab" else lab.notebook7_url(name))
        page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for(timeout=60_000)
        nb = Notebook(page, frontend)
        nb.wait_until_idle()  # before running cells
        return nb

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
