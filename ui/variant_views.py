"""The Playground's variants side by side: one input for all the columns (variant_columns), Run
all streaming each answer into its column, then the scores with the best marked and a word diff
of each answer; stored as one small study. Trying them on more examples is variant_trials'."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import streamlit as st

from core.datasets.data import Example
from core.errors import PromptLabError
from core.evaluation.scoring import RougeOptions, score_rouge
from core.evaluation.word_diff import diff_html, word_diff
from core.models.registry import LoadedModel
from core.runs import playground
from storage.queries import ROUGE_COLUMNS
from ui import identity, model_choice, variant_columns
from ui.feedback import plain, shown_errors
from ui.playground_views import (
    PAGE,
    Setup,
    Source,
    has_input,
    run_spec,
    shared_input,
    sidebar,
    stream_local,
)
from ui.state import kept
from ui.variant_columns import RESULTS, Column, add_button, pages

log = logging.getLogger(__name__)
STOPPED = "playground.columns.stopped"
DIFF_AGAINST = ("the reference", "column A")


def side_by_side(then: Callable[[Setup, Source, list[Column]], None]) -> None:
    """The Playground with variants: the model in the sidebar, one input, the columns; `then`
    (trying them on more examples) follows when they can run."""
    setup = sidebar(one_prompt=False)
    source = shared_input()
    add_button(pages()[-1])
    if setup.backend_ready and has_input(source):
        with shown_errors():
            shown = variants(setup, source)
            then(setup, source, shown)


def variants(setup: Setup, source: Source) -> list[Column]:
    """The columns, Run all and Stop, and the last Run all's answers under their columns."""
    example = (
        playground.typed_example(source.text, source.reference) if source.typed else source.chosen
    )
    loaded = model_choice.model_in_use(
        PAGE, load=setup.load_pressed, served=variant_columns.served_only()
    )
    model_choice.show_loaded(PAGE, setup.loaded_note, loaded)
    shown = [
        variant_columns.column(holder, page, source, example, loaded)
        for holder, page in zip(st.columns(len(pages())), list(pages()), strict=True)
    ]
    runnable = [c for c in shown if c.ready]
    run = st.button(
        "Run all",
        type="primary",
        disabled=not runnable,
        shortcut="ctrl+enter",
        help="Each variant's answer in turn, streamed into its column (Ctrl/Cmd+Enter).",
    )
    if st.session_state.pop(STOPPED, False):
        st.info("Stopped: the answers were cut short and not stored.")
    boxes = [
        holder.container(key=f"variant-output-{i}")
        for i, holder in enumerate(st.columns(len(shown)))
    ]
    if run:
        st.session_state.pop(RESULTS, None)
        _run_all(setup, source, example, loaded, shown, boxes)
    if last := st.session_state.get(RESULTS):
        _show_results(last, shown, boxes, example)
    return shown


def _run_all(setup, source, example, loaded, shown, boxes) -> None:
    """The variants on served endpoints at once, then those on the local model in turn; Stop
    (or any click, or leaving) ends every stream and stores nothing. A variant whose endpoint
    fails says so in its column; the finished answers are stored as one study."""
    stop = st.empty()
    stop.button("Stop", key="playground.stop_all", on_click=_note_stopped)
    request = model_choice.request_of(PAGE, loaded)
    ready = {c.page: (c, box) for c, box in zip(shown, boxes, strict=True) if c.ready}
    for column, box in zip(shown, boxes, strict=True):
        if column.page not in ready:
            box.caption(plain(f"{column.name} did not run: see its column."))
    served = [pair for pair in ready.values() if pair[0].endpoint is not None]
    streams = _served_at_once(loaded, served)
    for column, box in ready.values():
        if column.endpoint is None:
            with box:
                streams[column.page] = _local(request, column)
    stop.empty()
    done = [c for c in shown if streams.get(c.page) is not None]
    if not done:
        return
    specs = [
        replace(
            run_spec(setup, source, c.design, request),
            settings=c.settings,
            label=c.name,
            prompt=c.choice().prompt,
            endpoint=c.endpoint,
        )
        for c in done
    ]
    study_id, ids = playground.store_variants(
        specs,
        example,
        [(c.prompt, streams[c.page].result) for c in done],
        loaded,
        name=f"Playground: {', '.join(s.label for s in specs)}",
        actor=identity.actor(),
    )
    outcomes = {
        c.page: dict(
            out=streams[c.page].result,
            counted_here=streams[c.page].counted_here,
            id=experiment_id,
            scores=_scores(streams[c.page].result.text, example.reference),
        )
        for c, experiment_id in zip(done, ids, strict=True)
    }
    st.session_state[RESULTS] = dict(study=study_id, outcomes=outcomes)


