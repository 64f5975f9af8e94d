"""Plotly figures of compared experiments: ROUGE by variant and ROUGE against the number of
shots, with error bars from the 95% confidence intervals; and a search's best-so-far curve."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

_CHART_COMMON: dict[str, Any] = dict(
    error_y="above",
    error_y_minus="below",
    hover_data={"ci_low": ":.3f", "ci_high": ":.3f", "above": False, "below": False},
    labels={"mean": "mean F-measure (95% CI)", "rouge_type": "ROUGE"},
)


def rouge_figure(table: pd.DataFrame) -> go.Figure:
    """Grouped bars: each variant's mean ROUGE per type, error bars from the 95% CI."""
    shown = _with_error_bars(table).assign(variant=table["variant"].map(_plotly_text))
    figure = px.bar(
        shown, x="variant", y="mean", color="rouge_type", barmode="group", **_CHART_COMMON
    )
    figure.update_xaxes(type="category", title=None)
    return figure.update_yaxes(rangemode="tozero")


def metric_figure(table: pd.DataFrame, label: str) -> go.Figure:
    """Bars: each variant's mean on one metric (compare.metric_table), error bars from its CI."""
    shown = _with_error_bars(table).assign(variant=table["variant"].map(_plotly_text))
    common = _CHART_COMMON | {"labels": {"mean": f"mean {_plotly_text(label)} (95% CI)"}}
    figure = px.bar(shown, x="variant", y="mean", **common)
    figure.update_xaxes(type="category", title=None)
    return figure.update_yaxes(rangemode="tozero")


def shots_figure(curve: pd.DataFrame) -> go.Figure:
    """Lines of mean ROUGE against shots, one per type (and series), error bars from the CI."""
    shown = _with_error_bars(curve).assign(series=curve["series"].map(_plotly_text))
    dash = "series" if shown["series"].nunique() > 1 else None
    figure = px.line(
        shown,
        x="shots",
        y="mean",
        color="rouge_type",
        line_dash=dash,
        markers=True,
        **_CHART_COMMON,
    )
    figure.update_xaxes(tickvals=sorted(shown["shots"].unique()))
    return figure.update_yaxes(rangemode="tozero")


def _with_error_bars(frame: pd.DataFrame) -> pd.DataFrame:
    above, below = frame["ci_high"] - frame["mean"], frame["mean"] - frame["ci_low"]
    return frame.assign(above=above, below=below)


def _plotly_text(text: str) -> str:
    # Plotly reads tags such as <a href> in labels; escaped, they show as the characters they are.
    return html.escape(str(text))


def shot_curve_figure(curve: Any) -> go.Figure:
    """A ShotCurve: mean against K with its confidence band, the smallest sufficient K marked."""
    ks = [p.shots for p in curve.points]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=ks + ks[::-1],
            y=[p.ci_high for p in curve.points] + [p.ci_low for p in curve.points][::-1],
            fill="toself",
            fillcolor="rgba(37, 99, 235, 0.15)",
            line={"width": 0},
            hoverinfo="skip",
            name=f"{curve.confidence:.0%} CI",
        )
    )
    figure.add_trace(
        go.Scatter(x=ks, y=[p.mean for p in curve.points], mode="lines+markers", name="mean")
    )
    figure.add_vline(
        x=curve.smallest_sufficient_k,
        line_dash="dot",
        annotation_text=f"enough: {curve.smallest_sufficient_k}",
    )
    figure.update_xaxes(title="shots", tickvals=ks)
    figure.update_yaxes(title=f"{curve.metric} (mean F-measure)", rangemode="tozero")
    return figure


def search_curve_figure(
    curve: list[tuple[int, float]], own: list[tuple[int, float, str]], label: str
) -> go.Figure:
    """A search's best selection-set score so far against the candidate number (a step line),
    with each candidate's own score as a marker (hover: how it was found)."""
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=[number for number, _ in curve],
            y=[best for _, best in curve],
            mode="lines",
            line_shape="hv",
            name="best so far",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=[number for number, _, _ in own],
            y=[score for _, score, _ in own],
            mode="markers",
            name="each candidate",
            text=[_plotly_text(how) for _, _, how in own],
            hovertemplate="#%{x}: %{y:.3f}<br>%{text}<extra></extra>",
        )
    )
    last = max((number for number, _, _ in own), default=1)
    figure.update_xaxes(title="candidate", dtick=max(1, -(-last // 15)), range=[0.5, last + 0.5])
    return figure.update_yaxes(title=f"{_plotly_text(label)} on the selection set")
