"""One-line fields for text that may hold newlines and tabs: `\\n`, `\\t` and `\\\\` stand for
a newline, a tab and a backslash; every other character, backslashes included, is itself."""

from __future__ import annotations

_SHOWN = {"\\": "\\\\", "\n": "\\n", "\t": "\\t"}
_READ = {"\\": "\\", "n": "\n", "t": "\t"}


def escape_field(text: str) -> str:
    """`text` as a one-line field shows it; read_field gives it back exactly."""
    return "".join(_SHOWN.get(char, char) for char in text)


def read_field(shown: str) -> str:
    """What a field means: `\\n`, `\\t`, `\\\\` translated; any other backslash kept as typed."""
    out, i = [], 0
    while i < len(shown):
        char = shown[i]
        if char == "\\" and i + 1 < len(shown) and shown[i + 1] in _READ:
            out.append(_READ[shown[i + 1]])
            i += 2
        else:  # a lone or trailing backslash, or one before another letter, is a backslash
            out.append(char)
            i += 1
    return "".join(out)
