"""Scoring outputs against references: ROUGE per example from the local `evaluate` metric, and the
mean with a seeded percentile-bootstrap confidence interval that other metrics can reuse."""

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from core.errors import PromptLabError

if TYPE_CHECKING:
    import evaluate

# `evaluate.load` accepts the folder because the script inside it is named after it.
ROUGE_METRIC_DIR: Final = Path(__file__).parent / "metrics" / "rouge"
ROUGE_TYPES: Final = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# rouge_score's own pattern: n-grams only up to 9, and "rougeLsum" with a lower-case "s".
_KNOWN_ROUGE_TYPE: Final = re.compile(r"rouge[1-9]|rougeL|rougeLsum")

# The cached metric object buffers its inputs between add and compute, so concurrent
# callers (Streamlit runs each session in its own thread) must take turns.
_ROUGE_LOCK: Final = threading.Lock()


@dataclass(frozen=True)
class RougeOptions:
    """What ROUGE computes; `RougeOptions.lab()` matches the classic dialogue-summarisation lab."""

    use_stemmer: bool = False  # evaluate's default; the lab turns it on
    rouge_types: tuple[str, ...] = ROUGE_TYPES  # the four types evaluate reports by default

    def __post_init__(self) -> None:
        # Accept any sequence of names but store a tuple, so the options stay hashable.
        object.__setattr__(self, "rouge_types", tuple(self.rouge_types))
        if not self.rouge_types:
            raise PromptLabError(f"Choose at least one ROUGE type, e.g. {', '.join(ROUGE_TYPES)}.")
        unknown = [name for name in self.rouge_types if not _KNOWN_ROUGE_TYPE.fullmatch(name)]
        if unknown:
            raise PromptLabError(
                f"Unknown ROUGE type {', '.join(map(repr, unknown))}; use rouge1 to rouge9, "
                "rougeL or rougeLsum."
            )
        if len(set(self.rouge_types)) != len(self.rouge_types):
            raise PromptLabError(f"ROUGE types are listed twice: {self.rouge_types}.")

    @classmethod
    def lab(cls) -> "RougeOptions":
        """The FLAN-T5 dialogue-summarisation lab scores with the Porter stemmer on."""
        return cls(use_stemmer=True)


DEFAULT_ROUGE_OPTIONS: Final = RougeOptions()


@dataclass(frozen=True)
class Aggregate:
    """A mean over examples and its bootstrap confidence interval."""

    mean: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class RougeReport:
    """ROUGE F-measures per example, and their mean with a confidence interval, per ROUGE type."""

    per_example: dict[str, tuple[float, ...]]  # type -> one F-measure per item, in input order
    aggregates: dict[str, Aggregate]
    n: int
    options: RougeOptions  # holds use_stemmer and the ROUGE types
    confidence: float
    resamples: int
    seed: int


@cache
def load_rouge() -> "evaluate.EvaluationModule":
    """The local ROUGE metric, loaded once per process (importing `evaluate` takes seconds)."""
    # Imported here so that modules needing only `mean_bootstrap_ci` do not pay for `evaluate`,
    # which imports transformers.
    import evaluate

    # In memory, the metric writes no Arrow files or locks into the Hugging Face cache.
    return evaluate.load(str(ROUGE_METRIC_DIR), keep_in_memory=True)


def score_rouge(
    predictions: Sequence[str],
    references: Sequence[str | Sequence[str] | None],
    *,
    options: RougeOptions = DEFAULT_ROUGE_OPTIONS,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> RougeReport:
    """ROUGE per example, and per type the plain mean with a seeded percentile-bootstrap CI.

    The canonical `evaluate` aggregate is instead the median of 1000 bootstrap means drawn from
    numpy's global generator; it differs from the plain mean by about 1e-4.
    """
    _check_bootstrap_settings(confidence, resamples)
    predictions, references = _checked_pairs(predictions, references)
    with _ROUGE_LOCK:
        scores = load_rouge().compute(
            predictions=predictions,
            references=references,
            rouge_types=list(options.rouge_types),
            use_stemmer=options.use_stemmer,
            use_aggregator=False,
        )
    per_example = {name: tuple(scores[name]) for name in options.rouge_types}
    aggregates = {
        name: mean_bootstrap_ci(values, confidence=confidence, resamples=resamples, seed=seed)
        for name, values in per_example.items()
    }
    return RougeReport(
        per_example=per_example,
        aggregates=aggregates,
        n=len(predictions),
        options=options,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )


def mean_bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> Aggregate:
    """The mean of `values` and a percentile-bootstrap confidence interval for it.

    Resample i takes `rng.integers(0, n, size=n)` from `numpy.random.default_rng(seed)`.
    """
    _check_bootstrap_settings(confidence, resamples)
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise PromptLabError("Need at least one score, as a flat list, to compute a mean.")
    if not np.all(np.isfinite(data)):
        raise PromptLabError("Scores must be finite numbers; found NaN or infinity.")
    rng = np.random.default_rng(seed)
    # One resample at a time keeps memory at O(n) for large evaluation sets.
    means = np.array(
        [data[rng.integers(0, data.size, size=data.size)].mean() for _ in range(resamples)]
    )
    tail = (1 - confidence) / 2
    low, high = np.percentile(means, [100 * tail, 100 * (1 - tail)])
    return Aggregate(mean=float(data.mean()), ci_low=float(low), ci_high=float(high))


def _check_bootstrap_settings(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise PromptLabError(f"confidence must be between 0 and 1, e.g. 0.95; got {confidence}.")
    if resamples < 1:
        raise PromptLabError(f"resamples must be at least 1, e.g. 1000; got {resamples}.")


def _checked_pairs(
    predictions: Sequence[str], references: Sequence[str | Sequence[str] | None]
) -> tuple[list[str], list[str] | list[list[str]]]:
    """Validated copies; references become lists for all items if any item has several."""
    if isinstance(predictions, str) or isinstance(references, str):
        raise PromptLabError(
            "Pass lists of texts, not a single string, as predictions and references."
        )
    if len(predictions) == 0 and len(references) == 0:
        raise PromptLabError("Nothing to score: predictions and references are both empty.")
    if len(predictions) != len(references):
        raise PromptLabError(
            f"Got {len(predictions)} predictions but {len(references)} references; "
            "give one reference (or one list of references) per prediction."
        )
    not_text = sum(not isinstance(prediction, str) for prediction in predictions)
    if not_text:
        raise PromptLabError(
            f"{not_text} of {len(predictions)} predictions are not text (e.g. None)."
        )
    missing = sum(_lacks_reference(reference) for reference in references)
    if missing:
        raise PromptLabError(
            f"{missing} of {len(predictions)} predictions lack a reference (None or an empty "
            "list); drop those items or supply their references."
        )
    return list(predictions), _uniform_references(references)


def _lacks_reference(reference: str | Sequence[str] | None) -> bool:
    # An empty text is still a reference (everything scores 0 against it); an empty list is not.
    return reference is None or (not isinstance(reference, str) and len(reference) == 0)


def _uniform_references(references: Sequence[str | Sequence[str]]) -> list[str] | list[list[str]]:
    # The metric decides single or multi-reference from the first item, and with one reference
    # rouge_score's score_multi returns exactly what score does, so wrapping loses nothing.
    if all(isinstance(reference, str) for reference in references):
        return list(references)
    wrapped = [
        [reference] if isinstance(reference, str) else list(reference) for reference in references
    ]
    if not all(isinstance(text, str) for group in wrapped for text in group):
        raise PromptLabError(
            "Every reference must be text, or a list of texts for several references."
        )
    return wrapped
