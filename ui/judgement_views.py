"""People's judgement on the Compare page: the view switch with the rating scale, each output's
rating, and what people's choices and ratings say, with their CSVs."""

import functools
import logging
from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.errors import PromptLabError
from core.evaluation import compare, judgements
from core.evaluation.compare import Variant
from core.reporting import judgement_export
from storage import queries
from storage.db import session_scope
from storage.judgement_queries import NOTE_LENGTH, Preference, Rating
from ui.feedback import plain
from ui.identity import actor
from ui.state import kept, key
from ui.tables import Key

log = logging.getLogger("prompt_lab.ui")
PAGE = "compare"
COMPARISON, BLIND = "Comparison", "Blind A/B"
SCALES = {"good_bad": "Good / bad", "five": "1 to 5"}
VALUES = {"good_bad": {1: "👍 Good", 0: "👎 Bad"}, "five": {v: f"{v}" for v in range(1, 6)}}
SAID = "judgement.said"  # a refusal from a callback, shown on the run that follows it
CSVS = {"ratings": judgement_export.ratings_csv, "choices": judgement_export.choices_csv}


def view() -> str:
    """Comparison (whose outputs are rated on the scale chosen here) or the blind A/B mode."""
    left, right = st.columns(2)
    chosen = left.segmented_control(
        "View", (COMPARISON, BLIND), default=COMPARISON, required=True, **kept(PAGE, "view")
    )
    if chosen != BLIND:
        right.segmented_control(
            "Rate outputs",
            list(SCALES),
            format_func=SCALES.get,
            default="good_bad",
            required=True,
            help="Each output of Example by example can be rated, by each of you apart.",
            **kept(PAGE, "scale"),
        )
    return chosen or COMPARISON


# Rating one output -----------------------------------------------------------------------------


def rate_output(variant_id: int, example_key: str, where: str) -> None:
    """The rater's own rating of one output on the page's scale, a note and Save; and how many
    others rated it. `where` tells apart the places one output is rated on a page."""
    rater = actor().name
    scale = st.session_state.get(key(PAGE, "scale")) or "good_bad"
    with session_scope() as session:
        found = queries.ratings_of(
            session=session, experiment_ids=[variant_id], example_key=example_key
        )
    mine = next((r for r in found if r.rater == rater), None)
    widget = f"rate.{where}.e{variant_id}.{example_key}"  # ids only: never a name in a key
    show_said(widget)
    options = VALUES[scale]
    with st.form(widget, border=False):
        st.segmented_control(
            "Rating",
            list(options),
            format_func=options.get,
            default=mine.value if mine and mine.scale == scale else None,
            key=f"{widget}.{scale}",
            label_visibility="collapsed",
        )
        st.text_input(
            "Note",
            value=mine.note if mine else "",
            max_chars=NOTE_LENGTH,
            placeholder="Note (optional)",
            key=f"{widget}.note",
            label_visibility="collapsed",
        )
        save = functools.partial(_save_rating, widget, variant_id, example_key, rater, scale)
        st.form_submit_button("Save rating", on_click=said(widget, save), key=f"{widget}.save")
    st.caption(_rated(mine, len(found) - (mine is not None)))


def _save_rating(widget: str, variant_id: int, example_key: str, rater: str, scale: str) -> None:
    value = st.session_state.get(f"{widget}.{scale}")
    if value is None:
        raise PromptLabError("Choose a rating before saving it.")
    with session_scope() as session:
        queries.rate_output(
            session=session,
            experiment_id=variant_id,
            example_key=example_key,
            rater=rater,
            scale=scale,
            value=int(value),
            note=st.session_state.get(f"{widget}.note") or "",
        )


def _rated(mine: Rating | None, others: int) -> str:
    yours = "Not rated by you"
    if mine is not None:
        value = VALUES["good_bad"][mine.value] if mine.scale == "good_bad" else f"{mine.value} of 5"
        yours = f"Yours: {value}" + (" with a note" if mine.note else "")
    if not others:
        return f"{yours} · no one else rated it"
    return f"{yours} · {others} other{'s' if others > 1 else ''} rated it"


# What people said ------------------------------------------------------------------------------


def people_section(variants: list[Variant], stored: Key) -> None:
    """Win rates with sign tests, each metric's agreement with people, the ratings of each
    experiment, and the ratings and choices as CSV."""
    st.subheader("People's judgement")
    ids = [v.id for v in variants]
    names = {v.id: v.name for v in variants}
    with session_scope(stored[0]) as session:
        ratings = queries.ratings_of(session=session, experiment_ids=ids)
        choices = [
            c
            for c in queries.choices_of(session=session, experiment_ids=ids)
            if c.experiment_a in names and c.experiment_b in names
        ]
        agreements = _agreements(session, choices) if choices else []
    if not ratings and not choices:
        st.caption(
            "Nobody has rated these outputs or judged them blind yet: rate each output under "
            f"Example by example, or choose View: {BLIND}."
        )
        return
    if choices:
        _show_win_rates(choices, names)
    if agreements:
        _show_agreements(agreements, names)
    if ratings:
        _show_ratings(ratings, ids, names)
    for column, which in zip(st.columns(len(CSVS)), CSVS, strict=True):
        column.download_button(
            f"Download {which} CSV",
            functools.partial(_csv_now, which, stored[0], tuple(ids)),
            file_name=compare.csv_name(ids, which),
            mime="text/csv",
            on_click="ignore",
            key=f"download-{compare.csv_name(ids, which)}",
        )


