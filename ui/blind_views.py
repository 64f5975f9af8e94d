"""The blind A/B mode of the Compare page: two experiments' outputs for one example at a time,
unnamed until the rater chooses, in the rater's own random order."""

import functools
import itertools

import streamlit as st

from core.evaluation import judgements
from core.evaluation.compare import Variant
from storage import queries
from storage.db import session_scope
from storage.judgement_queries import PairExample, Preference
from ui.feedback import plain
from ui.identity import actor
from ui.judgement_views import PAGE, said, show_said
from ui.state import key
from ui.tables import Key

# Buttons by screen side: what they mean for experiment a or b depends on who is shown left.
SIDES = {
    "left": "Output 1 is better",
    "right": "Output 2 is better",
    "tie": "Tie",
    "both_bad": "Both bad",
}


def blind_mode(variants: list[Variant], stored: Key) -> None:
    """Two variants' outputs for one example at a time, sides and examples in the rater's own
    random order, names hidden until the choice; resumed where the rater stopped."""
    with st.container(key="blind-mode"):
        _blind(variants, stored)


def _blind(variants: list[Variant], stored: Key) -> None:
    st.subheader("Blind A/B")
    st.caption(
        "Two outputs for one example, in random order and without their names; each is named "
        "once you choose. Your order is your own, so you can stop and come back to it."
    )
    pair = _pick_pair(variants)
    rater = actor().name
    with session_scope(stored[0]) as session:
        examples = {
            e.key: e
            for e in queries.pair_examples(
                session=session, experiment_a=pair[0], experiment_b=pair[1]
            )
        }
        done = {
            c.example_key: c for c in queries.choices_of(session=session, pair=pair, rater=rater)
        }
    if not examples:
        st.info("These two experiments have no example that both have an output for.")
        return
    order = judgements.blind_order(examples, rater, pair)
    judged = sum(1 for k, _ in order if k in done)
    st.progress(judged / len(order), text=f"{judged} of {len(order)} judged")
    show_said("blind")
    names = {v.id: v.name for v in variants}
    revealed = st.session_state.get(_revealed(pair))
    if revealed in done and revealed in examples:
        _reveal(examples[revealed], done[revealed], pair, names)
        return
    waiting = [(k, left) for k, left in order if k not in done]
    if not waiting:
        _all_judged(stored, pair, names, len(order))
        return
    example_key, left = waiting[0]
    _judge(examples[example_key], left, pair, rater, stored[0])


def _pick_pair(variants: list[Variant]) -> tuple[int, int]:
    """The two experiments to judge: the only two, or a pair named by the order they were
    picked in (never by their names, which would say which is which)."""
    if len(variants) == 2:
        return _sorted_pair(variants[0].id, variants[1].id)
    position = {v.id: i for i, v in enumerate(variants, start=1)}
    options = [f"{a.id}-{b.id}" for a, b in itertools.combinations(variants, 2)]
    widget = key(PAGE, "blind.pair")
    if st.session_state.get(widget) not in options:
        st.session_state.pop(widget, None)

    def words(option: str) -> str:
        a, b = (int(i) for i in option.split("-"))
        return f"The {_ordinal(position[a])} and {_ordinal(position[b])} experiments picked"

    chosen = st.selectbox(
        "Pair to judge", options, format_func=words, key=widget, persist_state="session"
    )
    a, b = (int(i) for i in (chosen or options[0]).split("-"))
    return _sorted_pair(a, b)


def _judge(example: PairExample, left: int, pair: tuple[int, int], rater: str, url: str):
    """One example with its two outputs, named only Output 1 and Output 2, and the choices."""
    outputs = {pair[0]: example.output_a, pair[1]: example.output_b}
    right = pair[1] if left == pair[0] else pair[0]
    with st.container(border=True, key="blind-ab"):
        st.caption(f"Example {example.key}")
        with st.expander("Input", expanded=True):
            st.text(example.input)
        st.caption("Reference")
        st.text(example.reference)
        for column, title, shown in zip(
            st.columns(2), ("Output 1", "Output 2"), (left, right), strict=True
        ):
            column.markdown(f"**{title}**")
            column.text(outputs[shown])
        for column, (side, label) in zip(st.columns(len(SIDES)), SIDES.items(), strict=True):
            choose = functools.partial(_choose, url, pair, example.key, left, side, rater)
            column.button(
                label,
                key=f"blind.{pair[0]}-{pair[1]}.{example.key}.{side}",
                on_click=said("blind", choose),
                type="primary" if side in ("left", "right") else "secondary",
                width="stretch",
            )


def _choose(url: str, pair: tuple[int, int], example_key: str, left: int, side: str, rater: str):
    a_left = left == pair[0]
    choice = {"left": "a" if a_left else "b", "right": "b" if a_left else "a"}.get(side, side)
    with session_scope(url) as session:
        queries.choose(
            session=session,
            experiment_a=pair[0],
            experiment_b=pair[1],
            example_key=example_key,
            rater=rater,
            choice=choice,
            shown_left=left,
        )
    st.session_state[_revealed(pair)] = example_key


def _reveal(example: PairExample, chosen: Preference, pair: tuple[int, int], names):
    """The example just judged, its outputs now named, and Next."""
    left = chosen.shown_left
    right = pair[1] if left == pair[0] else pair[0]
    picked = {
        "tie": "a tie",
        "both_bad": "both bad",
    }.get(chosen.choice) or f"{names.get(chosen.winner, chosen.winner)} is better"
    with st.container(border=True, key="blind-ab-revealed"):
        st.caption(f"Example {example.key}")
        st.success(
            plain(
                f"Output 1 was {names.get(left, left)}; Output 2 was {names.get(right, right)}. "
                f"You chose: {picked}."
            )
        )
        outputs = {pair[0]: example.output_a, pair[1]: example.output_b}
        for column, number, shown in zip(st.columns(2), (1, 2), (left, right), strict=True):
            column.markdown(plain(f"Output {number}: {names.get(shown, shown)}"))
            column.text(outputs[shown])
        st.button("Next", type="primary", key="blind.next", on_click=_forget_revealed, args=(pair,))


def _all_judged(stored: Key, pair: tuple[int, int], names: dict, n: int) -> None:
    st.success(f"You have judged all {n} examples of this pair.")
    with session_scope(stored[0]) as session:
        everyone = queries.choices_of(session=session, pair=pair)
    found = judgements.win_rate(
        [c.choice for c in everyone], name_a=names[pair[0]], name_b=names[pair[1]]
    )
    st.text(found.verdict())


def _revealed(pair: tuple[int, int]) -> str:
    return f"judgement.revealed.{pair[0]}-{pair[1]}"


def _forget_revealed(pair: tuple[int, int]) -> None:
    st.session_state.pop(_revealed(pair), None)


def _sorted_pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
