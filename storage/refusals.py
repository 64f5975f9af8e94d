"""Refusals the queries share, as sentences: text too long for its column, and deleting what
someone else created."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import String

from core.errors import PromptLabError
from core.policy import Actor, local_actor
from storage.schema import Base

NAMES_SHOWN = {  # of columns whose own name would not say what they hold
    ("datasets", "name"): "dataset name",
    ("examples", "key"): "example id",
    ("studies", "name"): "study name",
    ("searches", "name"): "search name",
    ("results", "example_key"): "example id",
}


def refuse_unless_theirs(actor: Actor | None, kind: str, shown: str, owner: str | None) -> None:
    """Refuse, with a sentence naming the creator, to let `actor` delete another's work."""
    if (actor or local_actor()).may_change(owner):
        return
    whose = f"was created by {owner}" if owner else "was stored before creators were recorded"
    raise PromptLabError(
        f"You can delete only what you created: {kind} {shown} {whose}. An admin "
        "(PROMPT_LAB_ADMINS) can delete it."
    )


def refuse_too_long(kind: type[Base], values: Mapping[str, Any]) -> None:
    """Text longer than its column is refused on every database alike: PostgreSQL would fail
    with a traceback where SQLite keeps it whole, and such a store could not move to PostgreSQL."""
    for name, limit in _limits(kind).items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            shown = value if len(value) <= 40 else value[:37] + "…"
            what = NAMES_SHOWN.get((kind.__tablename__, name), name.replace("_", " "))
            raise PromptLabError(
                f"The {what} '{shown}' is {len(value)} characters long; at most {limit} fit "
                "in the store."
            )


@functools.cache
def _limits(kind: type[Base]) -> dict[str, int]:
    return {
        column.name: column.type.length
        for column in kind.__table__.columns
        if isinstance(column.type, String) and column.type.length
    }
