"""The Datasets page's sections: the stored datasets, a preview with search and deletion, and
the import of a file with its column mapping, split roles and row problems."""

import streamlit as st

from core.datasets import files as dataset_files
from core.datasets.data import BUILTIN_NAME, SplitRoles, check_file_size, guess_split_roles
from core.errors import PromptLabError
from core.runs import experiments
from storage import queries
from storage.db import session_scope
from ui import identity
from ui.feedback import plain
from ui.state import kept, key
from ui.tables import table

PAGE = "datasets"
NONE = "(none)"
CONFIRM = "datasets.confirm_delete"  # the name awaiting confirmation of its deletion
NOTICE = "datasets.notice"  # a success message that must outlive the rerun after an action
SELECT = "datasets.select"  # a dataset to show next (just imported): set before its selectbox


def stored_datasets() -> list[queries.DatasetSummary]:
    """The table of stored datasets (the built-in one stored on first use); all their summaries."""
    st.subheader("Stored datasets")
    experiments.get_dataset(BUILTIN_NAME)  # the built-in set is always there: stored on first use
    with session_scope() as session:
        summaries = queries.list_datasets(session=session)
    shown = summaries
    if identity.auth_configured() and st.toggle("Mine only", **kept(PAGE, "mine")):
        shown = [s for s in summaries if s.created_by == identity.actor().name]
    frame = dataset_files.summaries_frame(shown)
    frame["by"] = [s.created_by for s in shown]  # who imported it; empty: from before owners
    table(frame, "datasets.csv")
    return summaries


def preview(names: list[str]) -> None:
    """One dataset's examples, searchable, with the step that deletes it."""
    st.subheader("Examples")
    chosen = key(PAGE, "chosen")
    if (pending := st.session_state.pop(SELECT, None)) in names:
        st.session_state[chosen] = pending
    elif st.session_state.get(chosen) not in names:  # deleted, here or in another session
        st.session_state.pop(chosen, None)
    name = st.selectbox("Dataset", names, **kept(PAGE, "chosen"))
    if name is None:
        return
    with session_scope() as session:
        dataset = queries.load_dataset(session=session, name=name)
    frame = dataset_files.examples_frame(dataset)
    query = st.text_input("Search id, input or reference", **kept(PAGE, "search"))
    shown = dataset_files.search_examples(frame, query)
    st.caption(f"{len(shown)} of {len(frame)} examples.")
    table(shown, f"{name}-examples.csv")
    delete_step(name)


def delete_step(name: str) -> None:
    """Delete in two clicks: the first asks, the second deletes."""
    if st.session_state.get(CONFIRM) != name:
        if st.button("Delete this dataset…", key="delete"):
            st.session_state[CONFIRM] = name
            st.rerun()
        return
    with session_scope() as session:
        users = len(queries.list_experiments(session=session, dataset=name))
    warning = f"Delete the dataset '{name}' and its examples?"
    if users:
        warning += f" {users} experiment(s) used it; they stay, but cannot be resumed or re-run."
    if name == BUILTIN_NAME:
        warning += " It is the built-in set: it is stored again, as shipped, on its next use."
    st.warning(plain(warning))
    yes, no = st.columns(2)
    if yes.button("Yes, delete", type="primary", key="delete-yes"):
        with session_scope() as session:
            queries.delete_dataset(session=session, name=name, actor=identity.actor())
        st.session_state.pop(CONFIRM, None)
        st.session_state[NOTICE] = f"Deleted the dataset '{name}'."
        st.rerun()
    if no.button("Cancel", key="delete-no"):
        st.session_state.pop(CONFIRM, None)
        st.rerun()


