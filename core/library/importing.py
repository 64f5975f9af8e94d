"""A prompt file into the store, all or nothing: the prompt is created or its new versions are
appended (identical ones skipped and reported), then the file's labels and tags are set."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from core.library.files import PromptFile, read_file
from core.policy import Actor, local_actor
from storage import prompt_queries
from storage.db import session_scope
from storage.schema import PromptRecord


@dataclass
class ImportReport:
    name: str
    created: bool = False  # the prompt did not exist before
    saved: list[tuple[int, int]] = field(default_factory=list)  # (number in file, new number)
    skipped: list[tuple[int, int]] = field(default_factory=list)  # (in file, identical one)
    labels: dict[str, int] = field(default_factory=dict)  # set: label -> number in the store
    notes: list[str] = field(default_factory=list)


def import_file(
    path: str | Path, *, db_url: str | None = None, actor: Actor | None = None
) -> ImportReport:
    """Import the prompt file at `path`; a malformed file changes nothing."""
    return import_prompt(read_file(path), db_url=db_url, actor=actor)


def import_prompt(
    prompt: PromptFile, *, db_url: str | None = None, actor: Actor | None = None
) -> ImportReport:
    actor = actor or local_actor()
    report = ImportReport(prompt.name)
    with session_scope(db_url) as session:
        found = session.scalar(select(PromptRecord.id).where(PromptRecord.name == prompt.name))
        report.created = found is None
        # Its creator is whoever imports it, whatever authors the file names.
        prompt_queries.ensure_prompt(session=session, name=prompt.name, created_by=actor.name)
        stored: dict[tuple, int] = {}
        if not report.created:
            for record in prompt_queries.versions_of(session=session, name=prompt.name):
                stored.setdefault(_content(record.design, record.settings), record.version)
        in_store: dict[int, int] = {}  # number in the file -> number in the store
        for version in prompt.versions:
            content = _content(version.design, version.settings)
            if content in stored:
                report.skipped.append((version.number, stored[content]))
                in_store[version.number] = stored[content]
                continue
            record = prompt_queries.save_version(
                session=session,
                name=prompt.name,
                design=version.design,
                settings=version.settings,
                message=version.message,
                created_by=version.author or actor.name,  # the author, as git keeps it
                created_at=version.created_at,
            )
            stored[content] = in_store[version.number] = record.version
            report.saved.append((version.number, record.version))
        owner = prompt_queries.get_prompt(session=session, name=prompt.name).created_by
        if not actor.may_change(owner):
            if prompt.labels or any(v.tags for v in prompt.versions):
                report.notes.append(
                    f"labels and tags not set: only the creator of '{prompt.name}' ({owner}) "
                    "or an admin may change them"
                )
            return report
        for number, new in report.saved:
            tags = next(v.tags for v in prompt.versions if v.number == number)
            if tags:
                prompt_queries.set_tags(
                    session=session, name=prompt.name, version=new, tags=tags, actor=actor
                )
        for label, number in prompt.labels.items():
            target = report.labels[label] = in_store[number]
            prompt_queries.set_label(
                session=session, name=prompt.name, label=label, version=target, actor=actor
            )
    return report


def _content(design: dict, settings: dict | None) -> tuple[str, str]:
    return (json.dumps(design, sort_keys=True), json.dumps(settings, sort_keys=True))
