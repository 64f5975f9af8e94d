"""Named prompts and their versions: save one (numbered after the latest, never changed after),
read one by reference, the history, labels that move and tags on a version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.library.refs import (
    MAX_TAGS,
    Ref,
    check_label,
    check_message,
    check_name,
    check_tag,
    parse_ref,
)
from core.policy import Actor, local_actor
from core.prompting.design import PromptDesign
from storage import prompt_queries, queries
from storage.db import session_scope
from storage.prompt_queries import PromptSummary
from storage.schema import PromptVersionRecord

__all__ = ["PromptSummary", "PromptVersion"]


@dataclass(frozen=True)
class PromptVersion:
    """One stored version, as the library shows it."""

    id: int
    name: str
    number: int
    design: PromptDesign
    settings: GenerationSettings | None  # None: the version fixes the design only
    message: str
    tags: tuple[str, ...]
    labels: tuple[str, ...]  # the prompt's labels that point at this version
    created_by: str | None
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"


def save_version(
    name: str,
    design: PromptDesign,
    settings: GenerationSettings | None = None,
    message: str = "",
    *,
    db_url: str | None = None,
    actor: Actor | None = None,  # who saves it; None: the local user
) -> PromptVersion:
    """Store a new version of `name` (creating the prompt with its first); anyone may. Refused
    when design and settings are identical to the latest version's."""
    check_name(name)
    message = check_message(message)
    with session_scope(db_url) as session:
        record = prompt_queries.save_version(
            session=session,
            name=name,
            design=design.to_dict(),
            settings=settings.to_dict() if settings is not None else None,
            message=message,
            created_by=(actor or local_actor()).name,
        )
        return _version(session, name, record)


def get_version(ref: str | Ref, *, db_url: str | None = None) -> PromptVersion:
    """The version `ref` names: `NAME` (latest), `NAME@3`, `NAME@best`."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    with session_scope(db_url) as session:
        record = prompt_queries.resolve_version(
            session=session, name=ref.name, version=ref.version, label=ref.label
        )
        return _version(session, ref.name, record)


def history(name: str, *, db_url: str | None = None) -> list[PromptVersion]:
    """Every version of `name`, oldest first."""
    check_name(name)
    with session_scope(db_url) as session:
        records = prompt_queries.versions_of(session=session, name=name)
        return [_version(session, name, record) for record in records]


def list_prompts(*, db_url: str | None = None) -> list[PromptSummary]:
    with session_scope(db_url) as session:
        return prompt_queries.list_prompts(session=session)


def move_label(
    ref: str | Ref, label: str, *, db_url: str | None = None, actor: Actor | None = None
) -> tuple[PromptVersion, int | None]:
    """Point `label` at the version `ref` names (its prompt's creator or an admin only);
    returns that version and the number the label pointed at before, if any."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    check_label(label)
    with session_scope(db_url) as session:
        target = prompt_queries.resolve_version(
            session=session, name=ref.name, version=ref.version, label=ref.label
        )
        before = prompt_queries.set_label(
            session=session, name=ref.name, label=label, version=target.version, actor=actor
        )
        return _version(session, ref.name, target), before


def remove_label(
    name: str, label: str, *, db_url: str | None = None, actor: Actor | None = None
) -> None:
    check_name(name)
    check_label(label)
    with session_scope(db_url) as session:
        prompt_queries.remove_label(session=session, name=name, label=label, actor=actor)


def tag(
    ref: str | Ref,
    tag: str,
    *,
    remove: bool = False,
    db_url: str | None = None,
    actor: Actor | None = None,
) -> PromptVersion:
    """Add `tag` to the version `ref` names, or with `remove` take it off (its prompt's creator
    or an admin only). Tags are the one part of a version that may change."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    tag = check_tag(tag)
    with session_scope(db_url) as session:
        record = prompt_queries.resolve_version(
            session=session, name=ref.name, version=ref.version, label=ref.label
        )
        tags = list(record.tags or [])
        if remove:
            if tag not in tags:
                raise PromptLabError(f"{ref.name}@{record.version} has no tag '{tag}'.")
            tags.remove(tag)
        elif tag not in tags:
            if len(tags) >= MAX_TAGS:
                raise PromptLabError(f"A version has at most {MAX_TAGS} tags.")
            tags.append(tag)
        prompt_queries.set_tags(
            session=session, name=ref.name, version=record.version, tags=tags, actor=actor
        )
        return _version(session, ref.name, record)


def delete_prompt(name: str, *, db_url: str | None = None, actor: Actor | None = None) -> int:
    """Delete a prompt with its versions and labels (its creator or an admin only); experiments
    that ran them keep their design. Returns the number of versions deleted."""
    check_name(name)
    with session_scope(db_url) as session:
        return prompt_queries.delete_prompt(session=session, name=name, actor=actor)


def from_experiment(
    experiment_id: int, *, db_url: str | None = None
) -> tuple[PromptDesign, GenerationSettings]:
    """The design and generation settings a stored experiment ran with."""
    with session_scope(db_url) as session:
        record = queries.get_experiment(session=session, experiment_id=experiment_id)
        design, settings = dict(record.design or {}), dict(record.settings or {})
    return PromptDesign.from_dict(design), GenerationSettings.from_dict(settings)


@dataclass(frozen=True)
class UnnamedDesign:
    """A design experiments ran without naming it (its unnamed version), to be named."""

    design: PromptDesign
    experiment_ids: tuple[int, ...]  # newest first
    last_used: datetime


def unnamed_designs(*, db_url: str | None = None) -> list[UnnamedDesign]:
    """Each design experiments ran as an unnamed version, the most recently used first."""
    with session_scope(db_url) as session:
        uses = prompt_queries.unnamed_versions(session=session)
    return [
        UnnamedDesign(PromptDesign.from_dict(u.design), u.experiment_ids, u.last_used) for u in uses
    ]


def _version(session, name: str, record: PromptVersionRecord) -> PromptVersion:
    labels = prompt_queries.prompt_labels(session=session, prompt_id=record.prompt_id)
    return PromptVersion(
        id=record.id,
        name=name,
        number=record.version,
        design=PromptDesign.from_dict(dict(record.design)),
        settings=None if record.settings is None else GenerationSettings.from_dict(record.settings),
        message=record.message,
        tags=tuple(record.tags or ()),
        labels=tuple(label for label, number in labels.items() if number == record.version),
        created_by=record.created_by,
        created_at=record.created_at,
    )
