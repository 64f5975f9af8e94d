"""Scoring selected stored experiments again with other metrics or checks, without generating."""

import streamlit as st

from core.errors import PromptLabError
from core.runs import rescoring
from ui import identity, metric_inputs
from ui.feedback import plain

PAGE = "rescore"
DONE = "rescore.done"  # the message of the last scoring, shown once after the rerun


def rescore_popover(column, chosen: list[int], statuses: dict[int, str]) -> None:
    """A popover choosing metrics and checks, and a button that scores the chosen again."""
    with column.popover(
        "Score again…",
        help="Score the stored outputs with other metrics or checks, without generating.",
    ):
        metrics = metric_inputs.metric_inputs(PAGE, defaults=())
        checks = metric_inputs.check_inputs(PAGE)
        busy = [str(i) for i in chosen if statuses.get(i) in rescoring.BUSY]
        if busy:
            st.caption(f"Experiment {', '.join(busy)} is still running: score it once stopped.")
        go = st.button("Score", type="primary", disabled=bool(busy or not (metrics or checks)))
    if go:
        try:
            with st.spinner("Scoring the stored outputs…"):
                done = [
                    rescoring.rescore(i, metrics, checks, actor=identity.actor()) for i in chosen
                ]
        except PromptLabError as exc:  # those before the refused one keep their new scores
            st.error(plain(str(exc)))
            return
        keys = sorted({k for d in done for k in d.keys})
        st.session_state[DONE] = (
            f"Scored {len(done)} experiment(s) again on {', '.join(keys)}, "
            f"{sum(d.n for d in done)} outputs in all."
        )
        st.rerun()


def show_done() -> None:
    if (message := st.session_state.pop(DONE, None)) is not None:
        st.success(plain(message))
