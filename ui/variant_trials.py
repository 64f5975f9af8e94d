"""Trying the Playground's variants on a few examples: the same columns over N examples of the
dataset (random with a shown seed, or the first N) as a background run, then each variant's
mean with its interval, the paired verdict against column A, the examples on which they
disagree most, and the study opened in Compare."""

import random
from dataclasses import replace

import streamlit as st

from core.datasets.data import Example
from core.errors import PromptLabError
from core.runs import jobs, sweeps
from core.runs.experiments import RunSpec
from core.runs.sweeps import Sweep
from ui import identity, jobs_panel, model_choice, run_form, variant_columns
from ui.compare_views import examples_table, show_example, stored_variants
from ui.feedback import plain
from ui.playground_views import PAGE, Setup, Source
from ui.state import kept, key
from ui.tables import stored_key
from ui.variant_columns import Column
from ui.verdict_views import verdict_report

TRIAL = "playground.trial"  # the last trial: its job and experiments, per column page
CHOICES = ("random", "the first")
SHOWN = 5  # examples shown side by side, the most disagreeing first


def pick_examples(pool: list[Example], n: int, how: str, seed: int) -> list[str]:
    """The ids of n examples: drawn with `seed` (in dataset order), or the first n."""
    if how == CHOICES[1]:
        return [ex.id for ex in pool[:n]]
    drawn = set(random.Random(seed).sample(range(len(pool)), min(n, len(pool))))
    return [ex.id for i, ex in enumerate(pool) if i in drawn]


def try_on_examples(setup: Setup, source: Source, shown: list[Column]) -> None:
    st.subheader("Try on more examples")
    evaluated = list(source.data.eval)
    runnable = [c for c in shown if c.ready]
    if not evaluated:
        st.caption(plain(f"'{source.dataset_name}' has no examples to evaluate."))
        return
    n_col, how_col, seed_col = st.columns(3)
    if key(PAGE, "trial_n") not in st.session_state:
        st.session_state[key(PAGE, "trial_n")] = min(5, len(evaluated))
    n = n_col.number_input("Examples", 1, len(evaluated), **kept(PAGE, "trial_n"))
    how = how_col.radio("Which", CHOICES, horizontal=True, **kept(PAGE, "trial_how"))
    seed = seed_col.number_input(
        "Seed", 0, 2**31 - 1, **kept(PAGE, "trial_seed"), disabled=how != CHOICES[0]
    )
    if st.button(
        f"Try on {n} examples",
        disabled=len(runnable) < 2,
        help="The variants that can run, each over the same examples, in the background.",
    ):
        keys = pick_examples(evaluated, int(n), how, int(seed))
        _start(setup, source, runnable, keys)
    if len(runnable) < 2:
        st.caption("Two variants that can run are needed.")
    if trial := st.session_state.get(TRIAL):
        _show_trial(trial, shown)


def _start(setup: Setup, source: Source, runnable: list[Column], keys: list[str]) -> None:
    loaded = model_choice.model_in_use(PAGE, load=False, served=variant_columns.served_only())
    base = RunSpec(
        dataset=source.dataset_name,
        split="eval",
        model=model_choice.request_of(PAGE, loaded),
    )
    names = ", ".join(c.name for c in runnable)
    sweep = Sweep(
        base, {"variant": tuple(c.choice() for c in runnable)}, name=f"Playground trial: {names}"
    )
    job = jobs.start_sweep(sweep, actor=identity.actor(), origin="playground", example_keys=keys)
    jobs_panel.remember(job)
    st.session_state[TRIAL] = dict(
        job=job.id,
        ids=dict(zip([c.page for c in runnable], job.experiment_ids, strict=True)),
        base=base,
    )


def _to_experiments(columns: list[Column], base: RunSpec) -> None:
    """Fill the Experiments form with column A's design and settings and, as a sweep, the
    values in which the variants differ; or say why they cannot be typed as one."""
    try:
        lists = sweeps.as_typed_lists([c.choice() for c in columns])
    except PromptLabError as exc:
        st.warning(plain(str(exc)))
        return
    first = columns[0]
    st.session_state[run_form.FILL] = replace(
        base, design=first.design, settings=first.settings, limit=None
    )
    st.session_state[key(run_form.PAGE, "vary")] = list(lists)
    for dimension, values in lists.items():
        st.session_state[key(run_form.PAGE, f"values.{dimension}")] = values
    st.switch_page("pages/experiments.py")


def _show_trial(trial: dict, shown: list[Column]) -> None:
    job = jobs.get(trial["job"])
    if job is not None and not job.finished:
        jobs_panel.panel()
        return
    ids = list(trial["ids"].values())
    try:  # read and tested once per revision of these experiments, as the Compare page does
        stored = stored_key(ids)
        variants = stored_variants(stored)
        found, aligned, *_ = verdict_report(stored, "rougeL", ids[0], variants)
        frame = examples_table(stored, "rougeL", "disagreement")
    except PromptLabError as exc:  # deleted meanwhile, or nothing scored
        st.warning(plain(str(exc)))
        return
    by_id = {v.id: v for v in variants}
    for holder, column in zip(st.columns(len(shown)), shown, strict=True):
        experiment_id = trial["ids"].get(column.page)
        if experiment_id is None:
            continue
        score = by_id[experiment_id].scores.get("rougeL")
        with holder:
            if score:
                st.metric(
                    f"{column.name}: mean ROUGE-L",
                    f"{score['mean']:.3f}",
                    help=f"95% CI [{score['ci_low']:.3f}, {score['ci_high']:.3f}]",
                )
                st.caption(f"95% CI [{score['ci_low']:.3f}, {score['ci_high']:.3f}]")
            else:
                st.caption(plain(f"{column.name}: nothing scored."))
    for comparison in found:
        (st.success if comparison.reliable else st.info)(plain(comparison.verdict()))
    st.caption(f"Paired over the {len(aligned.keys)} examples every variant scored.")
    left, right = st.columns(2)
    if left.button("Open in Compare", key="playground.trial.compare"):
        st.session_state["compare.ids"] = ids
        st.switch_page("pages/compare.py")
    if right.button(
        "As an Experiments sweep",
        key="playground.trial.sweep",
        help="The Experiments form filled in with column A and the values the variants vary.",
    ):
        _to_experiments([c for c in shown if c.page in trial["ids"]], trial["base"])
    st.markdown("**The examples they disagree on most**")
    for _, row in frame.head(SHOWN).iterrows():
        show_example(row, variants, "rougeL", True, "b", rate=False)
