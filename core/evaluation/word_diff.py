"""Word-level differences between two texts, and their HTML with every piece escaped."""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Sequence
from typing import Literal

DiffOp = Literal["equal", "delete", "insert"]
DIFF_OPS: tuple[DiffOp, ...] = ("equal", "delete", "insert")
DIFF_STYLE = {
    "insert": "background:#c8f0c8;text-decoration:none",
    "delete": "background:#f8cccc;text-decoration:line-through",
}
_TOKENS = re.compile(r"\s+|\S+")  # words and the whitespace between them, so nothing is lost


def word_diff(a: str, b: str) -> list[tuple[DiffOp, str]]:
    """`a` to `b` word by word: 'equal' pieces are in both, 'delete' only in `a`, 'insert' only in
    `b`; the equal and delete pieces joined give `a` back, the equal and insert pieces `b`."""
    left, right = _TOKENS.findall(a), _TOKENS.findall(b)
    # Whitespace as junk: a shared space must not anchor a match between unrelated words.
    matcher = difflib.SequenceMatcher(str.isspace, left, right, autojunk=False)
    pieces: list[tuple[DiffOp, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pieces.append(("equal", "".join(left[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(("delete", "".join(left[i1:i2])))
        if j2 > j1:
            pieces.append(("insert", "".join(right[j1:j2])))
    return pieces


def diff_html(pieces: Sequence[tuple[DiffOp, str]], *, side: Literal["a", "b", "both"]) -> str:
    """The diff as HTML in which every piece of text is escaped: side 'b' is the second text with
    its own words marked, 'a' the first with the words it lost, 'both' the two interleaved."""
    shown = {"a": ("equal", "delete"), "b": ("equal", "insert"), "both": DIFF_OPS}[side]
    parts = []
    for op, text in pieces:
        if op not in shown:
            continue
        safe = html.escape(text)
        tag = {"insert": "ins", "delete": "del"}.get(op)
        parts.append(safe if tag is None else f'<{tag} style="{DIFF_STYLE[op]}">{safe}</{tag}>')
    return '<div style="white-space:pre-wrap;line-height:1.5">' + "".join(parts) + "</div>"
