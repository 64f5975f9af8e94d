"""The three-way split a search makes before anything runs: the shot pool (the dataset's own),
a selection set that candidates are scored on, and a locked test set used once at the end."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from core.datasets.data import Dataset
from core.errors import PromptLabError

MIN_PART = 2  # a paired test needs at least two examples on each side


@dataclass(frozen=True)
class SearchSplit:
    pool: tuple[str, ...]  # shots come only from here
    selection: tuple[str, ...]  # every candidate is scored on these
    test: tuple[str, ...]  # the base and the winner only, once
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": list(self.pool),
            "selection": list(self.selection),
            "test": list(self.test),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SearchSplit:
        return cls(
            tuple(values["pool"]), tuple(values["selection"]), tuple(values["test"]), values["seed"]
        )


def split_examples(
    dataset: Dataset, *, seed: int, test_fraction: float = 0.5, limit: int | None = None
) -> SearchSplit:
    """The pool is the dataset's shot pool; its evaluation examples (the first `limit` after a
    shuffle with `seed`, when given) are dealt into the selection and test sets."""
    if not 0 < test_fraction < 1:
        raise PromptLabError(f"test_fraction must be between 0 and 1; got {test_fraction}.")
    pool = [ex.id for ex in dataset.pool if ex.reference is not None]
    evaluated = [ex.id for ex in dataset.eval if ex.reference is not None]
    if set(pool) & set(evaluated) or not pool:
        raise PromptLabError(
            f"A search needs a shot pool apart from the examples it scores; dataset "
            f"'{dataset.name}' has {'no' if not pool else 'no separate'} pool. Import it with a "
            "split column that marks the pool (train) and the evaluated examples (test)."
        )
    random.Random(seed).shuffle(evaluated)
    if limit is not None:
        evaluated = evaluated[:limit]
    n_test = round(len(evaluated) * test_fraction)
    selection, test = evaluated[n_test:], evaluated[:n_test]
    if len(selection) < MIN_PART or len(test) < MIN_PART:
        raise PromptLabError(
            f"A search needs at least {MIN_PART} examples with a reference in both the selection "
            f"and the test set; '{dataset.name}' gives {len(selection)} and {len(test)}."
        )
    return SearchSplit(tuple(pool), tuple(selection), tuple(test), seed)
