"""The Experiments page's form for a new run or sweep: the dataset slice and the model, the
backend, the prompt design and settings, the values a sweep varies, and Start."""

from dataclasses import dataclass, replace

import streamlit as st

from core.datasets.data import BUILTIN_NAME, Dataset
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.models.registry import EMBEDDED, ModelRequest
from core.prompting.design import PromptDesign
from core.runs import experiments, jobs, playground, sweeps
from core.runs.experiments import RunSpec
from storage import queries
from storage.db import session_scope
from ui import identity, jobs_panel, metric_inputs, prompt_forms, served_inputs, widgets
from ui.experiment_views import dataset
from ui.state import kept, key

PAGE = "experiments"
FILL = "experiments.fill"  # a stored spec to pre-fill the form with ("duplicate as new")


@dataclass
class Slice:
    """The examples a run takes (a dataset, how many, from where) and the model it names."""

    dataset_name: str
    data: Dataset
    limit: int
    offset: int
    model_id: str


def fill_requested() -> None:
    """Fill the form with a stored experiment's settings, when "duplicate as new" asked to."""
    if (spec_to_fill := st.session_state.pop(FILL, None)) is None:
        return
    widgets.fill_design(PAGE, spec_to_fill.design)
    widgets.fill_settings(PAGE, spec_to_fill.settings)
    prompt_forms.remember_version(PAGE, spec_to_fill.prompt)
    st.session_state[key(PAGE, "dataset")] = spec_to_fill.dataset
    st.session_state[key(PAGE, "model")] = spec_to_fill.model.model_id
    st.session_state[key(PAGE, "limit")] = spec_to_fill.limit or 0
    st.session_state[key(PAGE, "offset")] = spec_to_fill.offset
    st.session_state[key(PAGE, "label")] = spec_to_fill.label
    st.session_state[key(PAGE, "batch_size")] = spec_to_fill.batch_size or 0
    st.session_state[key(PAGE, "token_confidence")] = spec_to_fill.token_confidence
    served_inputs.fill(PAGE, spec_to_fill)
    metric_inputs.fill(PAGE, spec_to_fill.metrics, spec_to_fill.checks)
    st.info("The form is filled in with the experiment's settings: change what you want to test.")


def new_run() -> None:
    """The whole form: the slice, the backend, the design and settings, a sweep, and Start."""
    chosen = slice_inputs()
    backend = served_inputs.backend_choice(PAGE)
    started = prompt_forms.start_from_version(PAGE)
    design, settings = design_and_settings(chosen.data)
    scoring = scoring_inputs()
    st.subheader("Sweep (optional)")
    varied, lists = sweep_inputs()
    spec = replace(run_spec(chosen, design, settings, backend, varied, lists), **scoring)
    if started is not None and design == started.design:  # still that version's design
        spec = replace(spec, prompt=started.ref)
    sweep = sweeps.sweep_from_lists(spec, lists, name=spec.label) if lists else None
    examples_count(spec, sweep, chosen.data)
    blocked = served_inputs.backend_problems(spec)
    if st.button("Start", type="primary", disabled=blocked):
        me = identity.actor()
        job = jobs.start_sweep(sweep, actor=me) if sweep else jobs.start_run(spec, actor=me)
        jobs_panel.remember(job)
        st.rerun()


def slice_inputs() -> Slice:
    """The top row: the dataset, how many of its evaluation examples from where, the model."""
    dataset(BUILTIN_NAME)  # stored on first use, so that it is listed
    with session_scope() as session:
        names = [
            n for n in queries.list_dataset_names(session=session) if n != playground.TYPED_DATASET
        ]
    top = st.columns([2, 1, 1, 2])
    dataset_name = top[0].selectbox("Dataset", names, **kept(PAGE, "dataset"))
    data = dataset(dataset_name)
    st.session_state.setdefault(key(PAGE, "limit"), min(10, len(data.eval)))
    limit = top[1].number_input(
        "Examples (0 = all)",
        0,
        len(data.eval),
        **kept(PAGE, "limit"),
        help=f"Taken in order from the {len(data.eval)} evaluation "
        "examples; every variant of a sweep gets the same ones.",
    )
    offset = top[2].number_input(
        "Starting at", 0, max(len(data.eval) - 1, 0), **kept(PAGE, "offset")
    )
    st.session_state.setdefault(key(PAGE, "model"), EMBEDDED)
    model_id = top[3].text_input(
        "Model",
        **kept(PAGE, "model"),
        help="The model loaded here; for llama.cpp (local), a GGUF model (the embedded one, or "
        "a .gguf file); for a served endpoint, the one whose tokenizer and chat template "
        "render the prompts (the served model's own, or one that shares them).",
    )
    return Slice(dataset_name, data, limit, offset, model_id)