def _local(request, column: Column):
    box = st.empty()
    stream = stream_local(request, column.prompt, column.settings, box)
    if stream.result is None:
        raise PromptLabError(f"{column.name}: generation ended without an answer.")
    box.empty()
    return stream


def _served_at_once(loaded: LoadedModel, served: list) -> dict:
    """Each served variant's answer streamed at the same time, each into its column; a rerun
    (Stop) ends them all. Returns page -> finished stream (None for one that failed)."""
    if not served:
        return {}
    streams = {
        c.page: playground.served_answer(c.endpoint, loaded, c.prompt, c.settings, c.design)
        for c, _ in served
    }
    texts = dict.fromkeys(streams, "")
    failed: dict[str, str] = {}
    stopped = threading.Event()

    def consume(page: str) -> None:
        try:
            for piece in streams[page]:
                texts[page] += piece
                if stopped.is_set():  # leaving the loop closes the stream and its client
                    return
        except Exception as exc:  # noqa: BLE001 - reported in the variant's own column
            failed[page] = str(exc) if isinstance(exc, PromptLabError) else type(exc).__name__
            if not isinstance(exc, PromptLabError):
                log.exception("A served variant failed")

    boxes = {c.page: box.empty() for c, box in served}
    for c, _ in served:
        boxes[c.page].caption(f"Waiting for {c.endpoint.base_url}…")
    threads = [threading.Thread(target=consume, args=(page,), daemon=True) for page in streams]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            for page, text in texts.items():
                if text:
                    boxes[page].text(text)
            time.sleep(0.1)
    finally:  # a rerun (Stop) interrupts the wait: the streams must end with it
        stopped.set()
    names = {c.page: c.name for c, _ in served}
    finished = {}
    for page, stream in streams.items():
        if page in failed or stream.result is None:
            boxes[page].error(plain(f"{names[page]}: {failed.get(page, 'no answer came back.')}"))
            finished[page] = None
        else:
            boxes[page].empty()
            finished[page] = stream
    return finished


def _note_stopped() -> None:
    st.session_state[STOPPED] = True


def _scores(text: str, reference: str | None) -> dict[str, float]:
    if not reference:
        return {}
    report = score_rouge([text], [reference], options=RougeOptions.lab())
    return {name: agg.mean for name, agg in report.aggregates.items()}


def _show_results(last: dict, shown: list[Column], boxes, example: Example) -> None:
    """Each answer under its column: how it ended, its scores (the best marked), and a word
    diff against the reference or column A's answer."""
    outcomes = last["outcomes"]
    against = st.radio("Word diff against", DIFF_AGAINST, horizontal=True,
                       **kept(PAGE, "diff_against"))  # fmt: skip
    first = next((outcomes[c.page] for c in shown if c.page in outcomes), None)
    best = _best(outcomes)
    for column, box in zip(shown, boxes, strict=True):
        outcome = outcomes.get(column.page)
        if outcome is None:
            continue
        out = outcome["out"]
        with box:
            st.markdown(
                f"**{plain(column.name)}**" + (" · best ROUGE-L" if column.page == best else "")
            )
            base = example.reference if against == DIFF_AGAINST[0] else first["out"].text
            if base:
                st.html(diff_html(word_diff(base, out.text), side="b"))
            else:
                st.text(out.text)
            counted = " (counted here)" if outcome["counted_here"] else ""
            st.caption(
                f"{out.new_tokens} new tokens{counted}, finished by {out.finish_reason}, "
                f"{out.latency_s:.1f} s; experiment {outcome['id']}."
            )
            for name in ROUGE_COLUMNS:
                if name in outcome["scores"]:
                    st.metric(name, f"{outcome['scores'][name]:.4f}")
            if not outcome["scores"]:
                st.caption("No reference to score against.")
    st.caption(f"Stored as study {last['study']}: open it in Compare, or try the variants on "
               "more examples below.")  # fmt: skip


def _best(outcomes: dict) -> str | None:
    """The page of the variant with the highest ROUGE-L, when there are two or more scored."""
    scored = {page: o["scores"]["rougeL"] for page, o in outcomes.items() if o["scores"]}
    if len(scored) < 2 or len(set(scored.values())) == 1:
        return None
    return max(scored, key=scored.get)
