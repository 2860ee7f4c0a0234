"""The visualizer's cache in the run directory (:meth:`nbdebug.run.Run.fingerprint` tells
whether it still belongs to the recorded data).

``<run>/visualizer/`` is written whole as ``<run>/.tmp-visualizer-*`` and swapped in (see
:func:`nbdebug._io.publish_dir`); nothing in it is pickled:

* ``visualizer.json``: ``format``, ``key`` (hash of the settings that change the fit),
  ``config`` (those settings), ``epochs``, ``fingerprint`` (n_samples, dim, n_classes, the
  run's creation time and, per epoch, a hash of ``epoch.json`` and the file sizes),
  ``seconds``, ``written``;
* ``model.npz``: the networks' weights as ``model/<name>`` float32 arrays, the per-epoch
  ``mean`` (E, dim) and ``scale`` (E,), ``pool`` (indices of the samples trained on) and
  ``offsets`` (E, len(pool), 2), the refinement of each pool sample's position;
* ``embedding.npy``: float32 (E, n_samples, 2), NaN where a representation is not finite;
* ``metrics.json``: the faithfulness figures, once computed (NaN stored as null), with the
  settings they were computed under.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import TMP_PREFIX, json_bytes, publish_dir, save_array, write_json
from ..run import Run

CACHE_DIR = "visualizer"
# Bump when the cached files or the fit change meaning: caches of older code are refitted.
CACHE_FORMAT = 3
METRICS_FILE = "metrics.json"


def cache_key(config: dict[str, Any]) -> str:
    """A short hash of the settings that change the fit, and of the cache format."""
    return hashlib.sha256(json.dumps(dict(config, format=CACHE_FORMAT), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class CachedFit:
    """A fit read back from the cache (arrays as stored; see the module docstring)."""

    epochs: list[int]
    state: dict[str, torch.Tensor]
    mean: np.ndarray
    scale: np.ndarray
    pool: np.ndarray
    offsets: np.ndarray
    embedding: np.ndarray
    seconds: float | None


def read_fit(run: Run, key: str, fingerprint: dict[str, Any]) -> CachedFit | None:
    """The cached fit, if it was made under ``key`` on this run or on an earlier state of it
    (a prefix of its epochs with identical files); else None. An unreadable cache is
    ignored with a warning."""
    folder = run.path / CACHE_DIR
    if not (folder / "visualizer.json").exists():
        return None
    try:
        with open(folder / "visualizer.json", encoding="utf-8") as f:
            info = json.load(f)
        if info.get("format") != CACHE_FORMAT or info.get("key") != key:
            return None
        old = info["fingerprint"]
        cached_epochs = [int(e) for e in info["epochs"]]
        same_run = all(old[name] == fingerprint[name] for name in ("n_samples", "dim", "n_classes", "created"))
        prefix = cached_epochs == list(run.epochs)[: len(cached_epochs)]
        same_epochs = all(old["epochs"].get(str(e)) == fingerprint["epochs"].get(str(e)) for e in cached_epochs)
        if not (same_run and prefix and same_epochs):
            return None
        with np.load(folder / "model.npz", allow_pickle=False) as arrays:
            state = {
                name[len("model/") :]: torch.from_numpy(arrays[name].copy())
                for name in arrays.files
                if name.startswith("model/")
            }
            mean, scale, pool = arrays["mean"].copy(), arrays["scale"].copy(), arrays["pool"].copy()
            offsets = arrays["offsets"].copy()
        embedding = np.load(folder / "embedding.npy", allow_pickle=False)
        if (
            embedding.shape != (len(cached_epochs), run.n_samples, 2)
            or mean.shape != (len(cached_epochs), run.dim)
            or offsets.shape != (len(cached_epochs), len(pool), 2)
        ):
            raise ValueError("shapes disagree with visualizer.json")
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as err:
        warnings.warn(f"ignoring the unreadable visualizer cache in {folder} ({err}); refitting", stacklevel=3)
        return None
    return CachedFit(cached_epochs, state, mean, scale, pool, offsets, embedding, info.get("seconds"))


def write_fit(
    run: Run,
    *,
    key: str,
    config: dict[str, Any],
    fingerprint: dict[str, Any],
    model: nn.Module,
    arrays: dict[str, np.ndarray],
    embedding: np.ndarray,
    epochs: list[int],
    seconds: float,
) -> None:
    """Write ``<run>/visualizer/`` whole (``arrays``: mean, scale, pool and offsets); a
    directory that cannot be written is left as it is, with a warning."""
    folder = run.path / CACHE_DIR
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{CACHE_DIR}-", dir=run.path))
    except OSError as err:
        warnings.warn(f"cannot cache the visualizer in {run.path} ({err}); it will be refitted next time", stacklevel=3)
        return
    try:
        saved: dict[str, Any] = {f"model/{n}": value.detach().cpu().numpy() for n, value in model.state_dict().items()}
        saved.update(arrays)
        with open(tmp / "model.npz", "wb") as f:
            np.savez(f, **saved)
        with open(tmp / "embedding.npy", "wb") as f:
            save_array(f, embedding)
        info = {
            "format": CACHE_FORMAT,
            "key": key,
            "config": config,
            "epochs": epochs,
            "fingerprint": fingerprint,
            "seconds": seconds,
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / "visualizer.json").write_bytes(json_bytes(info))  # the directory's rename makes it whole
        publish_dir(tmp, folder, replace=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        warnings.warn(f"cannot cache the visualizer in {folder} ({err}); it will be refitted next time", stacklevel=3)


def read_faithfulness(run: Run, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The faithfulness figures cached under exactly ``settings``, else None."""
    file = run.path / CACHE_DIR / METRICS_FILE
    if not file.exists():
        return None
    try:
        stored = json.loads(file.read_text(encoding="utf-8"))
        if stored.get("settings") != settings:
            return None
        return {
            name: (
                value
                if name == "epochs"
                else np.array(
                    [np.nan if v is None else v for v in value], dtype=bool if name == "reflection" else float
                )
            )
            for name, value in stored["metrics"].items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: recomputed and overwritten


def write_faithfulness(run: Run, settings: dict[str, Any], result: dict[str, Any]) -> None:
    """Keep ``result`` next to the cached model (if there is one), under ``settings``."""
    if not (run.path / CACHE_DIR).is_dir():
        return
    serialisable = {
        name: (
            value
            if name == "epochs"
            else [None if isinstance(v, float) and not math.isfinite(v) else v for v in np.asarray(value).tolist()]
        )
        for name, value in result.items()
    }
    file = run.path / CACHE_DIR / METRICS_FILE
    try:
        write_json(file, {"settings": settings, "metrics": serialisable}, durable=False, indent=None)
    except OSError as err:
        warnings.warn(f"cannot cache the faithfulness metrics in {file} ({err})", stacklevel=3)
