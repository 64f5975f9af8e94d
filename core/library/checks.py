"""Designs and settings from a file, checked by type before they are built: a file's `shots: "3"`
or `instruction: 5` is refused by field name, where the classes alone would take or misread it."""

from __future__ import annotations

from dataclasses import MISSING, fields
from datetime import UTC, datetime
from typing import Any

from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.prompting.design import PromptDesign

KINDS = {  # the type of a field's default -> what the file must hold there, and its name
    str: ((str,), "text"),
    int: ((int,), "a whole number"),
    float: ((int, float), "a number"),
    bool: ((bool,), "true or false"),
    tuple: ((list,), "a list"),
    type(None): ((str, type(None)), "text or null"),
}


def checked_design(values: Any) -> PromptDesign:
    if not isinstance(values, dict):
        raise PromptLabError("design must be a mapping of its fields.")
    _check_types(values, PromptDesign, "design field")
    ids = values.get("shot_ids", [])
    if not all(isinstance(i, str | int) and not isinstance(i, bool) for i in ids):
        raise PromptLabError("design field 'shot_ids' must be a list of example ids.")
    return PromptDesign.from_dict(values)


def checked_settings(values: Any) -> GenerationSettings:
    if not isinstance(values, dict):
        raise PromptLabError("settings must be a mapping of generation settings, or null.")
    _check_types(values, GenerationSettings, "setting")
    if not all(isinstance(s, str) for s in values.get("stop", [])):
        raise PromptLabError("setting 'stop' must be a list of texts.")
    return GenerationSettings.from_dict(values)


def parse_time(value: Any) -> datetime | None:
    """A version's created_at: ISO 8601 text (YAML may already have read it as a time)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise PromptLabError(
                f"created_at must be a time like 2026-12-03T10:00:00+00:00; got {value!r}."
            ) from None
    if not isinstance(value, datetime):
        raise PromptLabError(f"created_at must be a time; got {value!r}.")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_types(values: dict[str, Any], kind: type, what: str) -> None:
    for f in fields(kind):
        if f.name not in values:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        allowed, shown = KINDS[type(default)]
        value = values[f.name]
        wrong_bool = isinstance(value, bool) and bool not in allowed
        if wrong_bool or not isinstance(value, allowed):
            raise PromptLabError(f"{what} '{f.name}' must be {shown}; got {value!r}.")
