"""ROUGE as a local `evaluate` metric: the canonical "rouge" module's inputs, options, outputs.

Load it by path, never by the hub name: `evaluate.load("core/evaluation/metrics/rouge")`.
"""

from collections.abc import Callable

import datasets
import evaluate
from rouge_score import rouge_scorer, scoring

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    month = jul,
    year = "2004",
    address = "Barcelona, Spain",
    publisher = "Association for Computational Linguistics",
    url = "https://www.aclweb.org/anthology/W04-1013",
    pages = "74--81",
}
"""

_DESCRIPTION = """\
ROUGE (Recall-Oriented Understudy for Gisting Evaluation) compares a generated summary with one or
more human references by n-gram overlap (rouge1, rouge2, ...) and longest common subsequence
(rougeL, and rougeLsum, which splits on newlines). Scores are F-measures in [0, 1].

This module wraps Google Research's `rouge_score` package exactly as the canonical `evaluate`
"rouge" metric does, but ships with the project so that loading it needs no network.

The default tokenizer lowercases and keeps only runs of [a-z0-9]: accented letters split words and
texts without Latin letters or digits have no tokens, so they score 0 even when identical. Pass
`tokenizer=` for such languages.
"""

_KWARGS_DESCRIPTION = """
Scores predictions against references with ROUGE.
Args:
    predictions: list of predictions to score, one string each.
    references: one reference string per prediction, or one list of reference strings per
        prediction; with several, each ROUGE type takes the reference with the best F-measure.
    rouge_types: list of ROUGE types; default ["rouge1", "rouge2", "rougeL", "rougeLsum"].
        "rouge1" to "rouge9": n-gram overlap; "rougeL": longest common subsequence;
        "rougeLsum": summary-level LCS over sentences separated by "\\n".
    use_aggregator: if True (default), return one aggregate per type; if False, one score per
        prediction.
    use_stemmer: if True, strip English word suffixes with the Porter stemmer (words longer than
        3 characters) before matching; default False.
    tokenizer: optional callable mapping a string to a list of tokens, used instead of the
        default lowercasing [a-z0-9] tokenizer.
Returns:
    With use_aggregator=True, a dict mapping each type to a numpy float: the median of 1000
    bootstrap means of the per-example F-measures (rouge_score's BootstrapAggregator "mid"),
    drawn from numpy's global generator, which `evaluate` seeds for each compute from the
    `seed=` given to `evaluate.load` (or from numpy's global state at load time).
    With use_aggregator=False, a dict mapping each type to a list of F-measures, one per
    prediction, in input order.
Examples:

    >>> rouge = evaluate.load("core/evaluation/metrics/rouge")  # run from the repository root
    >>> predictions = ["hello there", "general kenobi"]
    >>> references = ["hello there", "general kenobi"]
    >>> results = rouge.compute(predictions=predictions, references=references)
    >>> print({name: float(score) for name, score in results.items()})
    {'rouge1': 1.0, 'rouge2': 1.0, 'rougeL': 1.0, 'rougeLsum': 1.0}

    Several references per prediction, one score per prediction:

    >>> results = rouge.compute(
    ...     predictions=["the cat sat on the mat", "general kenobi"],
    ...     references=[["a cat sat on a mat", "the dog barked"], ["hello there"]],
    ...     rouge_types=["rouge1", "rougeL"],
    ...     use_aggregator=False,
    ... )
    >>> print({name: [round(score, 4) for score in scores] for name, scores in results.items()})
    {'rouge1': [0.6667, 0.0], 'rougeL': [0.6667, 0.0]}
"""

_DEFAULT_ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


class _CallableTokenizer:
    """Adapts a plain callable to the object with a `tokenize` method that rouge_score expects."""

    def __init__(self, tokenize: Callable[[str], list[str]]) -> None:
        self.tokenize = tokenize


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        string = datasets.Value("string", id="sequence")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # Several references per prediction first: `evaluate` picks the first schema that fits.
            features=[
                datasets.Features({"predictions": string, "references": datasets.Sequence(string)}),
                datasets.Features({"predictions": string, "references": string}),
            ],
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
            reference_urls=[
                "https://en.wikipedia.org/wiki/ROUGE_(metric)",
                "https://github.com/google-research/google-research/tree/master/rouge",
            ],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str] | list[list[str]],
        rouge_types: list[str] | None = None,
        use_aggregator: bool = True,
        use_stemmer: bool = False,
        tokenizer: Callable[[str], list[str]] | None = None,
    ) -> dict[str, float] | dict[str, list[float]]:
        scorer = rouge_scorer.RougeScorer(
            rouge_types=_DEFAULT_ROUGE_TYPES if rouge_types is None else rouge_types,
            use_stemmer=use_stemmer,
            tokenizer=_CallableTokenizer(tokenizer) if tokenizer is not None else None,
        )
        # Like the canonical module, the first item decides single- or multi-reference for all.
        multi_ref = isinstance(references[0], list)
        score_pair = scorer.score_multi if multi_ref else scorer.score
        scores = [score_pair(ref, pred) for ref, pred in zip(references, predictions, strict=True)]
        if use_aggregator:
            return _bootstrap_mid_fmeasures(scores)
        return {key: [score[key].fmeasure for score in scores] for key in scores[0]}


def _bootstrap_mid_fmeasures(scores: list[dict[str, scoring.Score]]) -> dict[str, float]:
    aggregator = scoring.BootstrapAggregator()
    for score in scores:
        aggregator.add_scores(score)
    return {key: aggregate.mid.fmeasure for key, aggregate in aggregator.aggregate().items()}
