"""Words and numbers for the sentences that report comparisons: metric names as people write
them, scores with a real minus sign, intervals, confidence levels and p-values."""

from __future__ import annotations

from typing import Final

METRIC_LABELS: Final = {
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "rougeLsum": "ROUGE-Lsum",
}


def metric_label(metric: str) -> str:
    """'rougeL' as people write it: 'ROUGE-L', 'chrf' as 'chrF'; an unknown name unchanged."""
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    from core.errors import PromptLabError
    from core.evaluation import metric_set  # imported here: it imports the scorers' modules

    try:
        return metric_set.info(metric).label
    except PromptLabError:
        return metric


def format_score(value: float, signed: bool = False) -> str:
    """A score to three decimals, with a real minus sign (and a plus when `signed`)."""
    value = value if round(value, 3) != 0 else 0.0  # no "−0.000"
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    return text.replace("-", "−")


def format_interval(low: float, high: float) -> str:
    """'[0.012, 0.050]'."""
    return f"[{format_score(low)}, {format_score(high)}]"


def format_confidence(confidence: float) -> str:
    """0.95 as '95%', 0.975 as '97.5%'."""
    return f"{100 * confidence:g}%"


def format_p(p: float) -> str:
    """'p = 0.71', 'p = 0.004' or 'p < 0.001'."""
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"