def upload_step(taken: set[str]) -> None:
    """A file to import: what was read of it, its mapping and split roles, name and Import."""
    st.subheader("Import a file")
    upload = st.file_uploader("A CSV, TSV or JSONL file", type=["csv", "tsv", "jsonl"])
    if upload is None:
        return
    check_file_size(upload.size, upload.name)  # before a byte of it is read
    raw = upload.getvalue()
    found = dataset_files.preview_upload(raw, filename=upload.name)
    if found.problems:
        show_problems(f"These lines of '{upload.name}' cannot be read:", list(found.problems))
    if not found.columns:
        return
    st.caption(f"{found.total_rows} rows. The first rows as read, every column of the file:")
    st.dataframe(found.rows, hide_index=True)
    # Keys carry the upload's id: another file starts from its own guesses and name.
    mapping = mapping_form(found.columns, upload.file_id)
    roles = None
    if mapping.split is not None:
        roles = split_roles_form(raw, upload.name, mapping.split, upload.file_id)
    st.caption(
        "Splits: the shots come from one set of split values, the evaluated examples from "
        "another; without a split column every example is in both (never its own shot). "
        "Without a reference column nothing can be scored."
    )
    name = st.text_input(
        "Dataset name",
        dataset_files.default_name(upload.name),
        key=f"datasets.name.{upload.file_id}",
    )
    if st.button("Import", type="primary"):
        if name.strip() in taken:
            raise PromptLabError(
                f"A dataset named '{name.strip()}' exists already: choose another name, "
                "or delete that one first."
            )
        import_upload(raw, upload.name, name, mapping, roles)


def split_roles_form(raw: bytes, filename: str, column: str, upload_id: str) -> SplitRoles:
    """Which values of the split column give the shots and which are evaluated, guessed for
    the usual names (train; test, else validation) and asked for otherwise."""
    values = dataset_files.upload_split_values(raw, filename=filename, column=column)
    guess = guess_split_roles(values)
    if guess is None:
        st.info(plain(f"Say which values of '{column}' give the shots and which are evaluated."))
    left, right = st.columns(2)
    picks = {}
    for cell, role, label in (
        (left, "shots", "Shots come from (empty: zero-shot only)"),
        (right, "evaluated", "Evaluated"),
    ):
        picks[role] = cell.multiselect(
            label,
            values,
            default=list(getattr(guess, role, ())),
            key=f"datasets.{role}.{upload_id}.{column}",
        )
    return SplitRoles(tuple(picks["shots"]), tuple(picks["evaluated"]))


def mapping_form(columns: tuple[str, ...], upload_id: str) -> dataset_files.ColumnMapping:
    """Which column gives the input, the reference, the id and the split (guessed first)."""
    guess = dataset_files.guess_mapping(columns)
    optional = [NONE, *columns]
    cells = st.columns(4)
    picks = {}
    for cell, role in zip(cells, ("input", "reference", "id", "split"), strict=True):
        choices = list(columns) if role == "input" else optional
        default = getattr(guess, role) or NONE
        picks[role] = cell.selectbox(
            f"{role} column",
            choices,
            index=choices.index(default),
            key=f"datasets.map.{role}.{upload_id}",
        )
    return dataset_files.ColumnMapping(
        **{role: None if pick == NONE else pick for role, pick in picks.items()}
    )


def import_upload(
    raw: bytes,
    filename: str,
    name: str,
    mapping: dataset_files.ColumnMapping,
    roles: SplitRoles | None,
) -> None:
    """Import the file and store it, or list the rows that stopped it."""
    try:
        dataset = dataset_files.import_upload(
            raw, filename=filename, name=name, mapping=mapping, split_roles=roles
        )
    except PromptLabError as exc:
        head, problems = dataset_files.import_problems(str(exc))
        if not problems:
            raise
        show_problems(head, problems)
        return
    with session_scope() as session:
        queries.save_dataset(session=session, dataset=dataset, created_by=identity.actor().name)
    st.session_state[NOTICE] = f"Imported {len(dataset.examples)} examples as '{dataset.name}'."
    st.session_state[SELECT] = dataset.name
    st.rerun()


def show_problems(head: str, problems: list[str]) -> None:
    """An import refused: the headline, and each row problem on its own line, as plain text."""
    st.error(plain(head))
    st.text("\n".join(problems))


def show_notice() -> None:
    """The success message an action left for the rerun it caused, shown once."""
    if notice := st.session_state.pop(NOTICE, None):
        st.success(plain(notice))
