"""Prompt files, to keep prompts in git: a prompt's versions and labels as YAML or JSON, written
out and read back. A malformed file is refused whole, with a sentence naming the problem."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from core.errors import PromptLabError
from core.library.checks import checked_design, checked_settings, parse_time
from core.library.refs import check_label, check_message, check_name, check_tag, parse_ref
from core.library.versions import PromptVersion, get_version, history

FORMAT = 1  # the file layout's version, written into every file
MAX_FILE_BYTES = 1_000_000  # a prompt's whole history is a few kilobytes
MAX_VERSIONS = 1000
KINDS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
FILE_KEYS = ("format", "name", "labels", "versions")
VERSION_KEYS = ("version", "message", "author", "created_at", "tags", "design", "settings")


@dataclass(frozen=True)
class FileVersion:
    number: int  # as numbered in the file; the store numbers an imported version itself
    design: dict[str, Any]  # PromptDesign.to_dict() of a checked design
    settings: dict[str, Any] | None
    message: str = ""
    author: str | None = None
    created_at: datetime | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptFile:
    name: str
    versions: tuple[FileVersion, ...]
    labels: dict[str, int] = field(default_factory=dict)  # label -> a version number in the file


def kind_of(path: str | Path) -> str:
    kind = KINDS.get(Path(path).suffix.lower())
    if kind is None:
        shown = Path(path).name
        raise PromptLabError(f"A prompt file ends in .yaml, .yml or .json; got '{shown}'.")
    return kind


# Writing ---------------------------------------------------------------------------------------


def export_data(ref: str, *, db_url: str | None = None) -> dict[str, Any]:
    """`NAME`: every version and label; `NAME@V` or `NAME@label`: that version, and the labels
    that point at it."""
    parsed = parse_ref(ref)
    if parsed.version is None and parsed.label is None and "@" not in ref:
        chosen = history(parsed.name, db_url=db_url)
    else:
        chosen = [get_version(parsed, db_url=db_url)]
    labels = {label: v.number for v in chosen for label in v.labels}
    return {
        "format": FORMAT,
        "name": parsed.name,
        "labels": dict(sorted(labels.items())),
        "versions": [_version_data(v) for v in chosen],
    }


def dumps(data: dict[str, Any], kind: str) -> str:
    if kind == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def write_file(ref: str, path: str | Path, *, db_url: str | None = None) -> int:
    """Write the prompt file for `ref` to `path` (YAML or JSON by its suffix); returns the
    number of versions written."""
    kind = kind_of(path)
    data = export_data(ref, db_url=db_url)
    try:
        Path(path).write_text(dumps(data, kind), encoding="utf-8")
    except OSError as exc:
        raise PromptLabError(f"Cannot write '{path}': {exc.strerror or exc}.") from exc
    return len(data["versions"])


def _version_data(version: PromptVersion) -> dict[str, Any]:
    created = version.created_at
    if created.tzinfo is None:  # SQLite gives back the UTC it stored, without its zone
        created = created.replace(tzinfo=UTC)
    return {
        "version": version.number,
        "message": version.message,
        "author": version.created_by,
        "created_at": created.isoformat(),
        "tags": list(version.tags),
        "design": version.design.to_dict(),
        "settings": version.settings.to_dict() if version.settings else None,
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line text as YAML literal blocks, so that a changed instruction diffs by line."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" not in value:
        style = None
    else:  # whitespace alone reads best escaped ("\n\n"), text as a block
        style = "|" if value.strip() else '"'

    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_text)


# Reading ---------------------------------------------------------------------------------------


def read_file(path: str | Path) -> PromptFile:
    """A prompt file checked whole; refused with a sentence naming the file and the problem."""
    path = Path(path)
    kind = kind_of(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PromptLabError(
                f"'{path.name}' is {size:,} bytes; a prompt file may have at most "
                f"{MAX_FILE_BYTES:,}."
            )
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PromptLabError(f"Cannot read '{path}': {exc.strerror or exc}.") from exc
    except UnicodeDecodeError as exc:
        raise PromptLabError(f"'{path.name}' is not UTF-8 text (byte {exc.start}).") from exc
    try:
        return loads(text, kind)
    except PromptLabError as exc:
        raise PromptLabError(f"{path.name}: {exc}") from exc


def loads(text: str, kind: str) -> PromptFile:
    """A prompt file's text (`kind` yaml or json), checked."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise PromptLabError(f"A prompt file may have at most {MAX_FILE_BYTES:,} bytes.")
    return parse(load_text(text, kind))


