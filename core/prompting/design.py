"""Prompt designs: an instruction, K worked examples (shots) and the input, rendered to the exact
text a model receives, with a token count per part and a fit to the context window."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

from core.datasets.data import Example
from core.errors import PromptLabError

Selection = Literal["first", "random", "ids", "similar", "mmr"]
ShotOrder = Literal["given", "reversed", "similar_last"]
FitPolicy = Literal["drop_shots", "truncate_input", "refuse"]
PartKind = Literal["instruction", "shot", "input", "template"]
ShotFormat = Literal["inline", "turns"]
InstructionRole = Literal["user", "system"]
# Texts to unit vectors, one row each (core.prompting.embeddings.Embedder.embed_cached).
Embed = Callable[[Sequence[str]], np.ndarray]
SELECTIONS = ("first", "random", "ids", "similar", "mmr")
SHOT_ORDERS = ("given", "reversed", "similar_last")
SHOT_FORMATS = ("inline", "turns")
INSTRUCTION_ROLES = ("user", "system")

INPUT, OUTPUT = "{input}", "{output}"


@dataclass(frozen=True)
class PromptDesign:
    """How a prompt is put together; validated on creation."""

    instruction: str = ""
    example_format: str = "{input}\n{output}"
    separator: str = "\n\n"
    shots: int = 0  # 0 = zero-shot, 1 = one-shot, K > 1 = few-shot
    selection: Selection = "first"
    selection_seed: int = 0  # for selection="random": the pool is shuffled once with it
    shot_ids: tuple[str, ...] = ()  # for selection="ids", in the order given
    # For selection="mmr": 1 is pure similarity, 0 pure diversity. 0.5 weighs them equally, the
    # usual default (as in LangChain's max_marginal_relevance_search).
    mmr_lambda: float = 0.5
    # "given": as selected (pool order, drawn order, or most similar first); "reversed";
    # "similar_last": least similar first, so the most similar shot sits next to the input.
    shot_order: ShotOrder = "given"
    fit_policy: FitPolicy = "drop_shots"
    use_chat_template: bool = True  # chat models answer far better through their template
    system_prompt: str | None = None  # None keeps the template's own default, if it has one
    # "inline": the instruction, shots and input in one user message (or one text);
    # "turns": each shot a user turn (its input) and an assistant turn (its output), then the
    # input as the last user turn; needs a chat template.
    shot_format: ShotFormat = "inline"
    # With turns: the instruction heads every user turn ("user") or is said once, as the
    # system turn ("system", after the system prompt if there is one).
    instruction_role: InstructionRole = "user"

    def __post_init__(self) -> None:
        fmt = self.example_format
        if INPUT not in fmt:
            raise PromptLabError("The example format needs an {input} placeholder.")
        if OUTPUT in fmt and fmt.index(OUTPUT) < fmt.index(INPUT):
            raise PromptLabError("In the example format, {output} must come after {input}.")
        if not isinstance(self.shots, int) or self.shots < 0:
            raise PromptLabError(f"shots must be a whole number ≥ 0; got {self.shots!r}.")
        if self.shots > 0 and OUTPUT not in fmt:
            raise PromptLabError(
                "The example format has no {output} placeholder, "
                "so shots cannot show their answers."
            )
        if self.selection not in SELECTIONS:
            raise PromptLabError(
                "selection must be first, random or ids, or by similarity to the input: "
                f"similar or mmr; got {self.selection!r}."
            )
        lam = self.mmr_lambda
        if isinstance(lam, bool) or not isinstance(lam, int | float) or not 0 <= lam <= 1:
            raise PromptLabError(f"mmr_lambda must be a number in [0, 1]; got {lam!r}.")
        object.__setattr__(self, "mmr_lambda", float(lam))  # 1 and 1.0 are one design
        if self.shot_order not in SHOT_ORDERS:
            raise PromptLabError(
                f"shot_order must be given, reversed or similar_last; got {self.shot_order!r}."
            )
        if self.selection == "ids" and len(self.shot_ids) != self.shots:
            raise PromptLabError(
                f"selection 'ids' names {len(self.shot_ids)} example(s) but shots is {self.shots}."
            )
        if self.shot_format not in SHOT_FORMATS:
            raise PromptLabError(f"shot_format must be inline or turns; got {self.shot_format!r}.")
        if self.instruction_role not in INSTRUCTION_ROLES:
            raise PromptLabError(
                f"instruction_role must be user or system; got {self.instruction_role!r}."
            )
        if self.fit_policy not in ("drop_shots", "truncate_input", "refuse"):
            raise PromptLabError(
                f"fit_policy must be drop_shots, truncate_input or refuse; got {self.fit_policy!r}."
            )

    def with_(self, **changes: Any) -> PromptDesign:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: every field, JSON-ready."""
        values = asdict(self)
        values["shot_ids"] = list(self.shot_ids)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PromptDesign:
        """A design from its stored form; fields stored before they existed take their defaults.
        Unknown fields are refused by name, so a misspelt one in a file is not silently lost."""
        if not isinstance(values, dict):
            raise PromptLabError("A prompt design must be a mapping of its fields.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PromptLabError(
                f"Unknown design field(s): {', '.join(map(str, unknown))}; "
                f"known: {', '.join(sorted(known))}."
            )
        values = dict(values)
        if "shot_ids" in values:
            ids = values["shot_ids"]
            if not isinstance(ids, list | tuple):
                raise PromptLabError("shot_ids must be a list of example ids.")
            values["shot_ids"] = tuple(str(i) for i in ids)
        try:
            return cls(**values)
        except TypeError as exc:  # a wrong type where a comparison or len() needs another
            raise PromptLabError(f"A design field has the wrong type: {exc}.") from exc

    @property
    def needs_embeddings(self) -> bool:
        """Whether picking or ordering the shots compares them with the input."""
        by_similarity = self.selection in ("similar", "mmr") or self.shot_order == "similar_last"
        return self.shots > 0 and by_similarity


