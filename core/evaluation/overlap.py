"""BLEU and chrF with sacrebleu's defaults, per example and over the corpus, on sacrebleu's 0-100
scale; `signatures()` gives the settings text that makes the numbers reproducible."""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF


def sentence_bleu(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """BLEU per example, as `sacrebleu.sentence_bleu`: exponential smoothing, effective order.

    Effective order leaves out n-gram orders a short prediction cannot have, so a three-word
    answer is not scored 0 for lacking 4-grams.

    Args:
        predictions: the outputs, one text each.
        references: one reference text per prediction.
    Returns:
        One BLEU score in [0, 100] per prediction, in input order.
    Examples:

        >>> [round(s, 2) for s in sentence_bleu(["the cat sat", ""], ["the cat sat", "a cat"])]
        [100.0, 0.0]
        >>> scores = sentence_bleu(["the cat sat on a mat"], ["the cat sat on the mat"])
        >>> [round(s, 2) for s in scores]
        [53.73]
    """
    return [
        sacrebleu.sentence_bleu(prediction, [reference]).score
        for prediction, reference in zip(predictions, references, strict=True)
    ]


def sentence_chrf(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """chrF per example, as `sacrebleu.sentence_chrf`: character 6-grams, beta 2, no word n-grams.

    Args:
        predictions: the outputs, one text each.
        references: one reference text per prediction.
    Returns:
        One chrF score in [0, 100] per prediction, in input order.
    Examples:

        >>> sentence_chrf(["the cat sat on the mat", ""], ["the cat sat on the mat", "a cat"])
        [100.0, 0.0]
        >>> [round(s, 2) for s in sentence_chrf(["the cats sat"], ["the cat sat"])]
        [74.78]
    """
    return [
        sacrebleu.sentence_chrf(prediction, [reference]).score
        for prediction, reference in zip(predictions, references, strict=True)
    ]


def corpus_bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """BLEU over all examples at once, as `sacrebleu.corpus_bleu`: n-gram counts are pooled, so
    it is not the mean of the per-example scores.

    Args:
        predictions: the outputs, one text each.
        references: one reference text per prediction.
    Returns:
        The corpus BLEU score in [0, 100].
    Examples:

        >>> score = corpus_bleu(["the cat sat on the mat", "hi"], ["the cat sat on a mat", "hi"])
        >>> round(score, 2)
        54.11
    """
    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score


def corpus_chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """chrF over all examples at once, as `sacrebleu.corpus_chrf`: character n-gram counts pooled.

    Args:
        predictions: the outputs, one text each.
        references: one reference text per prediction.
    Returns:
        The corpus chrF score in [0, 100].
    Examples:

        >>> round(corpus_chrf(["the cats sat", "hello"], ["the cat sat", "hello"]), 2)
        78.44
    """
    return sacrebleu.corpus_chrf(list(predictions), [list(references)]).score


def signatures() -> dict[str, str]:
    """sacrebleu's signature of each score, e.g. "nrefs:1|case:mixed|eff:yes|tok:13a|...".

    A signature exists only once a metric has counted its references, hence the tiny pair.
    """
    found = {}
    for key, metric in (
        ("bleu", BLEU(effective_order=True)),  # what sentence_bleu uses
        ("bleu_corpus", BLEU()),
        ("chrf", CHRF()),  # sentence and corpus level alike
    ):
        metric.corpus_score(["a"], [["a"]])
        found[key] = str(metric.get_signature())
    return found
