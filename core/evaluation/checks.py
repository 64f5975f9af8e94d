"""Pass/fail checks on each prediction, named by the user: equals, contains, starts_with, regex,
max_words and json, each optionally negated; a check scores 1.0 (pass) or 0.0 (fail)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import regex

from core.errors import PromptLabError

KINDS: Final = ("equals", "contains", "starts_with", "regex", "max_words", "json")
NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,40}")
REGEX_TIMEOUT_S: Final = 1.0  # a catastrophic pattern fails its check instead of hanging a run
_FIELDS: Final = ("name", "kind", "value", "negate")
_NEEDS_VALUE: Final = ("contains", "starts_with", "regex", "max_words")  # equals "" is allowed
_EXAMPLE: Final = "e.g. short=max_words:40, no_turns=not contains:#Person or valid=json"


@dataclass(frozen=True)
class Check:
    """One named test of a prediction; every kind looks at the prediction without the whitespace
    at its ends."""

    name: str  # the score's column is check:<name>
    kind: str  # one of KINDS
    value: str = ""  # the text, pattern or number; json takes none
    negate: bool = False  # pass when the test fails

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise PromptLabError(
                f"A check's name uses letters, digits, _ and - (at most 40); got {self.name!r}."
            )
        if self.kind not in KINDS:
            raise PromptLabError(
                f"Check {self.name!r} has unknown kind {self.kind!r}; use one of "
                f"{', '.join(KINDS)}."
            )
        if not isinstance(self.value, str) or not isinstance(self.negate, bool):
            raise PromptLabError(
                f"Check {self.name!r} needs its value as text and negate as true/false."
            )
        self._check_value()

    def _check_value(self) -> None:
        if self.kind == "json" and self.value:
            raise PromptLabError(
                f"Check {self.name!r} is json, which takes no value; got {self.value!r}."
            )
        if self.kind in _NEEDS_VALUE and not self.value:
            raise PromptLabError(f"Check {self.name!r} ({self.kind}) needs a value; {_EXAMPLE}.")
        if self.kind == "max_words" and not re.fullmatch(r"[0-9]{1,9}", self.value.strip()):
            raise PromptLabError(
                f"Check {self.name!r}: max_words takes a whole number of words, e.g. 40; "
                f"got {self.value!r}."
            )
        if self.kind == "regex":
            try:  # kept beside the fields, so that to_dict and equality see only those
                object.__setattr__(self, "_pattern", regex.compile(self.value))
            except regex.error as exc:
                raise PromptLabError(
                    f"Check {self.name!r} has a pattern that does not compile: {exc}."
                ) from None

    def passes(self, prediction: str, *, timeout: float = REGEX_TIMEOUT_S) -> bool:
        """Whether the prediction passes; a regex search past `timeout` seconds is an error.

        Examples:

            >>> Check("short", "max_words", "3").passes("one two three")
            True
            >>> Check("no_turns", "contains", "#Person", negate=True).passes("#Person1#: hi")
            False
        """
        return self._holds(prediction.strip(), timeout) != self.negate

    def _holds(self, text: str, timeout: float) -> bool:
        if self.kind == "equals":
            return text == self.value.strip()
        if self.kind == "contains":
            return self.value in text
        if self.kind == "starts_with":
            return text.startswith(self.value)
        if self.kind == "max_words":
            return len(text.split()) <= int(self.value)
        if self.kind == "json":
            try:
                json.loads(text)
            except (ValueError, RecursionError):  # also too long numbers, too deep nesting
                return False
            return True
        try:
            return self._pattern.search(text, timeout=timeout) is not None
        except TimeoutError:
            raise PromptLabError(
                f"Check {self.name!r} took over {timeout:g} s on one output; simplify its "
                f"pattern {self.value!r} (nested repeats such as (a|aa)+ backtrack without end)."
            ) from None

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "value": self.value, "negate": self.negate}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Check:
        """The check a stored or typed dict describes; unknown fields are refused, not dropped."""
        if not isinstance(d, Mapping):
            raise PromptLabError(f"A check is a mapping of {', '.join(_FIELDS)}; got {d!r}.")
        unknown = sorted(set(d) - set(_FIELDS))
        if unknown:
            raise PromptLabError(
                f"A check has fields {', '.join(_FIELDS)}; unknown: {', '.join(map(str, unknown))}."
            )
        if "name" not in d or "kind" not in d:
            raise PromptLabError(f"A check needs a name and a kind; got {dict(d)!r}.")
        return cls(d["name"], d["kind"], d.get("value", ""), d.get("negate", False))


def parse_check(text: str) -> Check:
    """A check from its command-line form NAME=KIND:VALUE, NAME=not KIND:VALUE or NAME=json.

    Examples:

        >>> parse_check("no_turns=not contains:#Person")
        Check(name='no_turns', kind='contains', value='#Person', negate=True)
    """
    name, equals, rest = text.partition("=")
    if not equals:
        raise PromptLabError(f"Write a check as NAME=KIND:VALUE, {_EXAMPLE}; got {text!r}.")
    rest = rest.lstrip()
    negate = rest.startswith("not ")
    if negate:
        rest = rest[len("not ") :]
    kind, _, value = rest.partition(":")
    return Check(name.strip(), kind.strip(), value, negate)


def checks_from(dicts: Iterable[Mapping[str, Any] | Check]) -> tuple[Check, ...]:
    """Checks from their dicts (or checks), refusing two with one name: each names a column."""
    checks = tuple(d if isinstance(d, Check) else Check.from_dict(d) for d in dicts)
    names = [check.name for check in checks]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise PromptLabError(
            f"Each check needs its own name; used more than once: {', '.join(twice)}."
        )
    return checks
