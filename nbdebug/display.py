"""``nbdebug.show``: whatever nbdebug can show in a notebook, picked by what it is given -- the
landscape of a run (:class:`~nbdebug.widget.Landscape`) or a monitor's live view."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .monitor import Monitor
from .run import Run
from .session import Session
from .widget import Landscape

if TYPE_CHECKING:
    from .monitor.widget import MonitorWidget


def show(
    obj: Run | Session | Monitor | str | Path, projection: Any = None, head_module: Any = None, **kwargs: Any
) -> Landscape | MonitorWidget:
    """Show a run in the notebook: ``nbdebug.show(run)``, ``show(session)`` or ``show("runs/demo")``;
    or the live view of a training monitor: ``nbdebug.show(monitor)``.

    ``projection`` ("visualizer", the default, or "pca") and ``head_module`` (for a custom
    head) are passed to :class:`Session` when a run is given; other options (``epoch``,
    ``recommendations``, ``view``, ``renderer``, ``position_budget``) go to :class:`Landscape`."""
    if isinstance(obj, Monitor):
        if kwargs or projection is not None or head_module is not None:
            raise TypeError("show(monitor) takes no options")
        return obj.widget
    if isinstance(obj, Session):
        if projection is not None or head_module is not None:
            raise TypeError(
                "show(session) uses the session's projection and head; pass projection= or head_module= to Session"
            )
        session = obj
    elif isinstance(obj, (Run, str, Path)):
        session = Session(obj, projection=projection, head_module=head_module)
    else:
        raise TypeError(f"show() takes a Run, a Session, a run directory path or a Monitor, got {type(obj).__name__}")
    return Landscape(session, **kwargs)
