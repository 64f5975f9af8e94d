"""The metrics a run can be scored on, by name (ROUGE, BLEU, chrF, similarity, BERTScore, answer
length, the operator's own), the user's checks beside them, and how to read each score key."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from core.errors import PromptLabError
from core.evaluation import custom_metrics, length, overlap, similarity
from core.evaluation.checks import NAME as CHECK_NAME
from core.evaluation.checks import Check
from core.evaluation.scoring import ROUGE_TYPES, RougeOptions, score_rouge


@dataclass(frozen=True)
class ScoreInfo:
    """One per-example score column: what it is called and how to read its values."""

    key: str  # the column: "rougeL", "bleu", "check:<name>", "custom:<name>", ...
    label: str  # as people write it: "ROUGE-L", "BLEU", "chrF"
    low: float | None  # the range; None: unbounded
    high: float | None
    higher_is_better: bool | None  # None: neither direction is better (answer length)
    pass_fail: bool  # values are 1.0 (pass) or 0.0 (fail): checks
    needs_reference: bool  # None is stored for items without a reference
    corpus: bool  # also has a corpus-level aggregate (BLEU, chrF)


@dataclass(frozen=True)
class MetricDef:
    """What a user selects by name, and the score keys it produces."""

    name: str  # "rouge", "bleu", ..., "custom:<file stem>"
    summary: str  # one line for the app and the CLI listing
    keys: tuple[str, ...]


def _score(
    key: str, label: str, low: float | None, high: float | None, **kw: bool | None
) -> ScoreInfo:
    settings = dict(higher_is_better=True, pass_fail=False, needs_reference=True, corpus=False)
    return ScoreInfo(key, label, low, high, **(settings | kw))


_ROUGE_LABELS: Final = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}
SCORES: Final[dict[str, ScoreInfo]] = {
    **{key: _score(key, _ROUGE_LABELS.get(key, "ROUGE-Lsum"), 0.0, 1.0) for key in ROUGE_TYPES},
    "bleu": _score("bleu", "BLEU", 0.0, 100.0, corpus=True),  # sacrebleu's scale
    "chrf": _score("chrf", "chrF", 0.0, 100.0, corpus=True),
    "similarity": _score("similarity", "Similarity", -1.0, 1.0),
    # F1 of two averages of cosines, which for MiniLM's token vectors are positive in practice.
    "bertscore": _score("bertscore", "BERTScore F1", 0.0, 1.0),
    "words": _score("words", "Words", 0.0, None, higher_is_better=None, needs_reference=False),
    "length_ratio": _score("length_ratio", "Length ratio", 0.0, None, higher_is_better=None),
}
BUILTIN: Final[dict[str, MetricDef]] = {
    metric.name: metric
    for metric in (
        MetricDef(
            "rouge",
            "ROUGE-1, -2, -L and -Lsum F-measures (0-1): word overlap with the reference.",
            ROUGE_TYPES,
        ),
        MetricDef(
            "bleu",
            "BLEU (0-100, sacrebleu): word n-gram precision against the reference, "
            "with a brevity penalty; also over the whole set.",
            ("bleu",),
        ),
        MetricDef(
            "chrf",
            "chrF (0-100, sacrebleu): character n-gram F-score against the "
            "reference; also over the whole set.",
            ("chrf",),
        ),
        MetricDef(
            "similarity",
            "Similarity (-1 to 1): cosine of the all-MiniLM-L6-v2 sentence "
            "embeddings of the output and the reference.",
            ("similarity",),
        ),
        MetricDef(
            "bertscore",
            "BERTScore F1 (0-1) on all-MiniLM-L6-v2, layer 6, no idf, no "
            f"rescaling: {similarity.NOT_COMPARABLE}.",
            ("bertscore",),
        ),
        MetricDef(
            "length",
            "Answer length: words per output, and their ratio to the reference's "
            "words; neither direction is better.",
            ("words", "length_ratio"),
        ),
    )
}
DEFAULT_METRICS: Final = ("rouge",)
LAB_ROUGE: Final = RougeOptions.lab()
METEOR_REFUSAL: Final = (
    "METEOR is not available: it needs nltk's WordNet data, which no package on PyPI ships (the "
    "`nltkdata` sdist is empty) and Prompt Lab downloads nothing while it runs; chrf also credits "
    "partly matching words, and bertscore synonyms."
)
_PER_EXAMPLE: Final[dict[str, Callable[[Sequence[str], Sequence[str]], list[float]]]] = {
    "bleu": overlap.sentence_bleu,
    "chrf": overlap.sentence_chrf,
    "similarity": similarity.embedding_similarity,
    "bertscore": similarity.bertscore_f1,
}
_CORPUS: Final = {"bleu": overlap.corpus_bleu, "chrf": overlap.corpus_chrf}


def available() -> dict[str, MetricDef]:
    """The built-in metrics, then the operator's that loaded, by name."""
    custom = {
        f"{custom_metrics.PREFIX}{name}": MetricDef(
            f"{custom_metrics.PREFIX}{name}", metric.summary, (f"{custom_metrics.PREFIX}{name}",)
        )
        for name, metric in custom_metrics.available().items()
    }
    return BUILTIN | custom


