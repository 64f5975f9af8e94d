"""The operator's own metrics: Python files in $PROMPT_LAB_METRICS_DIR, each defining
`score(prediction, reference, example) -> float`; a file is imported again once it changes."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import numbers
import re
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any, Final

from core import policy
from core.errors import PromptLabError

NAME: Final = re.compile(r"[a-z0-9_]{1,40}")
PREFIX: Final = "custom:"
_MODULE_PREFIX: Final = "prompt_lab_operator_metric_"  # their names in sys.modules
_SHORT: Final = 160  # characters of an exception's message shown to people


@dataclass(frozen=True)
class CustomMetric:
    """One loaded metric file and what its constants declare."""

    name: str  # the file stem; selected as custom:<name>
    summary: str  # the module docstring's first line
    low: float | None  # LOW; None: unbounded
    high: float | None  # HIGH
    higher_is_better: bool | None  # HIGHER_IS_BETTER, True unless the file says otherwise
    needs_reference: bool  # NEEDS_REFERENCE, True unless the file says otherwise
    score: Callable[[str, str | None, dict], Any]


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[int, int]  # the file's mtime_ns and size when it was imported
    metric: CustomMetric | None
    problem: str | None


_loaded: dict[Path, _Loaded] = {}
_lock = threading.Lock()  # one import of a file at a time; sessions share what was loaded


def folder() -> Path | None:
    """The operator's metrics folder, or None when PROMPT_LAB_METRICS_DIR is not set."""
    return policy.current().metrics_dir


def available() -> dict[str, CustomMetric]:
    """The metrics that loaded, by name, sorted."""
    return _scan()[0]


def problems() -> list[str]:
    """One sentence per metric file that is not offered, and why."""
    return _scan()[1]


def _scan() -> tuple[dict[str, CustomMetric], list[str]]:
    where = folder()
    if where is None:
        return {}, []
    if not where.is_dir():
        return {}, [
            f"{policy.VARIABLES['metrics_dir']} is set but names no folder; no operator "
            "metrics are offered."
        ]
    metrics: dict[str, CustomMetric] = {}
    found: list[str] = []
    for path in sorted(where.glob("*.py")):
        if not NAME.fullmatch(path.stem):
            found.append(
                f"{path.name}: not offered; a metric file is named with lower-case letters, "
                "digits and _ (at most 40), e.g. word_overlap.py."
            )
            continue
        loaded = _load(path)
        if loaded.metric is not None:
            metrics[loaded.metric.name] = loaded.metric
        elif loaded.problem:
            found.append(loaded.problem)
    return metrics, found


def _load(path: Path) -> _Loaded:
    """The file's metric, imported again only when its time or size changed."""
    try:
        stat = path.stat()
    except OSError:  # removed since the folder was listed
        return _Loaded((0, 0), None, None)
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        known = _loaded.get(path)
        if known is None or known.stamp != stamp:
            try:
                known = _Loaded(stamp, _metric_of(path, _import(path)), None)
            except PromptLabError as exc:
                known = _Loaded(stamp, None, str(exc))
            _loaded[path] = known
        return known


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the file itself each time: a __pycache__ file, stale after an edit within the
    same second, is neither read nor written into the operator's folder."""

    def get_code(self, fullname: str) -> CodeType:
        return self.source_to_code(self.get_data(self.path), self.path)


def _import(path: Path) -> ModuleType:
    """The module from this file alone: no search path is changed, no other code is run."""
    name = _MODULE_PREFIX + path.stem
    loader = _SourceOnlyLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None or spec.loader is None:
        raise PromptLabError(f"{path.name}: could not be loaded as a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look their module up there
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the operator's code: anything may be raised
        sys.modules.pop(name, None)
        raise PromptLabError(
            f"{path.name}: could not be loaded ({_described(exc, path)})."
        ) from None
    return module


def _metric_of(path: Path, module: ModuleType) -> CustomMetric:
    score = getattr(module, "score", None)
    if not callable(score):
        raise PromptLabError(
            f"{path.name}: defines no function score(prediction, reference, example); not offered."
        )
    doc = (module.__doc__ or "").strip()
    summary = doc.splitlines()[0] if doc else f"The operator's metric in {path.name}."
    return CustomMetric(
        name=path.stem,
        summary=summary,
        low=_bound(path, module, "LOW"),
        high=_bound(path, module, "HIGH"),
        higher_is_better=_flag(path, module, "HIGHER_IS_BETTER", none_allowed=True),
        needs_reference=_flag(path, module, "NEEDS_REFERENCE", none_allowed=False),
        score=score,
    )


def _bound(path: Path, module: ModuleType, name: str) -> float | None:
    value = getattr(module, name, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise PromptLabError(
            f"{path.name}: {name} must be a finite number or None; got {value!r:.40}."
        )
    return float(value)


def _flag(path: Path, module: ModuleType, name: str, *, none_allowed: bool) -> bool | None:
    value = getattr(module, name, True)
    if isinstance(value, bool) or (value is None and none_allowed):
        return value
    wanted = "True, False or None" if none_allowed else "True or False"
    raise PromptLabError(f"{path.name}: {name} must be {wanted}; got {value!r:.40}.")


def score_metric(
    metric: CustomMetric,
    predictions: Sequence[str],
    references: Sequence[str | None],
    examples: Sequence[dict],
) -> list[float | None]:
    """The metric's score of each item, None where it needs a reference and the item has none;
    a score that raises or is not a finite number is an error naming the metric and example."""
    values: list[float | None] = []
    for prediction, reference, example in zip(predictions, references, examples, strict=True):
        if reference is None and metric.needs_reference:
            values.append(None)
            continue
        where = f"{PREFIX}{metric.name} on example {example.get('id')!r}"
        try:
            value = metric.score(prediction, reference, dict(example))
        except Exception as exc:  # the operator's code: anything may be raised
            raise PromptLabError(f"Metric {where} failed: {_described(exc)}.") from None
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise PromptLabError(
                f"Metric {where} returned {type(value).__name__}; score must return a number."
            )
        if not math.isfinite(value):
            raise PromptLabError(
                f"Metric {where} returned {value}; score must return a finite number."
            )
        values.append(float(value))
    return values


def _described(exc: BaseException, path: Path | None = None) -> str:
    """'Class: message', shortened, with the metrics folder's path reduced to the file name."""
    message = str(exc)
    if path is not None:
        message = message.replace(str(path), path.name).replace(str(path.parent), "")
    message = " ".join(message.split())
    if len(message) > _SHORT:
        message = message[: _SHORT - 1] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
