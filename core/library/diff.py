"""Two versions side by side, field by field: which fields of the design and of the settings
differ, their old and new values, and a word-level diff of the text fields."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

from core.evaluation.word_diff import DiffOp, word_diff
from core.generation.settings import GenerationSettings
from core.prompting.design import PromptDesign

Part = Literal["design", "settings"]
TEXT_FIELDS = ("instruction", "example_format", "separator", "system_prompt")


class Versioned(Protocol):
    """What a diff needs of a version (core.library.versions.PromptVersion has it)."""

    ref: str
    design: PromptDesign
    settings: GenerationSettings | None


@dataclass(frozen=True)
class FieldDiff:
    part: Part
    field: str
    old: Any  # None where that version saved no settings
    new: Any
    words: tuple[tuple[DiffOp, str], ...] = ()  # text fields that differ: old to new, word by word

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True)
class VersionDiff:
    old_ref: str
    new_ref: str
    fields: tuple[FieldDiff, ...]  # every field of both parts, in the classes' order

    @property
    def changed(self) -> tuple[FieldDiff, ...]:
        return tuple(f for f in self.fields if f.changed)

    @property
    def identical(self) -> bool:
        return not self.changed


def diff_versions(old: Versioned, new: Versioned) -> VersionDiff:
    """`old` against `new`, which may be versions of different prompts."""
    rows = compare("design", old.design.to_dict(), new.design.to_dict())
    if old.settings is not None or new.settings is not None:
        rows += compare("settings", _settings(old.settings), _settings(new.settings))
    return VersionDiff(old.ref, new.ref, tuple(rows))


def compare(part: Part, old: dict[str, Any], new: dict[str, Any]) -> list[FieldDiff]:
    """One row per field (keys of `old` first, then any only in `new`)."""
    rows = []
    for name in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(name), new.get(name)
        words: tuple[tuple[DiffOp, str], ...] = ()
        if part == "design" and name in TEXT_FIELDS and a != b:
            words = tuple(word_diff(a or "", b or ""))
        rows.append(FieldDiff(part, name, a, b, words))
    return rows


def _settings(settings: GenerationSettings | None) -> dict[str, Any]:
    if settings is None:
        return {f.name: None for f in fields(GenerationSettings)}
    return settings.to_dict()
