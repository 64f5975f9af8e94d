"""Which designs a search tries, in order: the base and the user's instructions, shot rules
(similar, MMR, random subsets) for each number of shots (the first, inline and as chat turns),
greedy forward selection of shots by their marginal gain, then order and format, then random
designs until the budget is spent.
Each step builds on the best design scored so far, so the order is a function of the seed and
the scores alone: a resumed search proposes exactly what an uninterrupted one would."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from core.prompting.design import PromptDesign

GREEDY_SAMPLE = 4  # pool examples tried as the next shot at each step of forward selection
MAX_REPEATS = 200  # random proposals in a row that were all tried before: the space is spent

# The selection-set score of a design already proposed (None: it failed on an example), or
# of the best so far; higher is better (the search flips the sign of lower-is-better metrics).
Score = Callable[[PromptDesign], float | None]


@dataclass(frozen=True)
class Proposal:
    design: PromptDesign
    how: str  # how the search came to it, for the candidate's label and the library message


def key(design: PromptDesign) -> str:
    """Two designs with the same key are the same candidate."""
    return repr(sorted(design.to_dict().items()))


def proposals(
    base: PromptDesign,
    pool: Sequence[str],
    *,
    score: Score,
    seed: int,
    instructions: Sequence[str] = (),
    max_shots: int = 3,
) -> Iterator[Proposal]:
    """Designs to try, endless; the caller scores each one before asking for the next (through
    `score`) and stops when its budget is spent. Repeats are possible: the caller skips them."""
    rng = random.Random(seed)
    tried: list[PromptDesign] = []

    def best() -> PromptDesign:
        scored = [(score(d), -i, d) for i, d in enumerate(tried) if score(d) is not None]
        return max(scored, key=lambda t: t[:2])[2] if scored else base

    def offer(design: PromptDesign, how: str) -> Iterator[Proposal]:
        tried.append(design)
        yield Proposal(design, how)

    yield from offer(base, "the base design")
    for number, text in enumerate(instructions, start=1):
        yield from offer(base.with_(instruction=text), f"instruction variant {number}")
    turns_ok = base.use_chat_template
    most = min(max_shots, len(pool))
    for shots in range(1, most + 1):
        for rule in ("similar", "mmr", "random"):
            frame = _frame(best())
            draw = rng.randrange(2**31)
            design = frame.with_(shots=shots, selection=rule, selection_seed=draw, shot_ids=())
            yield from offer(design, _rule_how(rule, shots, draw))
            if shots == 1 and rule == "similar" and turns_ok:
                # For a chat model the shot format matters as much as the shots (shots as
                # turns, or inline): decided here, so that the other rules build on it.
                flipped = _flip(design.shot_format)
                yield from offer(
                    design.with_(shot_format=flipped),
                    f"{_rule_how(rule, shots, draw)}, as {flipped}",
                )
    yield from _greedy(best, offer, pool, rng, most, score)
    frame = best()
    if frame.shots > 1:
        yield from offer(frame.with_(shot_order="reversed"), "the best, shots in reverse order")
        yield from offer(frame.with_(shot_order="similar_last"), "the best, most similar shot last")
    if turns_ok:
        flipped = _flip(best().shot_format)
        yield from offer(best().with_(shot_format=flipped), f"the best, shots as {flipped}")
        now = best()
        if now.shot_format == "turns" and now.instruction:
            yield from offer(
                now.with_(instruction_role="system"), "the best, instruction said once (system)"
            )
    yield from _random(base, pool, rng, instructions, most, turns_ok, offer)


def _frame(design: PromptDesign) -> PromptDesign:
    """A design's instruction, format and template, to put other shots into."""
    return design.with_(shots=0, selection="first", shot_ids=(), shot_order="given")


def _flip(shot_format: str) -> str:
    return "turns" if shot_format == "inline" else "inline"


def _rule_how(rule: str, shots: int, draw: int) -> str:
    what = {"similar": "the most similar", "mmr": "similar but diverse (MMR)"}
    name = what.get(rule, f"a random subset (seed {draw})")
    return f"{shots} shot{'s' if shots > 1 else ''}: {name}"


def _greedy(best, offer, pool, rng, most, score) -> Iterator[Proposal]:
    """Forward selection: from the best design's frame, add the shot (of a sample of the pool)
    that raises the score most, while one does."""
    frame = _frame(best())
    chosen: list[str] = []
    start = frame
    if score(start) is None:  # the frame zero-shot has not been scored yet
        yield from offer(start, "greedy: the start, no shots")
    current = score(start)
    while len(chosen) < most:
        left = [i for i in pool if i not in chosen]
        sample = rng.sample(left, min(GREEDY_SAMPLE, len(left)))
        steps = []
        for example_id in sample:
            ids = (*chosen, example_id)
            design = frame.with_(shots=len(ids), selection="ids", shot_ids=ids)
            yield from offer(design, f"greedy: {' + '.join(ids)}")
            steps.append((score(design), example_id))
        gains = [(s, i) for s, i in steps if s is not None]
        if not gains:
            return
        top, example_id = max(gains, key=lambda t: t[0])
        if current is not None and top <= current:
            return
        chosen.append(example_id)
        current = top


def _random(base, pool, rng, instructions, most, turns_ok, offer) -> Iterator[Proposal]:
    """Random designs from the whole space, for whatever budget is left."""
    texts = [base.instruction, *instructions]
    formats = ("inline", "turns") if turns_ok else (base.shot_format,)
    seen: set[str] = set()
    repeats = 0
    while repeats < MAX_REPEATS:
        shots = rng.randint(0, most)
        ids = tuple(rng.sample(list(pool), shots))
        design = base.with_(
            instruction=rng.choice(texts),
            shots=shots,
            selection="ids" if shots else "first",
            shot_ids=ids,
            shot_order="given",
            shot_format=rng.choice(formats) if shots else base.shot_format,
        )
        if key(design) in seen:
            repeats += 1
            continue
        repeats = 0
        seen.add(key(design))
        yield from offer(design, f"random: {shots} shot{'s' if shots != 1 else ''}")
