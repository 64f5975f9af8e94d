"""People's judgement on the Compare page in Streamlit's AppTest, on a real SQLite file: the blind
A/B mode hides which output is whose until the choice and resumes where the rater stopped; each
output's rating is the rater's own; and what people said is summed up, with its CSVs."""

import re
from pathlib import Path

import pytest
import streamlit as st
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from streamlit.testing.v1 import AppTest

from core.evaluation.judgements import blind_order
from core.policy import local_user
from storage import queries
from storage.db import session_scope
from tests.test_judgements import EXAMPLES, store_judged
from tests.ui.shown import unescaped
from ui.state import key

APP = str(Path(__file__).resolve().parents[2] / "app.py")
# Distinctive, so that finding none of them on the page means something.
LABELS = ("zebra-lantern", "quartz-meadow")
SCORES = ([0.4321, 0.1234, 0.5678], [0.8765, 0.3456, 0.6543])
KEYS = [k for k, _, _ in EXAMPLES]


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'blind-ab.sqlite'}"
    monkeypatch.setenv("PROMPT_LAB_DB", url)
    return url


@pytest.fixture
def pair(db_url) -> tuple[int, int]:
    first = store_judged(db_url, LABELS[0], ["the train is late", "tea", "six"], SCORES[0])
    second = store_judged(
        db_url, LABELS[1], ["ten minutes late", "tea please", "at the station"], SCORES[1], shots=1
    )
    return first, second


def new_app(pair: tuple[int, int], view: str = "Blind A/B") -> AppTest:
    """A fresh session on the Compare page with the pair picked, in `view`."""
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/compare.py")  # straight there: the Playground would load the model
    at.session_state["compare.ids"] = list(pair)
    at.run()
    if view != "Comparison":
        at.segmented_control(key=key("compare", "view")).set_value(view).run()
    assert not at.exception, at.exception
    return at


def on_screen(at: AppTest) -> str:
    """Every string of every element and container on the page (text, markdown, captions,
    labels, options, help, values), as a reader sees it (Markdown escapes undone), but the
    experiments picked above the blind section: the organiser's own choice of what to
    compare, not which output is whose."""
    parts = []
    for node in [*at.main, *at.sidebar]:
        if getattr(node, "key", None) == key("compare", "ids"):
            continue
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts += strings(proto)
    return unescaped("\n".join(parts))


def strings(message: Message) -> list[str]:
    found = []
    for field, value in message.ListFields():
        single = isinstance(value, str | bytes | Message) or not hasattr(value, "__len__")
        values = [value] if single else [value[i] for i in range(len(value))]
        if field.type == FieldDescriptor.TYPE_STRING:
            found += values
        elif field.type == FieldDescriptor.TYPE_BYTES:  # a table's Arrow data holds its cells
            found += [v.decode("latin-1") for v in values]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in values:
                found += strings(item) if isinstance(item, Message) else []
    return found


def leaks(text: str, pair: tuple[int, int]) -> list[str]:
    """What on the page would tell the outputs apart: a name, a label, an id, a score."""
    found = [label for label in LABELS if label in text]
    found += [f"#{i}" for i in pair if re.search(rf"#{i}(?!\d)", text)]
    found += [f"{s:.3f}" for scores in SCORES for s in scores if f"{s:.3f}" in text]
    found += [f"{s:.2f}" for scores in SCORES for s in scores if f"{s:.2f}" in text]
    return found


