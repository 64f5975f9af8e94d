"""The Search page's form for a new search: the base version, the data and metric, the budget,
the space explored (shots, instruction variants), the engine and the name the winner is saved
under; Start refuses a bad search with its sentence and keeps every value typed."""

import streamlit as st

from core.datasets.data import BUILTIN_NAME
from core.evaluation import metric_set
from core.evaluation.wording import metric_label
from core.library.refs import check_name
from core.runs import playground
from core.search import background
from core.search.state import MAX_BUDGET, SearchConfig
from storage import queries
from storage.db import session_scope
from ui import identity, jobs_panel, prompt_forms
from ui.experiment_views import dataset
from ui.state import kept, key

PAGE = "search"
CHOSEN = key(PAGE, "chosen")  # the search shown below the form
ENGINES = {"transformers": "transformers", "llama.cpp": "llama.cpp (local)"}
DEFAULTS = {
    "metric": "chrf",
    "budget": 20,
    "minutes": 0.0,
    "seed": 0,
    "max_shots": 3,
    "test_fraction": 0.5,
    "limit": 0,
    "instructions": "",
    "engine": "transformers",
    "save_as": "",
}
NO_LIBRARY = (
    "A search starts from a saved prompt version, and the library has none yet. Save one from "
    "the Playground (Save as a version of a prompt, below the design), or on the Prompts page "
    "import a prompt file or name a design that experiments ran."
)


def score_keys() -> list[str]:
    """The score keys a search can maximise: those of every metric that have a better
    direction (answer length has none)."""
    keys = dict.fromkeys(k for m in metric_set.available().values() for k in m.keys)
    return [k for k in keys if metric_set.info(k).higher_is_better is not None]


def dataset_names() -> list[str]:
    dataset(BUILTIN_NAME)  # stored on first use, so that it is listed
    with session_scope() as session:
        names = queries.list_dataset_names(session=session)
    return [n for n in names if n != playground.TYPED_DATASET]


def new_search() -> None:
    """The form, and Start: the search created (or refused with its sentence), then run in the
    background and shown below."""
    st.subheader("New search")
    choices = prompt_forms.version_choices()
    if not choices:
        st.info(NO_LIBRARY)
        st.page_link("pages/prompts.py", label="Open the Prompts page", icon="📝")
        return
    names, metrics = dataset_names(), score_keys()
    _keep_valid(choices, names, metrics)
    with st.form("search.new", enter_to_submit=False, border=True):
        _inputs(choices, names, metrics)
        started = st.form_submit_button("Start search", type="primary", key="search.start")
    if started:
        job = background.start_search(config_of(st.session_state), actor=identity.actor())
        jobs_panel.remember(job)
        st.session_state[CHOSEN] = job.search_id
        st.rerun()


def _keep_valid(choices: dict[str, str], names: list[str], metrics: list[str]) -> None:
    """Defaults on first use; a chosen version, dataset or metric since gone is dropped."""
    for name, value in DEFAULTS.items():
        st.session_state.setdefault(key(PAGE, name), value)
    for name, offered in (("prompt", choices), ("dataset", names), ("metric", metrics)):
        if st.session_state.get(key(PAGE, name)) not in offered:
            st.session_state.pop(key(PAGE, name), None)
    st.session_state.setdefault(key(PAGE, "metric"), "chrf" if "chrf" in metrics else metrics[0])
    st.session_state.setdefault(
        key(PAGE, "dataset"), BUILTIN_NAME if BUILTIN_NAME in names else names[0]
    )


def _inputs(choices: dict[str, str], names: list[str], metrics: list[str]) -> None:
    top = st.columns([2, 2, 1])
    top[0].selectbox(
        "Base prompt version", list(choices), format_func=choices.get, **kept(PAGE, "prompt")
    )
    top[1].selectbox("Dataset", names, **kept(PAGE, "dataset"))
    top[2].selectbox(
        "Metric",
        metrics,
        format_func=metric_label,
        **kept(PAGE, "metric"),
        help="Candidates are scored on its mean over the selection set.",
    )
    budget = st.columns(4)
    budget[0].number_input(
        "Designs (0 = minutes only)",
        0,
        MAX_BUDGET,
        **kept(PAGE, "budget"),
        help="Candidate designs scored, the base included.",
    )
    budget[1].number_input(
        "Minutes (0 = no limit)",
        0.0,
        24 * 60.0,
        step=1.0,
        **kept(PAGE, "minutes"),
        help="For the whole search, the final test included.",
    )
    budget[2].number_input(
        "Seed", 0, 2**31 - 1, **kept(PAGE, "seed"), help="The split and the order explored."
    )
    budget[3].number_input("Max shots", 0, 16, **kept(PAGE, "max_shots"))
    _data_and_space()


def _data_and_space() -> None:
    data = st.columns(4)
    data[0].number_input(
        "Test fraction",
        0.05,
        0.95,
        step=0.05,
        **kept(PAGE, "test_fraction"),
        help="Of the examples used, locked away until the end: only the base and the winner "
        "are run on them, once.",
    )
    data[1].number_input(
        "Examples (0 = all)",
        0,
        100_000,
        **kept(PAGE, "limit"),
        help="Evaluation examples used (selection and test together), after a seeded shuffle.",
    )
    data[2].radio("Generate with", list(ENGINES), format_func=ENGINES.get, **kept(PAGE, "engine"))
    data[3].text_input(
        "Save the winner as",
        **kept(PAGE, "save_as"),
        placeholder="the base's name",
        help="The library prompt the winner becomes a new version of.",
    )
    st.text_area(
        "Instruction variants (optional, one a line)",
        **kept(PAGE, "instructions"),
        height=100,
        help="Each is tried on the base design, and kept in the random designs afterwards.",
    )


def config_of(values) -> SearchConfig:
    """The search the form's values describe, validated (a PromptLabError says what is wrong)."""

    def value(name: str):
        return values[key(PAGE, name)]

    save_as = value("save_as").strip() or None
    if save_as is not None:
        check_name(save_as)
    lines = value("instructions").splitlines()
    return SearchConfig(
        prompt=value("prompt"),
        metric=value("metric"),
        budget=int(value("budget")) or None,
        minutes=float(value("minutes")) or None,
        seed=int(value("seed")),
        dataset=value("dataset"),
        instructions=tuple(line.strip() for line in lines if line.strip()),
        max_shots=int(value("max_shots")),
        test_fraction=float(value("test_fraction")),
        limit=int(value("limit")) or None,
        engine=value("engine"),
        save_as=save_as,
    )