def design_and_settings(data: Dataset) -> tuple[PromptDesign, GenerationSettings]:
    """The prompt design (its shots from `data`'s pool) beside the generation settings."""
    design_col, settings_col = st.columns(2)
    with design_col:
        st.subheader("Prompt design")
        design = widgets.design_inputs(PAGE, data.pool)
    with settings_col:
        st.subheader("Generation")
        settings = widgets.settings_inputs(PAGE)
    return design, settings


def scoring_inputs() -> dict:
    """The metrics and checks that score the outputs, as RunSpec fields."""
    st.subheader("Scoring")
    left, right = st.columns([1, 2])
    with left:
        metrics = metric_inputs.metric_inputs(PAGE)
    with right:
        checks = metric_inputs.check_inputs(PAGE)
    if not metrics and not checks:
        raise PromptLabError("Choose at least one metric or check to score the outputs with.")
    return {"metrics": metrics, "checks": checks}


def sweep_inputs() -> tuple[list[str], list[tuple[str, str]]]:
    """The options a sweep varies, and the values typed for each."""
    varied = st.multiselect(
        "Vary",
        list(sweeps.TYPED_DIMENSIONS),
        **kept(PAGE, "vary"),
        help="Every combination of the values becomes one experiment.",
    )
    lists = [
        (
            dim,
            st.text_input(
                f"Values of {dim} (comma-separated)",
                **kept(PAGE, f"values.{dim}"),
                placeholder="e.g. 0, 1, 3" if dim == "shots" else None,
                help="temperature 0 means greedy decoding" if dim == "temperature" else None,
            ),
        )
        for dim in varied
    ]
    return varied, lists


def run_spec(
    chosen: Slice,
    design: PromptDesign,
    settings: GenerationSettings,
    backend: served_inputs.Backend,
    varied: list[str],
    lists: list[tuple[str, str]],
) -> RunSpec:
    """The bottom row (label, repeats, batch size, confidence) and the run it all makes;
    repeats add the seeds to `lists`."""
    bottom = st.columns([2, 1, 1])
    label = bottom[0].text_input("Label (optional)", **kept(PAGE, "label"))
    repeats = bottom[1].number_input(
        "Repeats (seeds)",
        1,
        20,
        **kept(PAGE, "repeats"),
        disabled=not settings.do_sample,
        help="Run each variant with this many seeds (seed, seed+1, …), to see how much luck "
        "moves the score; Compare sets that spread beside the differences. Sampling only.",
    )
    if settings.do_sample and repeats > 1:
        if "seed" in varied:
            raise PromptLabError(
                "Repeats choose the seeds: take seed out of Vary, or use 1 repeat."
            )
        seeds = range(settings.seed, settings.seed + int(repeats))
        lists.append(("seed", ", ".join(map(str, seeds))))
    batch = bottom[2].number_input(
        "Batch size (0 = auto)",
        0,
        256,
        **kept(PAGE, "batch_size"),
        help="Seeded sampling depends on the batch: use 1 to reproduce one prompt's sample.",
    )
    confidence = st.checkbox(
        "Store per-token confidence",
        **kept(PAGE, "token_confidence"),
        help="Each answer token's probability, kept with its result: one more forward pass "
        "per example. transformers (the Local model) only.",
    )
    if backend.llama:
        st.caption(served_inputs.INSIDE_NOTE)
    return RunSpec(
        batch_size=int(batch) or None,
        token_confidence=confidence,
        dataset=chosen.dataset_name,
        limit=int(chosen.limit) or None,
        offset=int(chosen.offset),
        design=design,
        settings=settings,
        label=label.strip(),
        model=ModelRequest(chosen.model_id.strip() or EMBEDDED),
        **backend.spec_fields(),
    )


def examples_count(spec: RunSpec, sweep: sweeps.Sweep | None, data: Dataset) -> None:
    """How many generations Start makes, and a warning for examples without a reference."""
    count = len(sweep.expand()) if sweep else 1
    chosen = experiments.examples_for(spec, data)[0]
    examples = len(chosen)
    st.caption(f"{count} experiment(s) × {examples} example(s) = {count * examples} generations.")
    if unscored := sum(ex.reference is None for ex in chosen):
        st.warning(
            f"{unscored} of these {examples} examples have no reference: their outputs will be "
            "stored but not scored, and they cannot count towards ROUGE."
        )
