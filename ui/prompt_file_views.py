"""The Prompts page's prompt files: a version or a whole prompt downloaded as YAML or JSON, and
a file imported, with what was added and what was skipped as identical."""

import functools

import streamlit as st

from core.errors import PromptLabError
from core.library import files
from core.library.importing import ImportReport, import_prompt
from core.library.versions import PromptVersion
from storage.db import database_url
from ui import identity
from ui.prompt_views import done
from ui.state import kept

PAGE = "prompts"
MIME = {"yaml": "application/yaml", "json": "application/json"}


def export_buttons(version: PromptVersion) -> None:
    """Downloads of `version` alone and of its whole prompt; written when clicked."""
    kind = st.radio(
        "File format",
        ["yaml", "json"],
        format_func=str.upper,
        horizontal=True,
        **kept(PAGE, "format"),
    )
    url = database_url()
    one, whole = st.columns(2)
    for column, ref, file_name, label in (
        (one, version.ref, f"{version.name}@{version.number}.{kind}", f"Download {version.ref}"),
        (whole, version.name, f"{version.name}.{kind}", f"Download all of {version.name}"),
    ):
        column.download_button(
            label,
            functools.partial(file_text, ref, kind, url),
            file_name=file_name,
            mime=MIME[kind],
            on_click="ignore",
            key=f"prompts.download.{file_name}",
        )


def file_text(ref: str, kind: str, url: str) -> bytes:
    # Runs on Streamlit's download thread, outside any script run: no st.* calls in here.
    return files.dumps(files.export_data(ref, db_url=url), kind).encode("utf-8")


def import_step() -> None:
    """A prompt file to import: what it holds, then Import, which reports what it added."""
    st.subheader("Import a prompt file")
    upload = st.file_uploader("A prompt file (YAML or JSON)", type=["yaml", "yml", "json"])
    if upload is None:
        return
    parsed = read_upload(upload.name, upload.getvalue())
    labels = ", ".join(f"{label} → {n}" for label, n in parsed.labels.items())
    st.caption(
        f"{parsed.name}: {len(parsed.versions)} version(s)"
        + (f"; labels {labels}" if labels else "")
    )
    if st.button("Import", type="primary", key="prompts.import"):
        report = import_prompt(parsed, actor=identity.actor())
        done(import_summary(report), report.name)


def read_upload(file_name: str, raw: bytes) -> files.PromptFile:
    """An uploaded prompt file checked whole, refused with a sentence naming it."""
    kind = files.kind_of(file_name)
    if len(raw) > files.MAX_FILE_BYTES:
        raise PromptLabError(
            f"'{file_name}' is {len(raw):,} bytes; a prompt file may have at most "
            f"{files.MAX_FILE_BYTES:,}."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptLabError(f"'{file_name}' is not UTF-8 text (byte {exc.start}).") from exc
    try:
        return files.loads(text, kind)
    except PromptLabError as exc:
        raise PromptLabError(f"{file_name}: {exc}") from exc


def import_summary(report: ImportReport) -> str:
    """What an import did, in sentences: versions added, skipped as identical, labels set."""
    name = report.name
    parts = [f"Imported {name}" + (" (a new prompt)" if report.created else "") + "."]
    if report.saved:
        added = ", ".join(f"{number} as {name}@{new}" for number, new in report.saved)
        parts.append(f"Added file version(s) {added}.")
    if report.skipped:
        same = ", ".join(f"{number} (identical to {name}@{old})" for number, old in report.skipped)
        parts.append(f"Skipped file version(s) {same}.")
    if report.labels:
        parts.append("Labels: " + ", ".join(f"{k} → {v}" for k, v in report.labels.items()) + ".")
    parts += [f"Note: {note}." for note in report.notes]
    return " ".join(parts)
