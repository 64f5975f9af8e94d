"""Experiments: define a run or a sweep over a dataset slice and follow it; find, open, re-run,
duplicate, resume and delete stored experiments."""

import streamlit as st

from core.datasets.data import BUILTIN_NAME
from core.errors import PromptLabError
from core.models.registry import EMBEDDED, ModelRequest
from core.reporting import catalog
from core.runs import experiments, jobs, playground, sweeps
from core.runs.experiments import RunSpec
from storage import queries
from storage.db import session_scope
from ui import identity, jobs_panel, served_inputs, widgets
from ui.experiment_views import CLEAR, dataset, detail, found, list_filters
from ui.feedback import shown_errors
from ui.navigation import through_app
from ui.state import kept, key

through_app()

PAGE = "experiments"
FILL = "experiments.fill"  # a stored spec to pre-fill the form with ("duplicate as new")

st.title("Experiments")
st.caption(
    "Run a prompt design over a slice of a dataset, or a sweep of variants on the same "
    "examples. Every result is stored as it finishes; a cancelled run keeps them."
)
jobs_panel.panel()
if (done_message := st.session_state.pop(CLEAR, None)) is not None:
    st.session_state[key(PAGE, "selected")] = []
    st.success(done_message)

if (spec_to_fill := st.session_state.pop(FILL, None)) is not None:
    widgets.fill_design(PAGE, spec_to_fill.design)
    widgets.fill_settings(PAGE, spec_to_fill.settings)
    st.session_state[key(PAGE, "dataset")] = spec_to_fill.dataset
    st.session_state[key(PAGE, "model")] = spec_to_fill.model.model_id
    st.session_state[key(PAGE, "limit")] = spec_to_fill.limit or 0
    st.session_state[key(PAGE, "offset")] = spec_to_fill.offset
    st.session_state[key(PAGE, "label")] = spec_to_fill.label
    st.session_state[key(PAGE, "batch_size")] = spec_to_fill.batch_size or 0
    st.session_state[key(PAGE, "token_confidence")] = spec_to_fill.token_confidence
    served_inputs.fill(PAGE, spec_to_fill.endpoint)
    st.info("The form is filled in with the experiment's settings: change what you want to test.")

new_run, stored = st.tabs(["New run or sweep", "Stored experiments"])

with new_run, shown_errors():
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
        help="The model loaded here; for a served endpoint, the one whose tokenizer and chat "
        "template render the prompts (the served model's own, or one that shares them).",
    )
    endpoint = served_inputs.backend_inputs(PAGE)
    design_col, settings_col = st.columns(2)
    with design_col:
        st.subheader("Prompt design")
        design = widgets.design_inputs(PAGE, data.pool)
    with settings_col:
        st.subheader("Generation")
        settings = widgets.settings_inputs(PAGE)
    st.subheader("Sweep (optional)")
    varied = st.multiselect(
        "Vary",
        list(sweeps.DIMENSIONS),
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
    spec = RunSpec(
        batch_size=int(batch) or None,
        token_confidence=st.checkbox(
            "Store per-token confidence",
            **kept(PAGE, "token_confidence"),
            help="Each answer token's probability, kept with its result: one more forward pass "
            "per example.",
        ),
        dataset=dataset_name,
        limit=int(limit) or None,
        offset=int(offset),
        design=design,
        settings=settings,
        label=label.strip(),
        model=ModelRequest(model_id.strip() or EMBEDDED),
        endpoint=endpoint,
    )
    sweep = sweeps.sweep_from_lists(spec, lists, name=label.strip()) if lists else None
    count = len(sweep.expand()) if sweep else 1
    chosen = experiments.examples_for(spec, data)[0]
    examples = len(chosen)
    st.caption(f"{count} experiment(s) × {examples} example(s) = {count * examples} generations.")
    if unscored := sum(ex.reference is None for ex in chosen):
        st.warning(
            f"{unscored} of these {examples} examples have no reference: their outputs will be "
            "stored but not scored, and they cannot count towards ROUGE."
        )
    blocked = endpoint is not None and served_inputs.endpoint_problems(
        settings,
        endpoint,
        use_chat_template=design.use_chat_template,
        token_confidence=spec.token_confidence,
    )
    if st.button("Start", type="primary", disabled=blocked):
        me = identity.actor()
        job = jobs.start_sweep(sweep, actor=me) if sweep else jobs.start_run(spec, actor=me)
        jobs_panel.remember(job)
        st.rerun()

with stored, shown_errors():
    with session_scope() as session:
        filters = list_filters(catalog.options(session=session))
    table = found(filters)
    if table.empty:
        st.info("No stored experiments match. Start one in the other tab, or widen the filters.")
    else:
        shown = table[[c for c in catalog.SHOWN if c in table.columns]]
        st.dataframe(
            shown,
            hide_index=True,
            column_config={
                "rougeL": st.column_config.NumberColumn(format="%.4f"),
                "rougeL_ci_low": st.column_config.NumberColumn("CI low", format="%.4f"),
                "rougeL_ci_high": st.column_config.NumberColumn("CI high", format="%.4f"),
                "created_by": st.column_config.TextColumn("By"),
            },
        )
        labels = dict(zip(table["id"].tolist(), table["label"].fillna(""), strict=True))
        picked = key(PAGE, "selected")
        st.session_state[picked] = [i for i in st.session_state.get(picked, []) if i in labels]
        chosen = st.multiselect(
            "Selected experiments",
            list(labels),
            **kept(PAGE, "selected"),
            format_func=lambda i: f"#{i} {labels[i]}".strip(),
        )
        detail(chosen, FILL)