PRESETS: dict[str, PromptDesign] = {
    # The classic dialogue-summarisation lab's zero-shot instruction prompt.
    "instruction": PromptDesign(
        instruction="Summarize the following conversation.",
        example_format="{input}\n\nSummary:\n{output}",
        separator="\n\n",
    ),
    # The same lab's FLAN-style template; its few-shot prompts separate shots by blank lines.
    "flan": PromptDesign(
        example_format="Dialogue:\n\n{input}\n\nWhat was going on?\n{output}",
        separator="\n\n\n",
    ),
}


@dataclass(frozen=True)
class PromptPart:
    kind: PartKind
    text: str
    example_id: str | None = None
    tokens: int | None = None


Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Turn:
    """One chat message: its parts, after `prefix`, text of the message that is no part of the
    design (a system prompt said before the instruction)."""

    role: Role
    parts: tuple[PromptPart, ...]
    prefix: str = ""

    @property
    def content(self) -> str:
        return self.prefix + "".join(p.text for p in self.parts)


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt as designed (`text`) and exactly as sent (`sent_text`), with its accounting."""

    example_id: str | None
    text: str
    sent_text: str
    parts: tuple[PromptPart, ...]
    shot_ids: tuple[str, ...]
    add_special_tokens: bool  # False once a chat template has put the special tokens in
    prompt_tokens: int | None = None
    budget: int | None = None  # prompt tokens allowed: context window minus room for the answer
    context_window: int | None = None
    dropped_shot_ids: tuple[str, ...] = ()
    truncated_input_tokens: int = 0
    notes: tuple[str, ...] = field(default=())
    # The chat messages the prompt is made of (see build_turns); empty: one user message, `text`.
    turns: tuple[Turn, ...] = ()
    # Where each part (all but template parts, in order) lies in sent_text; None where the
    # template changed its text so that it cannot be found, and its tokens count as template.
    spans: tuple[tuple[int, int] | None, ...] = ()

    @property
    def messages(self) -> list[dict[str, str]]:
        """The messages for a chat template or a chat API, system turn included."""
        if not self.turns:
            return [{"role": "user", "content": self.text}]
        return [{"role": t.role, "content": t.content} for t in self.turns]

    def tokens_by_kind(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for part in self.parts:
            totals[part.kind] = totals.get(part.kind, 0) + (part.tokens or 0)
        return totals


def render_example(example_format: str, input_text: str, output: str | None = None) -> str:
    """One example in the format; with no output, the text stops where the answer would start.

    Plain replacement, not str.format, so braces in dialogue text are left alone.
    """
    head, has_output, tail = example_format.partition(OUTPUT)
    head = head.replace(INPUT, input_text)
    if output is None or not has_output:
        return head
    return head + output + tail.replace(INPUT, input_text)


def select_shots(
    design: PromptDesign,
    pool: Sequence[Example],
    target: Example,
    *,
    embed: Embed | None = None,
) -> list[Example]:
    """The K shots for `target`, in the design's order; an example never serves as a shot for
    itself. `embed` is used only when the design picks or orders shots by similarity; without
    it, the process's shared embedder is."""
    if design.shots == 0:
        return []

    def is_self(ex: Example) -> bool:
        return ex.id == target.id or ex.input == target.input

    if design.selection == "ids":
        by_id = {ex.id: ex for ex in pool}
        missing = [i for i in design.shot_ids if i not in by_id]
        if missing:
            raise PromptLabError(f"Shot example(s) not in the pool: {', '.join(missing)}.")
        chosen = [by_id[i] for i in design.shot_ids if not is_self(by_id[i])]
        return _in_order(design, chosen, target, embed)
    ordered = list(pool)
    if design.selection == "random":
        # One shuffle for the whole run, so every input sees the same shots (bar itself).
        random.Random(design.selection_seed).shuffle(ordered)
    candidates = [ex for ex in ordered if not is_self(ex) and ex.reference is not None]
    if len(candidates) < design.shots:
        raise PromptLabError(
            f"{design.shots} shots were asked for, but the pool has only {len(candidates)} "
            "usable example(s) with a reference."
        )
    if design.selection in ("similar", "mmr"):
        lam = 1.0 if design.selection == "similar" else design.mmr_lambda
        vectors = _embed_fn(embed)([target.input, *(ex.input for ex in candidates)])
        picked = mmr(vectors[0], vectors[1:], design.shots, lam)
        return _in_order(design, [candidates[i] for i in picked], target, embed)
    return _in_order(design, candidates[: design.shots], target, embed)


