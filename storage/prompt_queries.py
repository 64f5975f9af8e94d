"""The prompt library in the store: named prompts, their numbered versions, labels and tags.
The rules of names and messages are core/library's; refusals that need the store (unknown,
identical, not yours) are made here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import PromptLabError
from core.policy import Actor, local_actor
from storage.design_queries import design_id, unnamed_version
from storage.refusals import refuse_too_long
from storage.schema import (
    DeletionRecord,
    ExperimentRecord,
    PromptLabelRecord,
    PromptRecord,
    PromptVersionRecord,
    utcnow,
)

SAVE_ATTEMPTS = 3  # another process may take the next number meanwhile: try the one after


@dataclass(frozen=True)
class PromptSummary:
    name: str
    versions: int
    latest: int
    labels: dict[str, int]  # label -> version number
    created_by: str | None
    created_at: datetime
    updated_at: datetime  # when its newest version was saved
    latest_message: str = ""  # the newest version's message, and who saved it
    latest_by: str | None = None


@dataclass(frozen=True)
class UnnamedUse:
    """An unnamed version (a design experiments ran without naming it) and who ran it."""

    version_id: int
    design: dict[str, Any]
    experiment_ids: tuple[int, ...]  # newest first
    last_used: datetime


def unnamed_versions(*, session: Session) -> list[UnnamedUse]:
    """The unnamed versions experiments point at, the most recently used first."""
    rows = session.execute(
        select(PromptVersionRecord.id, ExperimentRecord.id, ExperimentRecord.created_at)
        .join(ExperimentRecord, ExperimentRecord.prompt_version_id == PromptVersionRecord.id)
        .where(PromptVersionRecord.prompt_id.is_(None))
        .order_by(ExperimentRecord.id.desc())
    ).all()
    uses: dict[int, tuple[list[int], datetime]] = {}
    for version_id, experiment_id, created_at in rows:
        uses.setdefault(version_id, ([], created_at))[0].append(experiment_id)
    designs = dict(
        session.execute(
            select(PromptVersionRecord.id, PromptVersionRecord.design).where(
                PromptVersionRecord.id.in_(list(uses))
            )
        ).all()
    )
    return [
        UnnamedUse(version_id, dict(designs[version_id]), tuple(ids), last_used)
        for version_id, (ids, last_used) in uses.items()
    ]


def get_prompt(*, session: Session, name: str) -> PromptRecord:
    record = session.scalar(select(PromptRecord).where(PromptRecord.name == name))
    if record is None:
        raise PromptLabError(f"No prompt named '{name}'.")
    return record


def list_prompts(*, session: Session) -> list[PromptSummary]:
    """Every named prompt, by name."""
    counts = dict(
        session.execute(
            select(
                PromptVersionRecord.prompt_id,
                func.count(),
            ).group_by(PromptVersionRecord.prompt_id)
        ).all()
    )
    summaries = []
    for prompt in session.scalars(select(PromptRecord).order_by(PromptRecord.name)):
        latest = _latest(session, prompt.id)
        summaries.append(
            PromptSummary(
                name=prompt.name,
                versions=counts.get(prompt.id, 0),
                latest=latest.version if latest else 0,
                labels=prompt_labels(session=session, prompt_id=prompt.id),
                created_by=prompt.created_by,
                created_at=prompt.created_at,
                updated_at=latest.created_at if latest else prompt.created_at,
                latest_message=latest.message if latest else "",
                latest_by=latest.created_by if latest else None,
            )
        )
    return summaries


def versions_of(*, session: Session, name: str) -> list[PromptVersionRecord]:
    """A prompt's versions, oldest first."""
    prompt = get_prompt(session=session, name=name)
    query = select(PromptVersionRecord).where(PromptVersionRecord.prompt_id == prompt.id)
    return list(session.scalars(query.order_by(PromptVersionRecord.version)))


def resolve_version(
    *, session: Session, name: str, version: int | None = None, label: str | None = None
) -> PromptVersionRecord:
    """`name`'s version `version`, or the one `label` points at, or (neither) its latest."""
    prompt = get_prompt(session=session, name=name)
    if label is not None:
        labels = prompt_labels(session=session, prompt_id=prompt.id)
        if label not in labels:
            known = f"its labels: {', '.join(sorted(labels))}" if labels else "it has no labels"
            raise PromptLabError(f"{name} has no label '{label}'; {known}.")
        version = labels[label]
    latest = _latest(session, prompt.id)
    if latest is None:
        raise PromptLabError(f"{name} has no versions.")
    if version is None:
        return latest
    record = session.scalar(
        select(PromptVersionRecord).where(
            PromptVersionRecord.prompt_id == prompt.id, PromptVersionRecord.version == version
        )
    )
    if record is None:
        held = "only version 1" if latest.version == 1 else f"versions 1–{latest.version}"
        raise PromptLabError(f"{name} has {held}; there is no version {version}.")
    return record


def prompt_labels(*, session: Session, prompt_id: int) -> dict[str, int]:
    """A prompt's labels and the version number each points at, by label."""
    rows = session.execute(
        select(PromptLabelRecord.label, PromptVersionRecord.version)
        .join(PromptVersionRecord, PromptLabelRecord.version_id == PromptVersionRecord.id)
        .where(PromptLabelRecord.prompt_id == prompt_id)
        .order_by(PromptLabelRecord.label)
    ).all()
    return {label: number for label, number in rows}