def click(at: AppTest, label: str) -> None:
    (button,) = [b for b in at.button if b.label == label]
    button.click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def shown_example(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Example "))[len("Example ") :]


def test_blind_mode_names_nothing_before_the_choice_and_each_output_after(pair):
    at = new_app(pair)
    order = blind_order(KEYS, local_user(), pair)
    for step, side in enumerate(["Output 1 is better", "Tie", "Output 2 is better"]):
        assert at.get("progress")[0].proto.text == f"{step} of 3 judged"
        assert shown_example(at) == order[step][0]
        assert leaks(on_screen(at), pair) == []
        assert [m.value for m in at.markdown if m.value.startswith("**Output")] == [
            "**Output 1**",
            "**Output 2**",
        ]
        click(at, side)
        revealed = on_screen(at)
        assert LABELS[0] in revealed and LABELS[1] in revealed
        left, right = (pair[0], pair[1]) if order[step][1] == pair[0] else (pair[1], pair[0])
        names = {pair[0]: f"#{pair[0]} {LABELS[0]}", pair[1]: f"#{pair[1]} {LABELS[1]}"}
        assert unescaped(at.success[0].value).startswith(
            f"Output 1 was {names[left]}; Output 2 was {names[right]}."
        )
        assert at.get("progress")[0].proto.text == f"{step + 1} of 3 judged"
        click(at, "Next")
    assert "You have judged all 3 examples of this pair." in at.success[0].value
    with session_scope() as session:
        made = {c.example_key: c for c in queries.choices_of(session=session, pair=pair)}
    first, second, third = (made[k] for k, _ in order)
    assert first.winner == first.shown_left == order[0][1]  # Output 1, shown left, chosen
    assert second.choice == "tie" and second.winner is None
    assert third.winner == (pair[1] if order[2][1] == pair[0] else pair[0])  # the right one
    assert {c.rater for c in made.values()} == {local_user()}


def test_resuming_in_a_new_session_continues_at_the_next_unjudged_example(pair):
    order = blind_order(KEYS, local_user(), pair)
    at = new_app(pair)
    click(at, "Both bad")
    click(at, "Next")
    assert shown_example(at) == order[1][0]
    again = new_app(pair)  # another session: nothing kept but what the store holds
    assert again.get("progress")[0].proto.text == "1 of 3 judged"
    assert shown_example(again) == order[1][0]
    assert leaks(on_screen(again), pair) == []


def test_three_experiments_are_judged_in_pairs_named_by_the_order_picked(pair, db_url):
    third = store_judged(db_url, "amber-tortoise", ["late", "tea", "six"], [0.1, 0.2, 0.3])
    at = new_app((*pair, third))
    (picker,) = at.selectbox
    assert picker.options == [
        "The 1st and 2nd experiments picked",
        "The 1st and 3rd experiments picked",
        "The 2nd and 3rd experiments picked",
    ]
    picker.set_value(f"{pair[1]}-{third}").run()
    assert leaks(on_screen(at), pair) == [] and "amber-tortoise" not in on_screen(at)
    click(at, "Output 1 is better")
    with session_scope() as session:
        (made,) = queries.choices_of(session=session, experiment_ids=[third])
    assert (made.experiment_a, made.experiment_b) == (pair[1], third)


def test_what_people_said_is_summed_up_with_both_csvs(pair):
    low, high = pair
    with session_scope() as session:
        for k, choice in zip(KEYS, ["b", "b", "tie"], strict=True):
            queries.choose(
                session=session,
                experiment_a=low,
                experiment_b=high,
                example_key=k,
                rater="ann@example.org",
                choice=choice,
                shown_left=low,
            )
        queries.rate_output(
            session=session,
            experiment_id=low,
            example_key=KEYS[0],
            rater="ann@example.org",
            scale="five",
            value=2,
        )
    at = new_app(pair, view="Comparison")
    assert not at.error, [e.value for e in at.error]
    said = " ".join(m.value for m in [*at.info, *at.success])
    assert "won 2 of 2 choices that went one way" in said.replace("\\", "")
    tables = {tuple(d.value.columns)[:3]: d.value for d in at.dataframe}
    wins = tables[("A", "B", "judged")]
    assert wins[["A wins", "B wins", "ties"]].values.tolist() == [[0, 2, 1]]
    agreement = tables[("A", "B", "metric")]
    rouge_l = agreement[agreement["metric"] == "rougeL"].iloc[0]
    # t1: B scores 0.877 > 0.432, B chosen; t2: 0.346 > 0.123, B chosen: both agree
    assert (rouge_l["agree"], rouge_l["disagree"], rouge_l["share agreeing"]) == (2, 0, 1.0)
    ratings = tables[("experiment", "ratings", "outputs rated")]
    assert ratings["mean of 1–5"].tolist()[0] == 2.0
    labels = [b.label for b in at.get("download_button")]
    assert labels[-2:] == ["Download ratings CSV", "Download choices CSV"]


def test_nothing_judged_yet_says_how_to_start(pair):
    at = new_app(pair, view="Comparison")
    assert any("Nobody has rated these outputs" in c.value for c in at.caption)
    assert "Download ratings CSV" not in [b.label for b in at.get("download_button")]


RATE_ONE = """
import os
from ui import judgement_views
judgement_views.rate_output(int(os.environ["RATED_ID"]), os.environ["RATED_KEY"], "test")
"""


def test_an_outputs_rating_is_the_raters_own_and_counts_the_others(pair, monkeypatch):
    low, _ = pair
    monkeypatch.setenv("RATED_ID", str(low))
    monkeypatch.setenv("RATED_KEY", KEYS[0])
    with session_scope() as session:
        queries.rate_output(
            session=session,
            experiment_id=low,
            example_key=KEYS[0],
            rater="bob@example.org",
            scale="good_bad",
            value=0,
        )
    at = AppTest.from_string(RATE_ONE, default_timeout=30).run()
    assert at.caption[0].value == "Not rated by you · 1 other rated it"
    at.button[0].click().run()  # Save with nothing chosen
    assert at.error[0].value == "Choose a rating before saving it\\."
    widget = f"rate.test.e{low}.{KEYS[0]}"
    at.segmented_control(key=f"{widget}.good_bad").set_value(1)
    at.text_input(key=f"{widget}.note").input("=clear and short")
    at.button[0].click().run()
    assert not at.error and not at.exception
    assert at.caption[0].value == "Yours: 👍 Good with a note · 1 other rated it"
    with session_scope() as session:
        mine = queries.ratings_of(session=session, experiment_ids=[low], rater=local_user())
    assert [(r.value, r.note) for r in mine] == [(1, "=clear and short")]
