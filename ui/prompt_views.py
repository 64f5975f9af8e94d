"""The Prompts page's sections: the library's prompts, one prompt's versions, its labels and tags,
the designs experiments ran unnamed (the forms other pages embed are in prompt_forms)."""

from datetime import datetime

import pandas as pd
import streamlit as st

from core.library import versions as library
from core.library.versions import PromptSummary, PromptVersion
from ui import identity
from ui.feedback import plain, shown_errors
from ui.state import kept, key

PAGE = "prompts"
NEW = "(a new prompt)"
NOTICE = "prompts.notice"  # a success message that must outlive the rerun after an action
SELECT = "prompts.select"  # a prompt to show next (just saved or imported)


def show_notice() -> None:
    """The success message an action left for the rerun it caused, shown once."""
    if notice := st.session_state.pop(NOTICE, None):
        st.success(plain(notice))


def done(notice: str, name: str) -> None:
    """After a change: say what was done, show `name`, and draw the page again."""
    st.session_state[NOTICE] = notice
    st.session_state[SELECT] = name
    st.rerun()


def prompt_list() -> list[PromptSummary]:
    """The table of named prompts, with their latest version's message, author and time."""
    st.subheader("Saved prompts")
    summaries = library.list_prompts()
    if not summaries:
        st.info(
            "No prompts yet. Save a design from the Playground (Save as a version), import a "
            "prompt file below, or name a design that experiments ran."
        )
        return []
    rows = []
    for summary in summaries:
        rows.append(
            {
                "name": summary.name,
                "versions": summary.versions,
                "labels": labels_text(summary.labels),
                "latest message": summary.latest_message,
                "by": summary.latest_by or "",
                "saved": when(summary.updated_at),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    return summaries


def chosen_prompt(summaries: list[PromptSummary]) -> str | None:
    names = [s.name for s in summaries]
    state = key(PAGE, "chosen")
    if (pending := st.session_state.pop(SELECT, None)) in names:
        st.session_state[state] = pending
    elif st.session_state.get(state) not in names:  # deleted, here or in another session
        st.session_state.pop(state, None)
    return st.selectbox("Prompt", names, **kept(PAGE, "chosen")) if names else None


def version_list(name: str) -> list[PromptVersion]:
    """The versions of `name`, newest first."""
    st.subheader(f"Versions of {name}")
    versions = library.history(name)[::-1]
    frame = pd.DataFrame(
        {
            "version": [v.number for v in versions],
            "message": [v.message for v in versions],
            "by": [v.created_by or "" for v in versions],
            "saved": [when(v.created_at) for v in versions],
            "labels": [", ".join(v.labels) for v in versions],
            "tags": [", ".join(v.tags) for v in versions],
        }
    )
    st.dataframe(frame, hide_index=True)
    return versions


def chosen_version(name: str, versions: list[PromptVersion]) -> PromptVersion:
    """The version the actions below act on (the latest unless another is picked)."""
    st.subheader("Labels, tags and files")
    state = key(PAGE, f"version.{name}")
    if st.session_state.get(state) not in [v.number for v in versions]:
        st.session_state.pop(state, None)
    number = st.selectbox(
        "Version",
        [v.number for v in versions],
        format_func=lambda n: with_labels(next(v for v in versions if v.number == n)),
        **kept(PAGE, f"version.{name}"),
    )
    return next(v for v in versions if v.number == number)


def label_and_tag(version: PromptVersion) -> None:
    """Move a label to `version` or remove it; add a tag to it or take one off. Only the
    prompt's creator (or an admin) may: a refusal is the library's sentence."""
    labels, tags = st.columns(2)
    with labels:
        label = st.text_input("Label", placeholder="production", key="prompts.label").strip()
        move, remove = st.columns(2)
        if move.button(f"Move label to {version.ref}", key="prompts.move-label"):
            with shown_errors():
                moved, before = library.move_label(version.ref, label, actor=identity.actor())
                was = f" (it was on {version.name}@{before})" if before else ""
                done(f"{label} now points at {moved.ref}{was}.", version.name)
        if remove.button("Remove label", key="prompts.remove-label"):
            with shown_errors():
                library.remove_label(version.name, label, actor=identity.actor())
                done(f"Removed the label {label} from {version.name}.", version.name)
    with tags:
        tag = st.text_input("Tag", placeholder="reviewed", key="prompts.tag")
        add, take = st.columns(2)
        for column, removing, text in ((add, False, "Add tag"), (take, True, "Remove tag")):
            if column.button(text, key=f"prompts.{text.lower().replace(' ', '-')}"):
                with shown_errors():
                    tagged = library.tag(version.ref, tag, remove=removing, actor=identity.actor())
                    did = f"Took the tag {tag.strip()} off" if removing else "Tagged"
                    done(
                        f"{did} {tagged.ref}" + ("." if removing else f" {tag.strip()}."),
                        tagged.name,
                    )


def unnamed_versions(names: list[str]) -> None:
    """Designs experiments ran without starting from a named version, each of which can be
    saved as a version of a prompt."""
    st.subheader("Unnamed versions")
    st.caption(
        "Designs that experiments ran without starting from a named prompt. Save one as a "
        "version of a prompt to give it a name (the design only: experiments of one design "
        "may have run with different settings)."
    )
    found = library.unnamed_designs()
    if not found:
        st.caption("None: every experiment so far ran a named version, or there are none.")
        return
    frame = pd.DataFrame(
        {
            "design": [f"#{i}" for i in range(1, len(found) + 1)],
            "instruction": [
                u.design.instruction.splitlines()[0][:100] if u.design.instruction else ""
                for u in found
            ],
            "shots": [u.design.shots for u in found],
            "experiments": [", ".join(str(i) for i in u.experiment_ids) for u in found],
            "last run": [when(u.last_used) for u in found],
        }
    )
    st.dataframe(frame, hide_index=True)
    picked = st.selectbox(
        "Design to name",
        range(len(found)),
        format_func=lambda i: f"#{i + 1}",
        key="prompts.unnamed",
    )
    name = prompt_name_input(f"{PAGE}.unnamed", names)
    message = st.text_input("Message", key="prompts.unnamed.message")
    if st.button("Save as a version", key="prompts.unnamed.save"):
        saved = library.save_version(
            name, found[picked].design, None, message, actor=identity.actor()
        )
        done(f"Saved {saved.ref}.", saved.name)


def prompt_name_input(prefix: str, names: list[str]) -> str:
    """A prompt picked from `names`, or a new one's name typed in."""
    state = f"{prefix}.pick"
    if (pending := st.session_state.pop(f"{prefix}.saved", None)) in names:
        st.session_state[state] = pending  # the prompt just saved to, picked for the next save
    elif st.session_state.get(state) not in [NEW, *names]:
        st.session_state.pop(state, None)
    picked = st.selectbox("Prompt name", [NEW, *names], key=state)
    if picked != NEW:
        return picked
    return st.text_input("New prompt name", placeholder="summarise", key=f"{prefix}.new").strip()


def with_labels(version: PromptVersion) -> str:
    return f"{version.ref} ({', '.join(version.labels)})" if version.labels else version.ref


def labels_text(labels: dict[str, int]) -> str:
    return ", ".join(f"{label} → {number}" for label, number in labels.items())


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