def parse(data: Any) -> PromptFile:
    """A prompt file's contents, loaded, checked field by field."""
    if not isinstance(data, dict):
        raise PromptLabError("A prompt file holds a mapping with name, versions and labels.")
    _refuse_unknown(data, FILE_KEYS, "key")
    if data.get("format", FORMAT) != FORMAT:
        raise PromptLabError(f"format {data['format']!r} is not one Prompt Lab reads ({FORMAT}).")
    if "name" not in data:
        raise PromptLabError("The prompt file has no name.")
    name = check_name(_text(data["name"], "name"))
    versions = data.get("versions")
    if not isinstance(versions, list) or not versions:
        raise PromptLabError("versions must be a list of at least one version.")
    if len(versions) > MAX_VERSIONS:
        raise PromptLabError(f"A prompt file holds at most {MAX_VERSIONS} versions.")
    parsed = tuple(_file_version(v, i) for i, v in enumerate(versions, start=1))
    numbers = [v.number for v in parsed]
    if len(set(numbers)) != len(numbers):
        raise PromptLabError("Two versions in the file have the same version number.")
    return PromptFile(name, parsed, _labels(data.get("labels"), set(numbers)))


def _file_version(data: Any, position: int) -> FileVersion:
    where = f"version {data.get('version', position)}" if isinstance(data, dict) else "a version"
    try:
        if not isinstance(data, dict):
            raise PromptLabError("must be a mapping of its fields.")
        _refuse_unknown(data, VERSION_KEYS, "version key")
        number = data.get("version", position)
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise PromptLabError(f"version must be a whole number ≥ 1; got {number!r}.")
        if "design" not in data:
            raise PromptLabError("has no design.")
        settings = data.get("settings")
        tags = data.get("tags") or []
        if not isinstance(tags, list):
            raise PromptLabError("tags must be a list.")
        author = data.get("author")
        return FileVersion(
            number=number,
            design=checked_design(data["design"]).to_dict(),
            settings=None if settings is None else checked_settings(settings).to_dict(),
            message=check_message(_text(data.get("message", ""), "message")),
            author=None if author is None else _text(author, "author")[:320] or None,
            created_at=parse_time(data.get("created_at")),
            tags=tuple(dict.fromkeys(check_tag(_text(t, "a tag")) for t in tags)),
        )
    except PromptLabError as exc:
        raise PromptLabError(f"{where}: {exc}") from exc


def _labels(data: Any, numbers: set[int]) -> dict[str, int]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PromptLabError("labels must map each label to a version number.")
    labels = {}
    for label, number in data.items():
        check_label(_text(label, "a label"))
        if number not in numbers or isinstance(number, bool):
            raise PromptLabError(
                f"label '{label}' points at version {number!r}, which is not in the file."
            )
        labels[label] = number
    return labels


def _refuse_unknown(data: dict, known: tuple[str, ...], what: str) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise PromptLabError(f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(known)}.")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PromptLabError(f"{what} must be text; got {value!r}.")
    return value


def load_text(text: str, kind: str) -> Any:
    """The data in a YAML or JSON text, refused with a sentence if it is neither."""
    return _load_yaml(text) if kind == "yaml" else _load_json(text)


def _load_yaml(text: str) -> Any:
    try:
        # Anchors and aliases could make a small file expand to a huge one once walked.
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise PromptLabError("anchors and aliases (& and *) are not accepted in prompt files.")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PromptLabError(f"not valid YAML: {problem}{line}.") from exc


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptLabError(f"not valid JSON: {exc.msg} (line {exc.lineno}).") from exc
    except RecursionError as exc:
        raise PromptLabError("not valid JSON: nested too deeply.") from exc
