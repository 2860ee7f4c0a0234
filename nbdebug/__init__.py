"""nbdebug: a time-travelling debugger for PyTorch classifiers in Jupyter notebooks."""

from .display import show
from .fit import FitResult, fit
from .landscape.visualizer import TimeTravelVisualizer
from .monitor import Monitor
from .record import NonFiniteWarning, Recorder
from .run import Run, RunFormatError, load_run
from .session import Session
from .widget import Landscape

__all__ = [
    "FitResult",
    "Landscape",
    "Monitor",
    "NonFiniteWarning",
    "Recorder",
    "Run",
    "RunFormatError",
    "Session",
    "TimeTravelVisualizer",
    "fit",
    "load_run",
    "show",
]
__version__ = "0.1.0"
