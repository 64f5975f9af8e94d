"""Widgets that several pages share: the prompt design and the generation settings, both kept
across page switches and able to be pre-filled from a stored experiment."""

from collections.abc import Sequence
from typing import Any

import streamlit as st

from core.datasets.data import Example
from core.errors import PromptLabError
from core.generation.settings import GenerationSettings
from core.prompting.design import PRESETS, PromptDesign
from core.prompting.escapes import escape_field, read_field
from ui.state import kept, key

SETTINGS_PRESETS: dict[str, dict[str, Any]] = {
    "Greedy (reproducible)": dict(do_sample=False, num_beams=1),
    "Focused sampling (T 0.7, top-p 0.9)": dict(
        do_sample=True, temperature=0.7, top_p=0.9, top_k=50, num_beams=1
    ),
    "Creative sampling (T 1.0, top-p 0.95)": dict(
        do_sample=True, temperature=1.0, top_p=0.95, top_k=0, num_beams=1
    ),
}
SELECTION_NAMES = {
    "first": "first K of the pool",
    "random": "seeded random draw",
    "ids": "by example id",
    "similar": "most similar to the input",
    "mmr": "similar but diverse (MMR)",
}
ORDER_NAMES = {
    "given": "as picked",
    "reversed": "reversed",
    "similar_last": "most similar next to the input",
}
FORMAT_NAMES = {
    "inline": "inline: one message",
    "turns": "turns: each shot a user and an assistant turn",
}
ROLE_NAMES = {"user": "in every user turn", "system": "once, as the system turn"}
GREEDY_NOTE = "Greedy decoding always takes the most likely token, so this has no effect."
SAMPLING_NOTE = "Beam search is for greedy decoding; sampling uses one beam."


def fill_design(page: str, design: PromptDesign) -> None:
    """Pre-fill the design widgets (call before they are drawn, or from a callback)."""
    values = dict(
        instruction=design.instruction,
        example_format=design.example_format,
        separator=escape_field(design.separator),
        shots=design.shots,
        selection=design.selection,
        selection_seed=design.selection_seed,
        shot_ids=list(design.shot_ids),
        mmr_lambda=design.mmr_lambda,
        shot_order=design.shot_order,
        shot_format=design.shot_format,
        instruction_role=design.instruction_role,
        fit_policy=design.fit_policy,
        use_chat_template=design.use_chat_template,
        system_prompt=design.system_prompt or "",
    )
    for name, value in values.items():
        st.session_state[key(page, name)] = value


def fill_settings(page: str, settings: GenerationSettings) -> None:
    for name, value in settings.to_dict().items():
        st.session_state[key(page, name)] = "\n".join(value) if name == "stop" else value


def design_inputs(page: str, pool: Sequence[Example]) -> PromptDesign:
    """The prompt-design widgets; raises PromptLabError when the design is not valid."""
    if key(page, "instruction") not in st.session_state:
        fill_design(page, PRESETS["instruction"])
    st.selectbox(
        "Preset",
        list(PRESETS),
        format_func=lambda name: f"{name.capitalize()} style",
        **kept(page, "preset"),
        on_change=lambda: fill_design(page, _preset_keeping_shots(page)),
        help="Fills the instruction, example format and separator; shots stay as they are.",
    )
    st.text_area("Instruction", **kept(page, "instruction"), height=80)
    st.text_area(
        "Example format",
        **kept(page, "example_format"),
        height=110,
        help="{input} is where the input goes and {output} where a shot's answer goes; "
        "the prompt for the input stops where its answer would start.",
    )
    shots = st.number_input(
        "Shots", 0, max(len(pool), 0), **kept(page, "shots"), help="0 = zero-shot, 1 = one-shot"
    )
    if not pool:
        st.caption(
            "This dataset has no pool split to draw shots from: zero-shot only (import it "
            "again saying which split values give the shots)."
        )
    selection = st.selectbox(
        "Shots picked",
        list(SELECTION_NAMES),
        format_func=SELECTION_NAMES.get,
        **kept(page, "selection"),
        disabled=shots == 0,
    )
    st.number_input(
        "Selection seed",
        0,
        2**31 - 1,
        **kept(page, "selection_seed"),
        disabled=shots == 0 or selection != "random",
        help="Only the seeded random draw uses it.",
    )
    st.multiselect(
        "Shot ids",
        [ex.id for ex in pool],
        **kept(page, "shot_ids"),
        disabled=shots == 0 or selection != "ids",
        help="As many ids as shots, in the order they should appear.",
    )
    st.slider(
        "MMR λ (1 = most similar, 0 = most diverse)",
        0.0,
        1.0,
        step=0.05,
        **kept(page, "mmr_lambda"),
        disabled=shots == 0 or selection != "mmr",
    )
    st.selectbox(
        "Shot order",
        list(ORDER_NAMES),
        format_func=ORDER_NAMES.get,
        **kept(page, "shot_order"),
        disabled=shots < 2,
    )
    shot_format = st.selectbox(
        "Shot format",
        list(FORMAT_NAMES),
        format_func=FORMAT_NAMES.get,
        **kept(page, "shot_format"),
        help="Chat models often answer a few-shot prompt better when each shot is its own "
        "exchange: a user turn with the shot's input and an assistant turn with its answer. "
        "Needs the model's chat template.",
    )
    st.selectbox(
        "Instruction",
        list(ROLE_NAMES),
        format_func=ROLE_NAMES.get,
        **kept(page, "instruction_role"),
        disabled=shot_format != "turns",
        help="With turns: repeat the instruction in each user turn, or say it once.",
    )
    with st.expander("Template, separator and fitting"):
        st.toggle("Use the model's chat template", **kept(page, "use_chat_template"))
        st.text_input("System prompt (empty: the template's own)", **kept(page, "system_prompt"))
        st.text_input(
            "Separator between parts (\\n a newline, \\t a tab, \\\\ a backslash)",
            **kept(page, "separator"),
        )
        st.selectbox(
            "When the prompt does not fit",
            ["drop_shots", "truncate_input", "refuse"],
            **kept(page, "fit_policy"),
        )
    return _design(page)


