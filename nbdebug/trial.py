"""The Recorder's trial pass: the model run once on the first two training samples when the
Recorder is created, so that a wrong ``head``, ``output`` or input fails before training, with a
message that names the argument and what to pass instead.

Checked: the model runs on the batch; its output holds one row of scores per sample (a tensor,
the first element of a tuple, or ``.logits``); ``head`` is called once, takes ``(batch, dim)``
representations (or gives the same scores from the flattened input) and outputs as many columns
as the model; the output's values fit ``output`` (the monitor's value test,
:func:`nbdebug.monitor.rules.infer_output_activation`); a head nbdebug cannot rebuild gets a
warning with the line that shows its territories later.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import head as head_module
from .inputs import Batch, batch_size_of, call_model, describe_batch, logits_of
from .monitor.rules import infer_output_activation

# What each value test of infer_output_activation means for output=.
_KIND_OF_ACTIVATION = {"softmax": "probabilities", "sigmoid": "probabilities", "log_softmax": "log_probabilities"}


@dataclass
class Trial:
    """What the trial pass found: the model's number of output columns and the representation width."""

    n_outputs: int
    dim: int


def checked_logits(output: Any, batch: int) -> torch.Tensor:
    """(batch, n_outputs) scores from the model's output, or an error naming ``forward=``."""
    logits = logits_of(output)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"the model returned a {type(output).__name__}, which is neither a tensor of scores, a tuple whose "
            "first element is one, nor an object with .logits; pass Recorder(..., forward=f) with "
            "f(model, batch) returning the (batch, n_classes) logits, e.g. "
            "forward=lambda model, batch: model(**batch)['scores']"
        )
    if logits.ndim != 2 or logits.shape[0] != batch:
        raise RuntimeError(
            "the model must return one row of scores per sample, shape (batch, n_classes), "
            f"got {tuple(logits.shape)}; pass Recorder(..., forward=f) with f(model, batch) returning them"
        )
    return logits


def _passed_as(batch: Batch, forward: Callable | None) -> str:
    if forward is not None:
        return "forward(model, batch)"
    if isinstance(batch, dict):
        return "model(**batch)"
    return "model(*batch)" if isinstance(batch, tuple) else "model(batch)"


def run_trial(
    model: nn.Module,
    head: nn.Module,
    head_path: str,
    batch: Batch,
    forward: Callable | None,
    output: str,
    split: str = "train",
) -> Trial:
    """Run the model on ``batch`` (the first two samples of ``split``) and check what it gives."""
    seen: list[torch.Tensor] = []
    head_outputs: list[Any] = []
    handles = [
        head.register_forward_pre_hook(lambda _m, args: seen.append(args[0]) if args else None),
        head.register_forward_hook(lambda _m, _args, out: head_outputs.append(out)),
    ]
    try:
        with torch.no_grad():
            raw = call_model(model, batch, forward)
    except Exception as err:
        raise RuntimeError(
            f"running the model on the first two samples of {split} ({_passed_as(batch, forward)} with "
            f"{describe_batch(batch)}) failed: {err}. Check that {split} holds the inputs the model expects "
            "(the same shape and features as in training), or pass Recorder(..., forward=f) with "
            "f(model, batch) returning the logits"
        ) from err
    finally:
        for handle in handles:
            handle.remove()
    n = batch_size_of(batch)
    logits = checked_logits(raw, n)
    if len(seen) != 1:
        called = "never" if not seen and not head_outputs else f"{max(len(seen), len(head_outputs))} times"
        raise RuntimeError(
            f"head was called {called} in one forward pass; head must be the module called once per forward "
            "that maps representations to logits"
            + _suggestion(model, batch, forward, logits, " (this model's is {name})")
        )
    rep, head_out = seen[0], head_outputs[0]
    if not isinstance(rep, torch.Tensor) or rep.shape[0] != n:
        got = tuple(rep.shape) if isinstance(rep, torch.Tensor) else type(rep).__name__
        raise RuntimeError(
            f"head's input has shape {got} for a batch of {n}; head must see one representation per sample"
        )
    if not isinstance(head_out, torch.Tensor) or head_out.ndim != 2 or head_out.shape[1] != logits.shape[1]:
        out = tuple(head_out.shape) if isinstance(head_out, torch.Tensor) else type(head_out).__name__
        raise ValueError(
            f"head=model.{head_path} outputs {out} but the model outputs {tuple(logits.shape)}; head must be "
            "the module that produces the scores, one column per output"
            + _suggestion(model, batch, forward, logits, ": pass head=model.{name}")
        )
    if rep.ndim != 2 and not _flat_input_works(head, rep, head_out):
        raise ValueError(
            f"head=model.{head_path} takes input of shape {tuple(rep.shape)}, not (batch, dim) representations, "
            "and does not give the same scores from it flattened, so its territories could not be drawn"
            + _suggestion(model, batch, forward, logits, "; pass head=model.{name}, which takes (batch, dim)")
        )
    _check_output_values(model, logits, output)
    if head_module.describe(head) is None:
        warnings.warn(
            f"head=model.{head_path} is a {type(head).__name__}, which nbdebug cannot rebuild from the run alone; "
            f"to see its class territories, pass the module when opening the run: "
            f"nbdebug.show(run, head_module=model.{head_path}) or nbdebug.Session(run, head_module=model.{head_path})",
            UserWarning,
            stacklevel=4,
        )
    return Trial(n_outputs=int(logits.shape[1]), dim=int(rep[0].numel()))


