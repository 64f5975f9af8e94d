"""The library's words, checked: prompt names, references (NAME, NAME@3, NAME@best), labels,
tags and commit messages, each refused with a sentence that says what is allowed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import PromptLabError

NAME_LENGTH = 100  # storage.schema.PROMPT_NAME_LENGTH
LABEL_LENGTH = 50  # storage.schema.LABEL_LENGTH
TAG_LENGTH = 50
MAX_TAGS = 20  # per version
MESSAGE_LENGTH = 2000
LATEST = "latest"  # NAME@latest is NAME: never a label of its own
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LABEL = re.compile(r"[a-z0-9_-]+")


@dataclass(frozen=True)
class Ref:
    """A reference to one version: by number, by label, or (neither) the latest."""

    name: str
    version: int | None = None
    label: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.label}" if self.label else self.name


def parse_ref(text: str) -> Ref:
    """`summarise` (latest), `summarise@3` (version 3), `summarise@best` (a label)."""
    if not isinstance(text, str) or not text.strip():
        raise PromptLabError("Give a prompt as NAME, NAME@VERSION or NAME@LABEL.")
    name, at, tail = text.strip().partition("@")
    check_name(name)
    if not at or tail == LATEST:
        return Ref(name)
    if tail.isdigit():
        number = int(tail)
        if number < 1:
            raise PromptLabError(f"Versions are numbered from 1; got '{text}'.")
        return Ref(name, version=number)
    if not tail:
        raise PromptLabError(f"'{text}' names no version after @; e.g. {name}@1 or {name}@best.")
    check_label(tail)
    return Ref(name, label=tail)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise PromptLabError("A prompt needs a name.")
    if "@" in name:
        raise PromptLabError(f"A prompt name cannot contain @ (it starts a version): '{name}'.")
    if len(name) > NAME_LENGTH:
        raise PromptLabError(
            f"A prompt name is at most {NAME_LENGTH} characters; '{name[:37]}…' has {len(name)}."
        )
    if not _NAME.fullmatch(name):
        raise PromptLabError(
            f"A prompt name uses letters, digits, '-', '_' and '.', and starts with a letter or "
            f"digit; got '{name}'."
        )
    return name


def check_label(label: str) -> str:
    if not isinstance(label, str) or not label:
        raise PromptLabError("A label needs a name, e.g. production or best.")
    if len(label) > LABEL_LENGTH:
        raise PromptLabError(f"A label is at most {LABEL_LENGTH} characters; got {len(label)}.")
    if not _LABEL.fullmatch(label):
        raise PromptLabError(f"A label uses lowercase letters, digits, '-' and '_'; got '{label}'.")
    if label.isdigit():
        raise PromptLabError(f"A label cannot be all digits ('{label}' reads as a version).")
    if label == LATEST:
        raise PromptLabError("'latest' always means the newest version; choose another label.")
    return label


def check_tag(tag: str) -> str:
    """A tag as stored: stripped, short, on one line."""
    if not isinstance(tag, str) or not tag.strip():
        raise PromptLabError("A tag cannot be empty.")
    tag = tag.strip()
    if len(tag) > TAG_LENGTH:
        raise PromptLabError(f"A tag is at most {TAG_LENGTH} characters; got {len(tag)}.")
    if any(not c.isprintable() for c in tag):
        raise PromptLabError("A tag is one line of printable text.")
    return tag


def check_message(message: str) -> str:
    if not isinstance(message, str):
        raise PromptLabError("A version's message must be text.")
    if len(message) > MESSAGE_LENGTH:
        raise PromptLabError(
            f"A version's message is at most {MESSAGE_LENGTH} characters; got {len(message)}."
        )
    return message.strip()
