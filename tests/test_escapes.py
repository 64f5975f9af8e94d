"""One-line fields for separators: what is shown reads back exactly, whatever the text."""

import random

import pytest

from core.prompting.escapes import escape_field, read_field

TRICKY = ["—", "\\", "end\\", "\\n", "😀", "\r\n", "\n", "\t", "\\\\n", "", " — ", "a\\tb", "\\q"]


@pytest.mark.parametrize("text", TRICKY)
def test_every_tricky_string_reads_back_exactly(text):
    assert read_field(escape_field(text)) == text
    assert "\n" not in escape_field(text) and "\t" not in escape_field(text)  # one line


def test_random_mixtures_of_tricky_parts_read_back_exactly():
    parts = [*TRICKY, "n", "t", "é", "\x00", "\\u00e9", "\\x41"]
    rng = random.Random(11)
    for _ in range(2000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 8)))
        assert read_field(escape_field(text)) == text, repr(text)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("\\n\\n", "\n\n"),
        ("\\t", "\t"),
        ("—", "—"),  # not re-read as Latin-1 bytes (unicode_escape made it 'â\x80\x94')
        ("end\\", "end\\"),  # a trailing backslash is a backslash, not an error
        ("\\\\n", "\\n"),  # an escaped backslash before n
        ("\\u00e9 \\x41 \\q", "\\u00e9 \\x41 \\q"),  # no other escapes are translated
    ],
)
def test_only_newline_tab_and_backslash_escapes_are_translated(typed, meant):
    assert read_field(typed) == meant


def test_newlines_and_tabs_are_shown_escaped():
    assert escape_field("\n\n— \\ \t") == "\\n\\n— \\\\ \\t"