def _flat_input_works(head: nn.Module, rep: torch.Tensor, expected: torch.Tensor) -> bool:
    """Whether ``head`` gives the same scores from the flattened representation (e.g. it starts
    with nn.Flatten), as territories and the visualizer feed it."""
    try:
        with torch.no_grad():
            out = head(rep.reshape(rep.shape[0], -1))
    except Exception:
        return False
    return isinstance(out, torch.Tensor) and out.shape == expected.shape and torch.allclose(out, expected)


def _suggestion(model: nn.Module, batch: Batch, forward: Callable | None, logits: torch.Tensor, template: str) -> str:
    """`template` filled with the submodule that would work as the head: the last one called
    that maps a (batch, dim) input to the model's (batch, n_outputs) scores; '' if none."""
    calls: list[tuple[str, Any, Any]] = []

    def hook(name: str) -> Callable:
        return lambda _m, args, out: calls.append((name, args[0] if args else None, out))

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            call_model(model, batch, forward)
    except Exception:
        return ""
    finally:
        for handle in handles:
            handle.remove()
    fitting = [
        name
        for name, x, out in calls
        if isinstance(x, torch.Tensor)
        and x.ndim == 2
        and x.shape[0] == logits.shape[0]
        and isinstance(out, torch.Tensor)
        and out.shape == logits.shape
    ]
    return template.format(name=fitting[-1]) if fitting else ""


def _check_output_values(model: nn.Module, logits: torch.Tensor, output: str) -> None:
    """The values must fit ``output``: logits that are really (log-)probabilities get a warning,
    'probabilities' or 'log_probabilities' that are not, an error."""
    modules = list(model.modules())
    last = modules[-1] if isinstance(modules[-1], (nn.Softmax, nn.Sigmoid, nn.LogSoftmax)) else None
    seen = infer_output_activation(logits, last)
    single = logits.shape[1] == 1
    looks_like = _KIND_OF_ACTIVATION.get(seen)
    if output == "logits":
        if looks_like is not None and (last is not None or seen != "sigmoid"):
            ending = f"ends with nn.{type(last).__name__}" if last is not None else f"returns values a {seen} gives"
            warnings.warn(
                f"the model {ending}, so its outputs are not logits; pass output={looks_like!r} to Recorder, "
                "or the recorded probabilities will be wrong",
                UserWarning,
                stacklevel=4,
            )
        return
    values = logits.detach().float()
    low, high = float(values.min()), float(values.max())
    if output == "probabilities":
        fits = (low >= 0 and high <= 1) if single else seen == "softmax"
    else:
        fits = high <= 0 if single else seen == "log_softmax"
    if not fits:
        right = "log_probabilities" if seen == "log_softmax" else "probabilities" if seen == "softmax" else "logits"
        rule = "in [0, 1]" if output == "probabilities" else "<= 0"
        rows = "" if single else (" with rows that sum to 1" if output == "probabilities" else " whose exp sums to 1")
        raise ValueError(
            f"output={output!r} but the model's outputs (from {low:.3g} to {high:.3g} on the first two samples) "
            f"are not {output.replace('_', '-')}, which are {rule}{rows}; pass output={right!r}"
        )