def parse_metrics(value: str | Sequence[str]) -> tuple[str, ...]:
    """Metric names from "rouge,chrf" or a list: validated, without repeats, in order.

    Examples:

        >>> parse_metrics("rouge, chrf,ROUGE")
        ('rouge', 'chrf')
    """
    names = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(name, str) for name in names):
        raise PromptLabError(f"Metric names are text, e.g. rouge,chrf; got {value!r}.")
    wanted = tuple(dict.fromkeys(name.strip().lower() for name in names if name.strip()))
    known = available()
    if not wanted:
        raise PromptLabError(f"Choose at least one metric, e.g. rouge; known: {', '.join(known)}.")
    _definitions(wanted, known)
    return wanted


def _definitions(names: Sequence[str], known: Mapping[str, MetricDef]) -> list[MetricDef]:
    """Each name's definition, or a PromptLabError naming the first unknown one."""
    for name in names:
        if name == "meteor":
            raise PromptLabError(METEOR_REFUSAL)
        if name not in known:
            hint = ""
            if name.startswith(custom_metrics.PREFIX):
                stem = name.removeprefix(custom_metrics.PREFIX)
                hint = "".join(
                    f" {p}" for p in custom_metrics.problems() if p.startswith(f"{stem}.py:")
                )
            raise PromptLabError(f"Unknown metric {name!r}; choose from {', '.join(known)}.{hint}")
    return [known[name] for name in dict.fromkeys(names)]


def info(key: str) -> ScoreInfo:
    """How to read a score key, built-in, check:<name> or custom:<name>."""
    if key in SCORES:
        return SCORES[key]
    kind, _, name = key.partition(":")
    if kind == "check" and CHECK_NAME.fullmatch(name):
        return _score(key, f"Check {name}", 0.0, 1.0, pass_fail=True, needs_reference=False)
    metric = custom_metrics.available().get(name) if kind == "custom" else None
    if metric is not None:
        return ScoreInfo(
            key=key,
            label=f"{name} (custom)",
            low=metric.low,
            high=metric.high,
            higher_is_better=metric.higher_is_better,
            pass_fail=False,
            needs_reference=metric.needs_reference,
            corpus=False,
        )
    if kind == "custom" and custom_metrics.NAME.fullmatch(name):
        # Scores stored by an operator metric since taken away stay readable and comparable;
        # with its file gone, which way is better is unknown, so verdicts say "higher" only.
        return ScoreInfo(
            key, f"{name} (custom, no longer offered)", None, None, None, False, False, False
        )
    raise PromptLabError(
        f"Unknown score {key!r}; scores are {', '.join(SCORES)}, check:<name> or custom:<name> "
        "for an operator metric that is offered."
    )


def score_keys(metrics: Sequence[str], checks: Sequence[Check] = ()) -> list[str]:
    """The score columns these metrics and checks produce, in order."""
    definitions = _definitions(metrics, available())
    names = [check.name for check in checks]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise PromptLabError(
            f"Each check needs its own name; used more than once: {', '.join(twice)}."
        )
    return [key for metric in definitions for key in metric.keys] + [f"check:{n}" for n in names]


def score_outputs(
    metrics: Sequence[str],
    predictions: Sequence[str],
    references: Sequence[str | None],
    *,
    examples: Sequence[dict] | None = None,
    checks: Sequence[Check] = (),
    rouge: RougeOptions = LAB_ROUGE,
) -> dict[str, list[float | None]]:
    """Each score key of these metrics and checks -> one value per item, in input order; None
    where a metric needs a reference and the item has none. Checks need no reference.

    ROUGE takes `use_stemmer` from `rouge` and always gives its four types.

    Examples:

        >>> score_outputs(
        ...     ["length"], ["one two three", "one"], ["one two", None],
        ...     checks=[Check("short", "max_words", "2")],
        ... )
        {'words': [3.0, 1.0], 'length_ratio': [1.5, None], 'check:short': [0.0, 1.0]}
    """
    keys = score_keys(metrics, checks)
    predictions, references = _checked(predictions, references)
    examples = _examples(examples, references)
    scores: dict[str, list[float | None]] = {}
    for name in dict.fromkeys(metrics):
        scores |= _scored(name, predictions, references, examples, rouge)
    for check in checks:
        scores[f"check:{check.name}"] = _checked_by(check, predictions, examples)
    return {key: scores[key] for key in keys}


