"""The panel of background runs: progress with elapsed and remaining time, throughput and the
engine, and cancel. It refreshes itself every second while something runs, without rerunning
the rest of the page."""

import streamlit as st

from core.runs import jobs
from ui import identity
from ui.feedback import plain

MINE = "experiments.jobs"  # ids of the jobs this session started


def remember(job: jobs.Job) -> None:
    st.session_state.setdefault(MINE, []).append(job.id)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _speed(job: jobs.Job) -> str:
    """Its throughput so far (new tokens over its elapsed time) and the engine generating."""
    rate = job.tokens_per_s()
    speed = "— tok/s" if rate is None else f"{rate:.1f} tok/s"
    engine = job.engine or "starting…"
    return f"{speed} ({job.new_tokens} new tokens in {_duration(job.elapsed_s())}) · {engine}"


def _show(job: jobs.Job, mine: bool) -> None:
    share = job.done / job.total if job.total else 1.0
    who = "" if mine else f" (started by {job.owner or 'another session'})"
    st.progress(
        min(share, 1.0),
        text=f"{job.title}{who}: {job.done} / {job.total} examples · "
        f"elapsed {_duration(job.elapsed_s())} · remaining ≈ {_duration(job.remaining_s())}",
    )
    if job.engine or not job.finished:  # one that failed before it began has no speed
        st.caption(plain(_speed(job)))
    if job.finished:
        message = plain(f"{job.title}: {job.status}, {job.done} / {job.total} examples stored.")
        if job.status == "failed":
            st.error(f"{message} {plain(job.error or '')}")
        elif job.status == "cancelled":
            st.warning(f"{message} Resume it from the list below to finish the rest.")
        else:
            st.success(message)
        return
    actor = identity.actor()
    if job.cancelling:
        st.caption("Cancelling after the batch in progress…")
    elif not actor.may_change(job.owner or None):
        st.caption("Only the one who started it, or an admin, can cancel it.")
    elif st.button("Cancel", key=f"cancel-{job.id}", help="Keeps every finished example."):
        job.cancel(actor)
        st.rerun(scope="fragment")


def panel() -> None:
    """Active jobs of every session, and the finished ones this session started; while any
    runs, the panel refreshes itself every second without rerunning the rest of the page."""
    if jobs.active():
        _live()
    else:
        _jobs_shown(live=False)


@st.fragment(run_every=1.0)
def _live() -> None:
    _jobs_shown(live=True)
    if not jobs.active():  # the last one ended: refresh the whole page, its list included
        st.rerun()


def _jobs_shown(*, live: bool) -> None:
    mine = st.session_state.get(MINE, [])
    shown = {job.id: job for job in jobs.active()}
    shown |= {i: job for i in mine if (job := jobs.get(i)) is not None}
    if not shown:
        return
    st.subheader("Runs")
    for job in sorted(shown.values(), key=lambda j: j.id):
        _show(job, job.id in mine)
    if not live and st.button("Clear finished runs", key="clear-finished"):
        st.session_state[MINE] = []
        st.rerun()
