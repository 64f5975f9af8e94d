"""The Compare page's answer to "is the difference real?": paired tests with a verdict for
each comparison, the shot-count curve, and luck of the seed beside the change."""

import pandas as pd
import streamlit as st

from core.evaluation import stats, verdicts
from core.evaluation.compare import Variant
from storage.db import session_scope
from ui import charts, metric_inputs
from ui.feedback import plain
from ui.state import kept
from ui.tables import Key

FAMILIES = ("each against the baseline (else the first)", "every pair")


@st.cache_data(max_entries=16, show_spinner=False)
def verdict_report(stored: Key, metric: str, baseline: int | None, _variants: list[Variant]):
    """Paired verdicts (10,000 resamples), the shot curve and the luck of the seed, computed
    once per revision of the experiments of `stored` (which `_variants` were read from)."""
    with session_scope(stored[0]) as session:
        found, aligned = verdicts.paired_verdicts(
            session=session, variants=_variants, metric=metric, baseline=baseline
        )
        curves = verdicts.shots_studies(session=session, variants=_variants, metric=metric)
        spreads, changes = verdicts.repeat_report(
            session=session, variants=_variants, metric=metric
        )
    return found, aligned, curves, spreads, changes


def show_verdicts(variants: list[Variant], stored: Key, pinned: int | None = None) -> None:
    st.subheader("Is the difference real?")
    left, right = st.columns(2)
    metric = metric_inputs.metric_choice(variants, "Score tested", "tested", left)
    family = right.radio("Compare", FAMILIES, horizontal=True, **kept("compare", "family"))
    baseline = (pinned or variants[0].id) if family == FAMILIES[0] else None
    found, aligned, curves, spreads, changes = verdict_report(stored, metric, baseline, variants)
    for comparison in found:
        (st.success if comparison.reliable else st.info)(plain(comparison.verdict()))
    st.dataframe(_table(found), hide_index=True)
    first = found[0]
    left_out = (
        f" ({aligned.left_out} left out: not scored by every one)" if aligned.left_out else ""
    )
    st.caption(
        f"Paired over the {len(aligned.keys)} examples every experiment scored{left_out}. "
        f"{first.confidence:.0%} CI: paired bootstrap, {first.resamples:,} resamples, seed "
        f"{first.seed}. p: {first.test}. "
        + (
            f"{len(found)} comparisons were made, so p is Holm-adjusted across them."
            if len(found) > 1
            else "One comparison, so no adjustment."
        )
    )
    for series, curve in curves.items():
        _show_curve(stored, metric, series, curve)
    if spreads:
        _show_repeats(spreads, changes)


def _table(found: list[stats.PairedComparison]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(
                A=c.name_a,
                B=c.name_b,
                n=c.n,
                **{"B − A": round(c.diff, 4)},
                ci_low=round(c.ci_low, 4),
                ci_high=round(c.ci_high, 4),
                p=c.p_value,
                p_holm=c.p_adjusted,
                reliable=c.reliable,
            )
            for c in found
        ]
    )


def _show_curve(stored: Key, metric: str, series: str, curve) -> None:
    which = "" if series == "all" else f" ({series})"
    st.markdown("**How many shots are enough?**" + plain(which))
    st.plotly_chart(_curve_figure(stored, metric, series, curve))
    st.text(curve.explanation)


@st.cache_resource(max_entries=16, show_spinner=False)  # as the Compare page's figures
def _curve_figure(stored: Key, metric: str, series: str, _curve):
    return charts.shot_curve_figure(_curve)


def _show_repeats(spreads: dict, changes: list) -> None:
    st.markdown("**Luck of the seed**")
    st.dataframe(
        pd.DataFrame(
            [
                dict(
                    runs=name,
                    repeats=s.repeats,
                    mean=round(s.mean, 4),
                    sd_across_repeats=round(s.repeat_sd, 4),
                    sd_across_examples=round(s.example_sd, 4),
                    ci_half_width=round(s.example_ci_half_width, 4),
                )
                for name, s in spreads.items()
            ]
        ),
        hide_index=True,
    )
    for spread in spreads.values():
        st.text(spread.sentence())
    for change in changes:
        st.text(change.sentence())