def save_version(
    *,
    session: Session,
    name: str,
    design: dict[str, Any],
    settings: dict[str, Any] | None,
    message: str,
    created_by: str | None,
    created_at: datetime | None = None,
) -> PromptVersionRecord:
    """A new version of `name` (the prompt is created with its first), numbered after the
    latest; refused when it is identical to the latest."""
    prompt = ensure_prompt(session=session, name=name, created_by=created_by)
    for attempt in range(SAVE_ATTEMPTS):
        latest = _latest(session, prompt.id)
        if latest is not None and (latest.design, latest.settings) == (design, settings):
            raise PromptLabError(
                f"This version is identical to {name}@{latest.version}; nothing saved."
            )
        record = PromptVersionRecord(
            prompt_id=prompt.id,
            version=(latest.version if latest else 0) + 1,
            design_id=design_id(session=session, design=design, created_by=created_by),
            design=design,
            settings=settings,
            message=message,
            tags=[],
            created_by=created_by,
            created_at=created_at or utcnow(),
        )
        try:
            with session.begin_nested():
                session.add(record)
            return record
        except IntegrityError:
            if attempt == SAVE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def set_label(
    *, session: Session, name: str, label: str, version: int, actor: Actor | None = None
) -> int | None:
    """Point `label` at `version` of `name`; returns the version it pointed at before, if any."""
    prompt = get_prompt(session=session, name=name)
    _refuse_unless_theirs(actor, prompt, "move its labels")
    target = resolve_version(session=session, name=name, version=version)
    record = session.scalar(
        select(PromptLabelRecord).where(
            PromptLabelRecord.prompt_id == prompt.id, PromptLabelRecord.label == label
        )
    )
    before = prompt_labels(session=session, prompt_id=prompt.id).get(label)
    by = (actor or local_actor()).name
    if record is None:
        record = PromptLabelRecord(prompt_id=prompt.id, label=label)
        session.add(record)
    record.version_id, record.moved_by, record.moved_at = target.id, by, utcnow()
    session.flush()
    return before


def remove_label(*, session: Session, name: str, label: str, actor: Actor | None = None) -> None:
    prompt = get_prompt(session=session, name=name)
    _refuse_unless_theirs(actor, prompt, "move its labels")
    resolve_version(session=session, name=name, label=label)  # refused by name if unknown
    session.execute(
        delete(PromptLabelRecord).where(
            PromptLabelRecord.prompt_id == prompt.id, PromptLabelRecord.label == label
        )
    )


def set_tags(
    *,
    session: Session,
    name: str,
    version: int,
    tags: Sequence[str],
    actor: Actor | None = None,
) -> None:
    """Replace the tags of one version (they are the one part of a version that may change)."""
    prompt = get_prompt(session=session, name=name)
    _refuse_unless_theirs(actor, prompt, "tag its versions")
    record = resolve_version(session=session, name=name, version=version)
    record.tags = list(tags)  # reassigned: a JSON list changed in place would not be saved
    session.flush()


def delete_prompt(*, session: Session, name: str, actor: Actor | None = None) -> int:
    """Delete a prompt, its versions and labels; experiments that ran one of its versions keep
    pointing at the unnamed version of the same design. Returns the versions deleted."""
    actor = actor or local_actor()
    prompt = get_prompt(session=session, name=name)
    _refuse_unless_theirs(actor, prompt, "delete it")
    doomed = versions_of(session=session, name=name)
    for record in doomed:
        unnamed = unnamed_version(
            session=session, design_row=record.design_id, created_by=record.created_by
        )
        session.execute(
            update(ExperimentRecord)
            .where(ExperimentRecord.prompt_version_id == record.id)
            .values(prompt_version_id=unnamed)
        )
    session.add(
        DeletionRecord(
            kind="prompt",
            item_id=prompt.id,
            name=prompt.name,
            created_by=prompt.created_by,
            deleted_by=actor.name,
        )
    )
    session.delete(prompt)
    session.flush()
    return len(doomed)


def _latest(session: Session, prompt_id: int) -> PromptVersionRecord | None:
    return session.scalar(
        select(PromptVersionRecord)
        .where(PromptVersionRecord.prompt_id == prompt_id)
        .order_by(PromptVersionRecord.version.desc())
        .limit(1)
    )


def ensure_prompt(*, session: Session, name: str, created_by: str | None) -> PromptRecord:
    """The prompt called `name`, created (by `created_by`) if there is none."""
    refuse_too_long(PromptRecord, {"name": name})
    query = select(PromptRecord).where(PromptRecord.name == name)
    record = session.scalar(query)
    if record is not None:
        return record
    try:
        with session.begin_nested():  # another process may create it meanwhile
            record = PromptRecord(name=name, created_by=created_by)
            session.add(record)
        return record
    except IntegrityError:
        return session.scalars(query).one()


def _refuse_unless_theirs(actor: Actor | None, prompt: PromptRecord, doing: str) -> None:
    if (actor or local_actor()).may_change(prompt.created_by):
        return
    whose = f"({prompt.created_by})" if prompt.created_by else "(unknown)"
    raise PromptLabError(
        f"Only the creator of prompt '{prompt.name}' {whose} or an admin (PROMPT_LAB_ADMINS) "
        f"may {doing}; anyone may save a new version."
    )
