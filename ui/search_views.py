"""The Search page's views: the stored searches to choose from, and the one chosen: its progress
with cancel and resume, the best-so-far curve, its candidates and, once complete, its result.
A candidate is shown with its selection-set score only; the locked test set appears only in the
result, for the base and the winner."""

import pandas as pd
import streamlit as st

from core.evaluation.wording import metric_label
from core.prompting.design import PromptDesign
from core.runs import jobs
from core.search import background, final, search
from core.search.state import Candidate, SearchState
from ui import charts, identity, jobs_panel
from ui.compare_views import MODES
from ui.feedback import plain, shown_errors
from ui.search_form import CHOSEN
from ui.state import key

RESUMABLE = ("pending", "interrupted", "failed")


def chosen_search() -> int | None:
    """The stored searches, newest first, and the one picked to view (the one just started,
    at first); None when there is none."""
    st.subheader("Searches")
    found = {s.id: s for s in search.list_searches()}
    if not found:
        st.caption("No searches yet: start one above.")
        return None
    st.dataframe(
        searches_table(list(found.values())),
        hide_index=True,
        column_config=_three_decimals(("best (selection)",)),
    )
    if st.session_state.get(CHOSEN) not in found:
        st.session_state.pop(CHOSEN, None)
    # Labels that never change: a keyed selectbox keeps showing the label its value had when
    # first drawn (Streamlit 1.67), so a status in it would go stale.
    return st.selectbox(
        "Search shown",
        list(found),
        format_func=lambda i: describe(found[i]),
        key=CHOSEN,
        persist_state="session",
    )


def describe(state: SearchState) -> str:
    config = state.config
    return (
        f"#{state.id} {config.prompt} on {config.dataset}, {metric_label(config.metric)} "
        f"(seed {config.seed})"
    )


def searches_table(found: list[SearchState]) -> pd.DataFrame:
    """One row per search: what it searched from and where it stands (selection scores only)."""
    rows = []
    for state in found:
        best = state.best()
        rows.append(
            {
                "id": state.id,
                "base": state.config.prompt,
                "dataset": state.config.dataset,
                "metric": metric_label(state.config.metric),
                "status": state.status,
                "candidates": len(state.candidates),
                "best (selection)": best.score if best is not None else None,
                "saved as": (state.result or {}).get("version") or "",
                "created": state.created_at,
                "by": state.created_by or "",
            }
        )
    return pd.DataFrame(rows)


def search_view(search_id: int) -> None:
    """The chosen search; while it runs here, refreshed every second on its own."""
    if _job_of(search_id) is not None:
        _live(search_id)
    else:
        _shown(search_id, None)


@st.fragment(run_every=1.0)
def _live(search_id: int) -> None:
    job = _job_of(search_id)
    with shown_errors():
        _shown(search_id, job)
    if job is None:  # it ended: the whole page again, the list's status included
        st.rerun()


def _job_of(search_id: int) -> jobs.Job | None:
    return next((j for j in jobs.active() if j.search_id == search_id), None)


def _shown(search_id: int, job: jobs.Job | None) -> None:
    state = search.get_search(search_id)
    st.markdown(f"**{plain(state.name)}**")
    st.caption(plain(split_note(state)))
    progress(state, job)
    if any(c.score is not None for c in state.candidates):
        own = [(c.number, c.score, c.how) for c in state.candidates if c.score is not None]
        label = metric_label(state.config.metric)
        st.plotly_chart(charts.search_curve_figure(state.curve(), own, label), key="search.curve")
    if state.candidates:
        st.dataframe(
            candidates_table(state),
            hide_index=True,
            column_config=_three_decimals(
                (f"{metric_label(state.config.metric)} (selection)", "best so far")
            ),
        )
    if state.status == "completed" and state.result:
        result(state)
    if state.study_id is not None:
        compare_button(state)


def split_note(state: SearchState) -> str:
    split = state.split
    return (
        f"Split before anything ran (seed {split.seed}): {len(split.pool)} pool examples for "
        f"shots, {len(split.selection)} to select on, {len(split.test)} locked for the final "
        "test (the base and the winner only, once)."
    )


def progress(state: SearchState, job: jobs.Job | None) -> None:
    """Examples done, candidates tried of the budget, elapsed; cancel or resume."""
    tried = sum(1 for c in state.candidates if c.score is not None or c.failed)
    budget = state.config.budget
    of = f"{tried} of {budget} designs tried" if budget else f"{tried} designs tried"
    if state.config.minutes:
        of += f" (within {state.config.minutes:g} min)"
    if job is not None:
        share = min(job.done / job.total, 1.0) if job.total else 0.0
        done = f"{job.done} / {job.total} examples" if job.total else "starting"
        elapsed = max(state.elapsed_s, job.elapsed_s())
        st.progress(share, text=f"{done} · {of} · elapsed {duration(elapsed)}")
        rate = job.tokens_per_s()
        speed = "— tok/s" if rate is None else f"{rate:.1f} tok/s"
        st.caption(plain(f"{speed} · {job.engine or 'starting…'}"))
        _cancel(job)
        return
    _status(state, f"{of}, in {duration(state.elapsed_s)}")
    if state.status in RESUMABLE or state.status == "running":
        _resume(state)