def corpus_scores(
    metrics: Sequence[str], predictions: Sequence[str], references: Sequence[str | None]
) -> dict[str, float]:
    """BLEU and chrF over the items with a reference, for those of `metrics` that have one;
    empty when no item has a reference.

    Examples:

        >>> scores = corpus_scores(["rouge", "chrf"], ["the cats sat", "hi"], ["the cat sat", None])
        >>> {key: round(value, 2) for key, value in scores.items()}
        {'chrf': 74.78}
    """
    names = [metric.name for metric in _definitions(metrics, available())]
    predictions, references = _checked(predictions, references)
    pairs = [(p, r) for p, r in zip(predictions, references, strict=True) if r is not None]
    if not pairs:
        return {}
    with_reference, their_references = [p for p, _ in pairs], [r for _, r in pairs]
    return {
        name: _CORPUS[name](with_reference, their_references) for name in names if name in _CORPUS
    }


def _scored(
    name: str,
    predictions: list[str],
    references: list[str | None],
    examples: list[dict],
    rouge: RougeOptions,
) -> dict[str, list[float | None]]:
    if name == "length":
        ratios = length.length_ratio(predictions, references)
        return {"words": list(length.words(predictions)), "length_ratio": ratios}
    if name in BUILTIN:
        scored = [i for i, reference in enumerate(references) if reference is not None]
        columns: dict[str, list[float | None]] = {
            k: [None] * len(predictions) for k in BUILTIN[name].keys
        }
        if scored:
            found = _per_example(
                name, [predictions[i] for i in scored], [references[i] for i in scored], rouge
            )  # type: ignore[misc]
            for key, values in found.items():
                for i, value in zip(scored, values, strict=True):
                    columns[key][i] = float(value)
        return columns
    metric = custom_metrics.available().get(name.removeprefix(custom_metrics.PREFIX))
    if metric is None:
        raise PromptLabError(f"Metric {name!r} is no longer offered; see the operator's metrics.")
    return {name: custom_metrics.score_metric(metric, predictions, references, examples)}


def _per_example(
    name: str, predictions: list[str], references: list[str], rouge: RougeOptions
) -> Mapping[str, Sequence[float]]:
    """A built-in metric's scores of items that all have a reference."""
    if name == "rouge":
        options = RougeOptions(use_stemmer=rouge.use_stemmer)  # the four types, always
        return score_rouge(predictions, references, options=options).per_example
    return {name: _PER_EXAMPLE[name](predictions, references)}


def _checked_by(check: Check, predictions: list[str], examples: list[dict]) -> list[float | None]:
    values: list[float | None] = []
    for prediction, example in zip(predictions, examples, strict=True):
        try:
            values.append(1.0 if check.passes(prediction) else 0.0)
        except PromptLabError as exc:
            raise PromptLabError(f"On example {example.get('id')!r}: {exc}") from None
    return values


def _checked(
    predictions: Sequence[str], references: Sequence[str | None]
) -> tuple[list[str], list[str | None]]:
    if isinstance(predictions, str) or isinstance(references, str):
        raise PromptLabError(
            "Pass lists of texts, not a single string, as predictions and references."
        )
    if len(predictions) != len(references):
        raise PromptLabError(
            f"Got {len(predictions)} predictions but {len(references)} references; give one "
            "reference (or None) per prediction."
        )
    if not all(isinstance(p, str) for p in predictions):
        raise PromptLabError("Every prediction must be text; an item failed to generate has none.")
    if not all(r is None or isinstance(r, str) for r in references):
        raise PromptLabError("Every reference must be text, or None for an item without one.")
    return list(predictions), list(references)


def _examples(examples: Sequence[dict] | None, references: list[str | None]) -> list[dict]:
    if examples is None:
        return [{"id": str(i), "input": "", "reference": r} for i, r in enumerate(references)]
    if len(examples) != len(references):
        raise PromptLabError(f"Got {len(examples)} examples for {len(references)} predictions.")
    return list(examples)