def current_design(page: str) -> PromptDesign:
    """The design `page`'s widgets hold now (PromptLabError if it is not valid)."""
    if key(page, "instruction") not in st.session_state:
        return PRESETS["instruction"]
    return _design(page)


def current_settings(page: str) -> GenerationSettings:
    """The settings `page`'s widgets hold now; the page's defaults before they were drawn, or
    while they hold a combination that is not valid."""
    if key(page, "max_new_tokens") not in st.session_state:
        return GenerationSettings(max_new_tokens=96)
    try:
        return _settings(page)
    except PromptLabError:
        return GenerationSettings(max_new_tokens=96)


def _design(page: str) -> PromptDesign:
    value = lambda name: st.session_state[key(page, name)]  # noqa: E731
    selection = value("selection")
    return PromptDesign(
        instruction=value("instruction"),
        example_format=value("example_format"),
        separator=read_field(value("separator")),
        shots=int(value("shots")),
        selection=selection,
        selection_seed=int(value("selection_seed")),
        shot_ids=tuple(value("shot_ids")) if selection == "ids" else (),
        mmr_lambda=float(value("mmr_lambda")),
        shot_order=value("shot_order"),
        shot_format=value("shot_format"),
        instruction_role=value("instruction_role"),
        fit_policy=value("fit_policy"),
        use_chat_template=bool(value("use_chat_template")),
        system_prompt=value("system_prompt").strip() or None,
    )


def _preset_keeping_shots(page: str) -> PromptDesign:
    chosen = PRESETS[st.session_state[key(page, "preset")]]
    return _design(page).with_(
        instruction=chosen.instruction,
        example_format=chosen.example_format,
        separator=chosen.separator,
    )


def settings_inputs(page: str) -> GenerationSettings:
    """The generation-settings widgets; controls the chosen mode ignores are disabled."""
    if key(page, "max_new_tokens") not in st.session_state:
        fill_settings(page, GenerationSettings(max_new_tokens=96))
    st.selectbox(
        "Settings preset",
        list(SETTINGS_PRESETS),
        **kept(page, "settings_preset"),
        on_change=lambda: _apply_settings_preset(page),
    )
    st.number_input("max_new_tokens", 1, 4096, **kept(page, "max_new_tokens"))
    sampling = st.toggle("Sample (off: greedy)", **kept(page, "do_sample"))
    greedy_help = None if sampling else GREEDY_NOTE
    st.slider(
        "temperature",
        0.05,
        2.0,
        **kept(page, "temperature"),
        disabled=not sampling,
        help=greedy_help or "Below 1 sharpens the distribution, above 1 flattens it.",
    )
    st.number_input(
        "top_k (0 = off)",
        0,
        10_000,
        **kept(page, "top_k"),
        disabled=not sampling,
        help=greedy_help,
    )
    st.slider(
        "top_p",
        0.01,
        1.0,
        **kept(page, "top_p"),
        disabled=not sampling,
        help=greedy_help or "Keeps the smallest set of tokens whose probability reaches p.",
    )
    st.number_input(
        "seed",
        0,
        2**31 - 1,
        **kept(page, "seed"),
        disabled=not sampling,
        help=greedy_help or "The same seed gives the same sample.",
    )
    if not sampling:
        st.caption(f"temperature, top_k, top_p and seed: {GREEDY_NOTE}")
    st.number_input(
        "repetition_penalty",
        0.5,
        3.0,
        step=0.05,
        **kept(page, "repetition_penalty"),
        help="1.0 = off",
    )
    with st.expander("More"):
        st.number_input(
            "num_beams",
            1,
            16,
            **kept(page, "num_beams"),
            disabled=sampling,
            help=SAMPLING_NOTE if sampling else "1 = greedy; more = beam search.",
        )
        st.number_input("no_repeat_ngram_size", 0, 20, **kept(page, "no_repeat_ngram_size"))
        st.number_input("min_new_tokens", 0, 4096, **kept(page, "min_new_tokens"))
        st.text_area("Stop strings (one per line)", **kept(page, "stop"), height=70)
    return _settings(page)


def _settings(page: str) -> GenerationSettings:
    value = lambda name: st.session_state[key(page, name)]  # noqa: E731
    sampling = bool(value("do_sample"))
    return GenerationSettings(
        max_new_tokens=int(value("max_new_tokens")),
        do_sample=sampling,
        temperature=float(value("temperature")),
        top_k=int(value("top_k")),
        top_p=float(value("top_p")),
        seed=int(value("seed")),
        repetition_penalty=float(value("repetition_penalty")),
        num_beams=1 if sampling else int(value("num_beams")),
        no_repeat_ngram_size=int(value("no_repeat_ngram_size")),
        min_new_tokens=int(value("min_new_tokens")),
        stop=tuple(line for line in value("stop").splitlines() if line),
    )


def _apply_settings_preset(page: str) -> None:
    for name, value in SETTINGS_PRESETS[st.session_state[key(page, "settings_preset")]].items():
        st.session_state[key(page, name)] = value
