"""The Prompts page's diff: two versions (of one prompt or of two) side by side, each field that
differs with its old and new value, text fields marked word by word; all of it HTML-escaped."""

import html
from typing import Any

import streamlit as st

from core.evaluation.word_diff import diff_html, word_diff
from core.library.diff import TEXT_FIELDS, FieldDiff, VersionDiff, diff_versions
from core.library.versions import PromptSummary, get_version
from core.prompting.escapes import escape_field
from ui.feedback import plain
from ui.state import kept, key

PAGE = "prompts"
_CELL = "padding:6px 10px;border-top:1px solid #ddd;vertical-align:top"
_FIELD = "font-size:0.8em;overflow-wrap:anywhere"
_WAS = "background:#f8cccc"  # a whole value that changed, in word_diff's colours
_NOW = "background:#c8f0c8"


def diff_section(name: str, summaries: list[PromptSummary]) -> VersionDiff | None:
    """Pick two versions (default: `name`'s latest against the one before) and show their diff."""
    st.subheader("Diff")
    refs = all_refs(name, summaries)
    latest = next(s.latest for s in summaries if s.name == name)
    defaults = (f"{name}@{max(latest - 1, 1)}", f"{name}@{latest}")
    left, right, toggle = st.columns([2, 2, 1], vertical_alignment="bottom")
    picked = []
    for cell, side, default in zip((left, right), ("old", "new"), defaults, strict=True):
        state = key(PAGE, f"diff.{side}.{name}")  # per prompt: a new pick starts from its default
        if st.session_state.get(state) not in refs:
            st.session_state[state] = default
        label = "Old version" if side == "old" else "New version"
        picked.append(cell.selectbox(label, refs, **kept(PAGE, f"diff.{side}.{name}")))
    unchanged = toggle.toggle("Show unchanged fields", **kept(PAGE, "diff.unchanged"))
    if latest == 1 and picked[0] == picked[1]:
        st.caption(plain(f"{name} has one version: pick another prompt's version to compare."))
        return None
    diff = diff_versions(get_version(picked[0]), get_version(picked[1]))
    show_diff(diff, unchanged=unchanged)
    return diff


def all_refs(name: str, summaries: list[PromptSummary]) -> list[str]:
    """Every version of every prompt, `name`'s first, newest first within each prompt."""
    ordered = sorted(summaries, key=lambda s: s.name != name)
    return [f"{s.name}@{n}" for s in ordered for n in range(s.latest, 0, -1)]


def show_diff(diff: VersionDiff, *, unchanged: bool = False) -> None:
    """The diff as one table: field, old value, new value; or a sentence when identical."""
    if diff.identical:
        st.info(
            plain(f"{diff.old_ref} and {diff.new_ref} are identical: same design, same settings.")
        )
        if not unchanged:
            return
    rows = diff.fields if unchanged else diff.changed
    changed = len(diff.changed)
    st.caption(plain(f"{changed} field(s) differ between {diff.old_ref} and {diff.new_ref}."))
    head = "".join(
        f'<th style="{_CELL};text-align:left">{html.escape(text)}</th>'
        for text in ("field", diff.old_ref, diff.new_ref)
    )
    body = "".join(diff_row(row) for row in rows)
    st.html(
        '<table data-testid="version-diff" style="width:100%;border-collapse:collapse;'
        f'table-layout:fixed"><colgroup><col style="width:24%"><col style="width:38%">'
        f'<col style="width:38%"></colgroup><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


def diff_row(row: FieldDiff) -> str:
    """One field: text fields with deleted words struck on the left and inserted ones on the
    right; any other field's whole values, tinted when they differ."""
    field = f"{html.escape(row.part)}.{html.escape(row.field)}"
    name = f'<td style="{_CELL};{_FIELD}"><code>{field}</code></td>'
    if row.changed and row.part == "design" and row.field in TEXT_FIELDS:
        pieces = row.words
        if row.field == "separator":  # whitespace made visible, as the separator field shows it
            pieces = tuple(word_diff(escape_field(row.old or ""), escape_field(row.new or "")))
        old, new = diff_html(pieces, side="a"), diff_html(pieces, side="b")
        return f'<tr>{name}<td style="{_CELL}">{old}</td><td style="{_CELL}">{new}</td></tr>'
    if not row.changed:
        shown = f'<td style="{_CELL};color:#666">{_value_html(row.field, row.old)}</td>'
        return f"<tr>{name}{shown}{shown}</tr>"
    old = f'<td style="{_CELL}"><span style="{_WAS}">{_value_html(row.field, row.old)}</span></td>'
    new = f'<td style="{_CELL}"><span style="{_NOW}">{_value_html(row.field, row.new)}</span></td>'
    return f"<tr>{name}{old}{new}</tr>"


def shown_value(field: str, value: Any) -> str:
    """A field's value as a reader expects it: lists joined, None as a dash, the separator and
    stop strings with their whitespace made visible."""
    if value is None:
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(escape_field(str(v)) for v in value) if value else "(none)"
    if field == "separator":
        return escape_field(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value != "" else "(empty)"


def _value_html(field: str, value: Any) -> str:
    return f'<span style="white-space:pre-wrap">{html.escape(shown_value(field, value))}</span>'
