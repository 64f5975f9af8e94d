"""Which examples a run evaluates and which it draws shots from: a slice of a stored dataset
(the built-in one stored on first use) and a pool, its own or another dataset's."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from core.datasets.data import BUILTIN_NAME, Dataset, Example, load_builtin
from core.errors import PromptLabError
from core.runs import limits as run_policy
from core.runs.spec import RunSpec
from storage import queries
from storage.db import session_scope


def examples_for(spec: RunSpec, dataset: Dataset) -> tuple[list[Example], list[Example]]:
    """(the examples to evaluate, the pool of `dataset` that shots come from)."""
    chosen = list(dataset.split(spec.split) if spec.split else dataset.examples)
    if spec.split and not chosen:
        raise PromptLabError(f"Dataset '{dataset.name}' has no '{spec.split}' split.")
    end = None if spec.limit is None else spec.offset + spec.limit
    chosen = chosen[spec.offset : end]
    if not chosen:
        raise PromptLabError(f"No examples left after offset {spec.offset}.")
    run_policy.check_example_count(len(chosen))
    return chosen, list(dataset.pool)


def get_dataset(name: str, *, db_url: str | None = None) -> Dataset:
    """A stored dataset; the built-in one is stored on first use."""
    if name == BUILTIN_NAME:
        try:
            with session_scope(db_url) as session:
                if name not in queries.list_dataset_names(session=session):
                    queries.save_dataset(session=session, dataset=load_builtin())
        except (IntegrityError, PromptLabError):
            # Another process may have stored it between the look and the save: its copy is
            # the same data. Anything else is a real failure.
            with session_scope(db_url) as session:
                if name not in queries.list_dataset_names(session=session):
                    raise
    with session_scope(db_url) as session:
        return queries.load_dataset(session=session, name=name)


def pool_of(spec: RunSpec, dataset: Dataset, *, db_url: str | None = None) -> list[Example]:
    """The examples shots are drawn from: `dataset`'s pool, or another dataset's."""
    if spec.pool_dataset and spec.pool_dataset != dataset.name:
        return list(get_dataset(spec.pool_dataset, db_url=db_url).pool)
    return list(dataset.pool)