def mmr(query: np.ndarray, candidates: np.ndarray, k: int, lam: float) -> list[int]:
    """Greedy maximal marginal relevance over unit vectors: the most similar candidate first,
    then each step the best lam·sim(candidate, query) − (1 − lam)·max sim(candidate, chosen).
    With lam = 1 this is the k most similar, most similar first; ties go to the earlier one."""
    relevance = candidates @ query
    redundancy = np.full(len(candidates), -np.inf)
    chosen: list[int] = []
    for _ in range(min(k, len(candidates))):
        # The first pick has nothing to be redundant with (as in LangChain's implementation).
        score = relevance if not chosen else lam * relevance - (1 - lam) * redundancy
        score = np.where(np.isin(np.arange(len(candidates)), chosen), -np.inf, score)
        best = int(np.argmax(score))
        chosen.append(best)
        redundancy = np.maximum(redundancy, candidates @ candidates[best])
    return chosen


def _in_order(
    design: PromptDesign, shots: list[Example], target: Example, embed: Embed | None
) -> list[Example]:
    if design.shot_order == "reversed":
        return shots[::-1]
    if design.shot_order == "similar_last" and len(shots) > 1:
        vectors = _embed_fn(embed)([target.input, *(ex.input for ex in shots)])
        similarity = vectors[1:] @ vectors[0]
        # Stable: equally similar shots keep their selected order.
        return [shots[i] for i in np.argsort(similarity, kind="stable")]
    return shots


def _embed_fn(embed: Embed | None) -> Embed:
    if embed is not None:
        return embed
    from core.prompting.embeddings import get_embedder  # loads torch and a model: only when needed

    return get_embedder().embed_cached


def build_turns(design: PromptDesign, shots: Sequence[Example], input_text: str) -> list[Turn]:
    """The prompt as chat messages. Inline: the system prompt, if any, then one user message of
    every part. Turns: the system turn (the system prompt, then the instruction when it is said
    once), then per shot a user turn (the instruction unless said once, then the shot's input in
    the format, up to where its answer starts) and an assistant turn (the answer), then the input
    as the last user turn. A turn's text is stripped of the whitespace that closes it."""
    system = design.system_prompt or ""
    if design.shot_format == "inline":
        head = [Turn("system", (), system)] if system else []
        return [*head, Turn("user", tuple(build_parts(design, shots, input_text)))]
    turns: list[Turn] = []
    once = design.instruction_role == "system" and bool(design.instruction)
    if once:
        prefix = system + "\n\n" if system else ""
        turns.append(Turn("system", (PromptPart("instruction", design.instruction),), prefix))
    elif system:
        turns.append(Turn("system", (), system))

    def asking(kind: PartKind, text: str, example_id: str | None = None) -> Turn:
        instruction = []
        if design.instruction and not once:
            instruction = [PromptPart("instruction", design.instruction + design.separator)]
        return Turn("user", (*instruction, PromptPart(kind, text.rstrip(), example_id)))

    for shot in shots:
        asked = render_example(design.example_format, shot.input)
        whole = render_example(design.example_format, shot.input, shot.reference or "")
        turns.append(asking("shot", asked, shot.id))
        answer = whole[len(asked) :].strip()
        turns.append(Turn("assistant", (PromptPart("shot", answer, shot.id),)))
    turns.append(asking("input", render_example(design.example_format, input_text)))
    return turns


def transcript(turns: Sequence[Turn]) -> str:
    """Turns as one readable text, each headed by its role (what a prompt in turns "is" before
    a chat template renders it)."""
    return "\n\n".join(f"[{t.role}]\n{t.content}" for t in turns)


def build_parts(
    design: PromptDesign, shots: Sequence[Example], input_text: str
) -> list[PromptPart]:
    """The inline prompt's parts as text; joined, they are the prompt (separators end the part
    before)."""
    parts: list[PromptPart] = []
    if design.instruction:
        parts.append(PromptPart("instruction", design.instruction + design.separator))
    for shot in shots:
        text = render_example(design.example_format, shot.input, shot.reference or "")
        parts.append(PromptPart("shot", text + design.separator, shot.id))
    parts.append(PromptPart("input", render_example(design.example_format, input_text)))
    return parts
