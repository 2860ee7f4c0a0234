"""The live notebook view of a Monitor: loss and accuracy curves with warning markers, and
the warnings with their explanations and fixes.

Built from plotly's ``FigureWidget`` and ipywidgets, so it updates while the training cell
is still running: trait changes travel to the browser as they happen. Updates are throttled
(``interval`` seconds) except at epoch ends and new warnings. Text that comes from the user's
model or data (layer names, numbers in explanations) is escaped before it becomes HTML.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    from .monitor import Change, Monitor
    from .warning import TrainingWarning

MAX_POINTS = 2000  # batch losses sent to the browser; longer runs are strided
COLORS = {"error": "#d62728", "warning": "#ff7f0e"}


def _finite(values: list) -> list:
    """Non-finite numbers become gaps (None): plotly cannot plot them and JSON cannot hold them."""
    return [v if v is not None and math.isfinite(v) else None for v in values]


class MonitorWidget(ipywidgets.VBox):
    """Curves and warnings of one :class:`~nbdebug.monitor.Monitor`, refreshed whenever it changes
    (after steps at most every ``interval`` seconds)."""

    def __init__(self, monitor: Monitor, interval: float = 0.5):
        self.monitor = monitor
        self.interval = interval
        self._stop_listening: Callable[[], None] | None = None
        self._last_refresh = -math.inf
        fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.1)
        fig.add_trace(go.Scatter(name="batch loss", mode="lines", line={"width": 1, "color": "#9ecae1"}), 1, 1)
        fig.add_trace(go.Scatter(name="train loss (epoch)", mode="lines+markers", line={"color": "#1f77b4"}), 1, 1)
        fig.add_trace(go.Scatter(name="val loss (epoch)", mode="lines+markers", line={"color": "#2ca02c"}), 1, 1)
        fig.add_trace(
            go.Scatter(
                name="warnings",
                mode="markers",
                hoverinfo="text",
                marker={"symbol": "x", "size": 11, "line": {"width": 1}},
            ),
            1,
            1,
        )
        fig.add_trace(go.Scatter(name="train acc", mode="lines+markers", line={"color": "#1f77b4"}), 1, 2)
        fig.add_trace(go.Scatter(name="val acc", mode="lines+markers", line={"color": "#2ca02c"}), 1, 2)
        fig.update_xaxes(title_text="step", row=1, col=1)
        fig.update_xaxes(title_text="epoch", row=1, col=2)
        fig.update_yaxes(range=[0, 1.02], row=1, col=2)
        fig.update_layout(
            height=320, margin={"l": 40, "r": 10, "t": 30, "b": 40}, legend={"orientation": "h", "y": -0.25}
        )
        self.figure = go.FigureWidget(fig)
        self.status = ipywidgets.HTML()
        self.warning_list = ipywidgets.HTML()
        self.repair_list = ipywidgets.HTML()  # filled by nbdebug.fit's repairs
        super().__init__([self.status, self.figure, self.warning_list, self.repair_list])
        self.add_class("nbdebug-monitor")
        self._stop_listening = monitor.on_change(self._on_change)
        self.refresh(force=True)

    def close(self) -> None:
        """Close the widget; the monitor stops refreshing it."""
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        super().close()

    def _on_change(self, change: Change) -> None:
        # Steps are throttled; epoch ends, warnings and the detach (which shows the steps the
        # throttle held back) are shown at once.
        self.refresh(force=change != "step")

    def refresh(self, force: bool = False) -> None:
        """Push the monitor's current state to the browser (at most every ``interval`` s)."""
        now = time.monotonic()
        if not force and now - self._last_refresh < self.interval:
            return
        self._last_refresh = now
        mon = self.monitor
        losses = mon.step_losses
        stride = max(1, math.ceil(len(losses) / MAX_POINTS))
        steps = list(range(1, len(losses) + 1, stride))
        epochs = mon.epochs
        e_steps = [e["step"] for e in epochs]
        e_nums = [e["epoch"] for e in epochs]
        marks = [self._marker(w) for w in mon.warnings]
        with self.figure.batch_update():
            data = self.figure.data
            data[0].x, data[0].y = steps, _finite(losses[::stride])
            data[1].x, data[1].y = e_steps, _finite([e["train_loss"] for e in epochs])
            data[2].x, data[2].y = e_steps, _finite([e["val_loss"] for e in epochs])
            data[3].x = [m[0] for m in marks]
            data[3].y = [m[1] for m in marks]
            data[3].hovertext = [m[2] for m in marks]
            data[3].marker.color = [m[3] for m in marks]
            data[4].x, data[4].y = e_nums, _finite([e["train_acc"] for e in epochs])
            data[5].x, data[5].y = e_nums, _finite([e["val_acc"] for e in epochs])
        self.status.value = (
            f"<b>nbdebug monitor</b> · step {mon.step_count} · epoch {mon.epoch} · {len(mon.warnings)} warning(s)"
        )
        self.warning_list.value = self._warnings_html()

    def show_repairs(self, items: list[tuple[str, str, str]]) -> None:
        """Show a repair log under the warnings: (headline, body, outcome) per entry, already
        HTML-escaped (see :func:`nbdebug.repair.log.html_items`)."""
        colors = {"solved": "#2ca02c", "improved": "#2ca02c", "skipped": "#bbbbbb"}
        self.repair_list.value = "".join(
            f"<details class='nbdebug-repair' style='border-left:4px solid {colors.get(outcome, '#d62728')};"
            f"padding:2px 8px;margin:4px 0'><summary>repair {i}: {head}</summary>"
            f"<pre style='white-space:pre-wrap'>{body}</pre></details>"
            for i, (head, body, outcome) in enumerate(items, 1)
        )

    def _marker(self, warning: TrainingWarning) -> tuple[int, float, str, str]:
        """(x, y, hover text, colour) of a warning's marker on the loss curve."""
        losses = self.monitor.step_losses
        finite = [v for v in losses if math.isfinite(v)]
        y = losses[warning.step - 1] if 0 < warning.step <= len(losses) else (finite[0] if finite else 0.0)
        if not math.isfinite(y):
            y = max(finite) if finite else 0.0  # NaN loss: put the marker at the top of the curve
        # plotly renders a subset of HTML in hover text, so escape it like the list below.
        text = html.escape(f"{warning.code} (step {warning.step}): {warning.title}")
        return warning.step, y, text, COLORS[warning.severity]

    def _warnings_html(self) -> str:
        warnings = self.monitor.warnings
        if not warnings:
            return "<p style='color:#2ca02c'>No problems detected so far.</p>"
        items = []
        for w in warnings:
            seen = f" · seen {w.count}×, last at step {w.last_step}" if w.count > 1 else ""
            items.append(
                f"<details class='nbdebug-warning' data-code='{html.escape(w.code, quote=True)}' "
                f"style='border-left:4px solid {COLORS[w.severity]};padding:2px 8px;margin:4px 0'>"
                f"<summary><b>{html.escape(w.severity.upper())}: {html.escape(w.title)}</b> "
                f"<code>{html.escape(w.code)}</code> · epoch {w.epoch}, step {w.step}{seen}</summary>"
                f"<p>{html.escape(w.explanation)}</p>"
                f"<pre style='background:#f6f6f6;padding:6px'>{html.escape(w.fix)}</pre></details>"
            )
        return "".join(items)