def _status(state: SearchState, done: str) -> None:
    if state.status == "completed":
        st.success(plain(f"Completed: {done}."))
    elif state.status == "failed":
        st.error(plain(f"Failed: {state.error or 'no reason was recorded'} ({done})."))
    elif state.status == "interrupted":
        st.warning(plain(f"Interrupted: {done}. Resume goes on exactly where it stopped."))
    elif state.status == "pending":
        st.info("Created, not started yet.")
    else:  # running, but not in this app: another process, or an app stopped during it
        st.warning(
            plain(
                f"Marked running, but it is not running in this app ({done}): the command "
                "line may be running it, or the app stopped during it. Resume it only if it "
                "was stopped."
            )
        )


def _cancel(job: jobs.Job) -> None:
    actor = identity.actor()
    if job.cancelling:
        st.caption("Cancelling after the batch in progress…")
    elif not actor.may_change(job.owner or None):
        st.caption("Only the one who started it, or an admin, can cancel it.")
    elif st.button("Cancel", key="search.cancel", help="Keeps every finished example."):
        job.cancel(actor)
        st.rerun(scope="fragment")


def _resume(state: SearchState) -> None:
    if st.button("Resume", key="search.resume", help="Scored candidates are read back."):
        job = background.start_resume(state.id, actor=identity.actor())
        jobs_panel.remember(job)
        st.rerun()


def candidates_table(state: SearchState) -> pd.DataFrame:
    """One row per candidate: how it was found, its shots, and its selection-set score beside
    the best so far. No test-set column: candidates are never run on the test set."""
    label = metric_label(state.config.metric)
    best_by = dict(state.curve())
    rows = []
    for c in state.candidates:
        design = PromptDesign.from_dict(c.design)
        rows.append(
            {
                "#": c.number,
                "how": c.how,
                "shots": design.shots,
                "selection": shot_selection(design),
                "format": design.shot_format if design.shots else "—",
                "order": design.shot_order if design.shots > 1 else "—",
                f"{label} (selection)": c.score,
                "best so far": best_by.get(c.number),
                "failed examples": c.failed,
                "experiment": c.experiment_id,
            }
        )
    return pd.DataFrame(rows)


def shot_selection(design: PromptDesign) -> str:
    if not design.shots:
        return "—"
    if design.selection == "ids":
        return "ids: " + ", ".join(design.shot_ids)
    if design.selection == "random":
        return f"random (seed {design.selection_seed})"
    return design.selection


def result(state: SearchState) -> None:
    """The final test: the verdict beside the selection score, the winner's design against the
    base's, and the version it was saved as."""
    st.subheader("Result")
    numbers = state.result
    by_number = {c.number: c for c in state.candidates}
    winner, base = by_number[numbers["winner"]], state.candidates[0]
    st.info(plain(final.summary(state)))
    left, right = st.columns([3, 2])
    if winner.number == base.number:
        left.markdown("**No candidate beat the base on the selection set**: the base stays.")
    else:
        left.markdown(f"**The winner: candidate {winner.number}**, {plain(winner.how)}")
    left.dataframe(designs_table(base, winner), hide_index=True)
    right.markdown("**The base and the winner only**")
    right.dataframe(
        scores_table(state), hide_index=True, column_config=_three_decimals(("base", "winner"))
    )
    if numbers.get("version"):
        st.success(plain(f"Saved in the library as {numbers['version']}."))
        st.page_link("pages/prompts.py", label="Open it on the Prompts page", icon="📝")
    elif numbers.get("version_note"):
        st.warning(plain(f"Not saved: {numbers['version_note']}"))


def designs_table(base: Candidate, winner: Candidate) -> pd.DataFrame:
    """The base's and the winner's designs, field by field, as text."""
    designs = [PromptDesign.from_dict(c.design) for c in (base, winner)]
    fields = {
        "shots": lambda d: str(d.shots),
        "selection": shot_selection,
        "shot ids": lambda d: ", ".join(d.shot_ids) or "—",
        "format": lambda d: d.shot_format,
        "order": lambda d: d.shot_order,
        "instruction role": lambda d: d.instruction_role,
        "instruction": lambda d: d.instruction,
    }
    base_design, winner_design = designs
    return pd.DataFrame(
        [
            {"": name, "base": f(base_design), "winner": f(winner_design)}
            for name, f in fields.items()
        ]
    )


def scores_table(state: SearchState) -> pd.DataFrame:
    numbers = state.result
    label = metric_label(state.config.metric)
    return pd.DataFrame(
        [
            {"": f"{label}, selection ({numbers['n_selection']})", **numbers["selection"]},
            {"": f"{label}, test ({numbers['n_test']})", **numbers["test"]},
        ]
    )


def _three_decimals(columns) -> dict:
    return {c: st.column_config.NumberColumn(format="%.3f") for c in columns}


def compare_button(state: SearchState) -> None:
    """Every candidate is an experiment of the search's study: Compare opens it."""
    if st.button("Open the study in Compare", key="search.compare"):
        st.session_state[key("compare", "mode")] = MODES[1]
        st.session_state[key("compare", "study")] = state.study_id
        st.switch_page("pages/compare.py")


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
