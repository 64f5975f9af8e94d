"""Answer length: words per prediction and their ratio to the reference's, where no direction is
better; a word is a run of characters between whitespace, as `str.split()` cuts them."""

from __future__ import annotations

from collections.abc import Sequence


def words(predictions: Sequence[str]) -> list[float]:
    """The number of words in each prediction.

    Args:
        predictions: the outputs, one text each.
    Returns:
        One count per prediction, as a float, in input order.
    Examples:

        >>> words(["The cat sat.", "", "  two\\nwords "])
        [3.0, 0.0, 2.0]
    """
    return [float(len(prediction.split())) for prediction in predictions]


def length_ratio(
    predictions: Sequence[str], references: Sequence[str | None]
) -> list[float | None]:
    """The prediction's words divided by the reference's: above 1, longer than the reference.

    Args:
        predictions: the outputs, one text each.
        references: one reference per prediction, or None where there is none.
    Returns:
        One ratio per prediction, in input order; None where the reference is None or has no
        words, since there is nothing to divide by.
    Examples:

        >>> length_ratio(["a b c", "a b", "a"], ["a b", None, " "])
        [1.5, None, None]
    """
    ratios: list[float | None] = []
    for prediction, reference in zip(predictions, references, strict=True):
        reference_words = len(reference.split()) if reference is not None else 0
        ratios.append(len(prediction.split()) / reference_words if reference_words else None)
    return ratios