def _by_pair(choices: list[Preference]) -> dict[tuple[int, int], list[Preference]]:
    found: dict[tuple[int, int], list[Preference]] = {}
    for c in choices:
        found.setdefault((c.experiment_a, c.experiment_b), []).append(c)
    return found


def _show_win_rates(choices: list[Preference], names: dict[int, str]) -> None:
    st.markdown("**Blind A/B: who people prefer**")
    rows = []
    for (a, b), made in _by_pair(choices).items():
        found = judgements.win_rate([c.choice for c in made], name_a=names[a], name_b=names[b])
        (st.success if found.reliable else st.info)(plain(found.verdict()))
        rows.append(
            {
                "A": found.name_a,
                "B": found.name_b,
                "judged": found.n,
                "A wins": found.wins_a,
                "B wins": found.wins_b,
                "ties": found.ties,
                "both bad": found.both_bad,
                "B win rate": found.rate_b,
                "ci_low": found.ci_low,
                "ci_high": found.ci_high,
                "sign test p": found.p_sign,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(
        "B win rate: B's share of the choices that went one way, with its 95% Wilson score "
        "interval. Sign test: exact two-sided binomial test of B's wins against A's. Ties and "
        "both bad are counted, and left out of both."
    )


def _agreements(session, choices: list[Preference]) -> list[tuple[int, int, object]]:
    """Each (pair, metric) agreement on the pairs people decided some examples of."""
    found = []
    for (a, b), made in _by_pair(choices).items():
        decided = [(c.example_key, c.choice) for c in made if c.choice in ("a", "b")]
        if not decided:
            continue
        stored = queries.metrics_stored(session=session, experiment_ids=[a, b])
        for metric in [*queries.ROUGE_COLUMNS, *stored]:
            higher = judgements.metric_direction(metric)
            if higher is None:  # answer length: neither direction is better
                continue
            scores = queries.scores_of(session=session, experiment_ids=[a, b], metric=metric)
            agreement = judgements.metric_agreement(
                decided, scores[a], scores[b], metric=metric, higher_is_better=higher
            )
            found.append((a, b, agreement))
    return found


def _show_agreements(agreements: list, names: dict[int, str]) -> None:
    st.markdown("**Do the metrics agree with people?**")
    rows = [
        {
            "A": names[a],
            "B": names[b],
            "metric": m.metric,
            "agree": m.agree,
            "disagree": m.disagree,
            "metric ties": m.metric_ties,
            "not scored": m.unscored,
            "share agreeing": m.share,
        }
        for a, b, m in agreements
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    st.caption(
        "On the examples people chose A or B for: how often each metric's per-example score "
        "prefers the same one (share agreeing = agree / (agree + disagree)); examples it scores "
        "the same, or did not score, are counted apart."
    )


def _show_ratings(ratings: list, ids: list[int], names: dict[int, str]) -> None:
    st.markdown("**Ratings**")
    summary = judgements.rating_summary(ratings, ids)
    rows = [
        {
            "experiment": names[i],
            "ratings": s.n_ratings,
            "outputs rated": s.n_examples,
            "good": s.good,
            "of good/bad": s.n_good_bad,
            "share good": s.share_good,
            "mean of 1–5": s.mean_five,
            "of 1–5": s.n_five,
            "raters": ", ".join(s.raters),
        }
        for i, s in summary.items()
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _csv_now(which: str, url: str, ids: tuple[int, ...]) -> bytes:
    # Runs on Streamlit's download thread, outside any script run: no st.* calls in here.
    with session_scope(url) as session:
        return CSVS[which](session=session, experiment_ids=list(ids))


# Helpers ---------------------------------------------------------------------------------------


def said(where: str, action: Callable[[], None]) -> Callable[[], None]:
    """A callback that keeps a refusal (or, for a bug, an apology) for the run after it: a
    callback's own st.error would land above the page."""

    def run() -> None:
        try:
            action()
        except PromptLabError as exc:
            st.session_state[f"{SAID}.{where}"] = str(exc)
        except Exception:
            log.exception("unexpected error in a judgement callback")
            st.session_state[f"{SAID}.{where}"] = (
                "Something went wrong inside Prompt Lab (not something you did). "
                "The details are in the terminal that runs the app."
            )

    return run


def show_said(where: str) -> None:
    """The refusal a callback kept for `where`, shown once."""
    message = st.session_state.pop(f"{SAID}.{where}", None)
    if message:
        st.error(plain(message))
