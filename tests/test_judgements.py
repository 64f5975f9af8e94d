"""People's judgement: ratings kept per rater, blind choices kept with the lower id as a, the
win rate with its Wilson interval and sign test, the blind order, metric agreement, the rating
summary, the CSV tables and `show`; storage on SQLite and on PostgreSQL."""

from __future__ import annotations

import doctest
import io
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as scipy_stats

import core.evaluation
from core.datasets.data import Dataset, Example
from core.errors import PromptLabError
from core.evaluation import judgements
from core.evaluation.judgements import (
    blind_order,
    metric_agreement,
    metric_direction,
    rating_summary,
    win_rate,
)
from core.evaluation.pass_rates import wilson_interval
from core.reporting import judgement_export
from storage import queries
from storage.db import dispose_all, session_scope

pytestmark = pytest.mark.both_databases
ROOT = Path(__file__).resolve().parent.parent


DATASET = "judged talks"
EXAMPLES = (
    (
        "t1",
        "#Person1#: Is the train late? #Person2#: Ten minutes.",
        "The train is ten minutes late.",
    ),
    ("t2", "#Person1#: Tea or coffee? #Person2#: Tea, please.", "Person2 would like tea."),
    ("t3", "#Person1#: See you at six. #Person2#: At the station.", "They meet at six."),
)


def store_judged(
    db: str, label: str, outputs: list[str], scores: list[float], *, shots: int = 0
) -> int:
    """A completed experiment on the three EXAMPLES, written through storage alone (no model,
    no run): its outputs and ROUGE (every type `scores`), and aggregates as a run leaves them."""
    with session_scope(db) as session:
        if DATASET not in queries.list_dataset_names(session=session):
            examples = tuple(Example(id=k, input=i, reference=r) for k, i, r in EXAMPLES)
            queries.save_dataset(session=session, dataset=Dataset(DATASET, examples))
        keys = [k for k, _, _ in EXAMPLES][: len(outputs)]
        spec = {"dataset": DATASET, "label": label, "design": {"shots": shots}}
        experiment_id = queries.create_experiment(
            session=session,
            label=label,
            dataset_name=DATASET,
            example_keys=keys,
            spec=spec,
            design=spec["design"],
            settings={},
            model_id="stored-by-tests",
            status="completed",
            n_examples=len(keys),
            aggregates=_aggregates(scores),
        )
        queries.add_results(
            session=session,
            experiment_id=experiment_id,
            results=[
                dict(
                    example_key=key,
                    position=position,
                    prompt=f"prompt for {key}",
                    output=output,
                    reference=EXAMPLES[position][2],
                    finish_reason="eos",
                    **dict.fromkeys(queries.ROUGE_COLUMNS, score),
                )
                for position, (key, output, score) in enumerate(
                    zip(keys, outputs, scores, strict=True)
                )
            ],
        )
    return experiment_id


def _aggregates(scores: list[float]) -> dict:
    mean = sum(scores) / len(scores)
    stats = {"mean": mean, "ci_low": min(scores), "ci_high": max(scores)}
    return {name: stats for name in queries.ROUGE_COLUMNS} | {"n_scored": len(scores)}


@pytest.fixture
def pair(db) -> tuple[str, int, int, list[str]]:
    """Two experiments on the same three examples: the store's URL, their ids and the keys."""
    first = store_judged(db, "first", ["late train", "tea", "six"], [0.5, 0.2, 0.4])
    second = store_judged(db, "second", ["ten minutes", "tea please", "station"], [0.3, 0.6, 0.4])
    return db, first, second, [k for k, _, _ in EXAMPLES]


def rate(db: str, experiment_id: int, key: str, rater: str, scale="good_bad", value=1, note=""):
    with session_scope(db) as session:
        return queries.rate_output(
            session=session,
            experiment_id=experiment_id,
            example_key=key,
            rater=rater,
            scale=scale,
            value=value,
            note=note,
        )


def choose(db: str, a: int, b: int, key: str, rater: str, choice: str, shown_left: int):
    with session_scope(db) as session:
        return queries.choose(
            session=session,
            experiment_a=a,
            experiment_b=b,
            example_key=key,
            rater=rater,
            choice=choice,
            shown_left=shown_left,
        )


# Ratings ---------------------------------------------------------------------------------------


def test_two_raters_ratings_of_one_output_are_kept_apart(pair):
    db, first, _, keys = pair
    rate(db, first, keys[0], "ann@example.org", value=1, note="clear")
    rate(db, first, keys[0], "bob@example.org", value=0, note="misses the point")
    with session_scope(db) as session:
        found = queries.ratings_of(session=session, experiment_ids=[first])
        bobs = queries.ratings_of(session=session, experiment_ids=[first], rater="bob@example.org")
    assert [(r.rater, r.value, r.note) for r in found] == [
        ("ann@example.org", 1, "clear"),
        ("bob@example.org", 0, "misses the point"),
    ]
    assert [r.value for r in bobs] == [0]


def test_rating_again_updates_ones_own_row_and_its_time(pair):
    db, first, _, keys = pair
    before = rate(db, first, keys[1], "ann", value=0)
    rate(db, first, keys[1], "bob", value=1)
    after = rate(db, first, keys[1], "ann", scale="five", value=4, note="better on a re-read")
    with session_scope(db) as session:
        anns = queries.ratings_of(session=session, experiment_ids=[first], rater="ann")
        everyone = queries.ratings_of(session=session, experiment_ids=[first])
    assert len(anns) == 1 and len(everyone) == 2
    assert (anns[0].scale, anns[0].value, anns[0].note) == ("five", 4, "better on a re-read")
    assert anns[0].created_at == before.created_at
    assert anns[0].updated_at == after.updated_at > before.updated_at


def test_removing_a_rating_removes_only_ones_own(pair):
    db, first, _, keys = pair
    rate(db, first, keys[0], "ann")
    rate(db, first, keys[0], "bob")
    with session_scope(db) as session:
        assert queries.remove_rating(
            session=session, experiment_id=first, example_key=keys[0], rater="ann"
        )
        assert not queries.remove_rating(
            session=session, experiment_id=first, example_key=keys[0], rater="ann"
        )
        left = queries.ratings_of(session=session, experiment_ids=[first])
    assert [r.rater for r in left] == ["bob"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(scale="stars"), "A rating's scale is one of good_bad, five; got 'stars'."),
        (dict(value=2), "A good_bad rating is 1 (good) or 0 (bad); got 2."),
        (dict(value=True), "A good_bad rating is 1 (good) or 0 (bad); got True."),
        (dict(scale="five", value=0), "A five rating is a whole number from 1 to 5; got 0."),
        (dict(scale="five", value=6), "A five rating is a whole number from 1 to 5; got 6."),
        (dict(scale="five", value=2.5), "A five rating is a whole number from 1 to 5; got 2.5."),
        (dict(note="x" * 2001), "A note holds at most 2000 characters; got 2001."),
        (dict(rater=" "), "A rating or choice needs the rater's name; got none."),
        (dict(experiment_id=999), "There is no experiment 999."),
        (dict(example_key="nope"), "has no output for example 'nope' to judge."),
    ],
)
def test_a_rating_that_does_not_fit_is_refused_with_a_sentence(pair, change, message):
    db, first, _, keys = pair
    values = dict(experiment_id=first, example_key=keys[0], rater="ann", scale="good_bad", value=1)
    with pytest.raises(PromptLabError) as refused, session_scope(db) as session:
        queries.rate_output(session=session, **(values | change))
    assert message in str(refused.value)
    with session_scope(db) as session:
        assert queries.ratings_of(session=session, experiment_ids=[first]) == []


# Blind choices ---------------------------------------------------------------------------------


def test_a_choice_is_kept_with_the_lower_id_as_a_and_the_choice_swapped(pair):
    db, first, second, keys = pair
    stored = choose(db, second, first, keys[0], "ann", "a", shown_left=second)
    assert (stored.experiment_a, stored.experiment_b) == (first, second)
    assert (stored.choice, stored.winner, stored.shown_left) == ("b", second, second)
    tie = choose(db, second, first, keys[1], "ann", "tie", shown_left=first)
    assert (tie.choice, tie.winner) == ("tie", None)
    with session_scope(db) as session:
        both_ways = [
            queries.choices_of(session=session, pair=p) for p in ((first, second), (second, first))
        ]
        by_id = queries.choices_of(session=session, experiment_ids=[second])
    assert both_ways[0] == both_ways[1] == by_id
    assert [c.example_key for c in by_id] == [keys[0], keys[1]]


def test_choosing_again_replaces_ones_own_choice_only(pair):
    db, first, second, keys = pair
    choose(db, first, second, keys[0], "ann", "a", shown_left=first)
    choose(db, first, second, keys[0], "bob", "tie", shown_left=second)
    choose(db, first, second, keys[0], "ann", "both_bad", shown_left=first)
    with session_scope(db) as session:
        found = queries.choices_of(session=session, pair=(first, second))
        anns = queries.choices_of(session=session, pair=(first, second), rater="ann")
    assert sorted((c.rater, c.choice) for c in found) == [("ann", "both_bad"), ("bob", "tie")]
    assert [c.choice for c in anns] == ["both_bad"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(choice="left"), "A blind choice is one of a, b, tie, both_bad; got 'left'."),
        (dict(b="a"), "A blind choice is between two different experiments"),
        (dict(shown_left=999), "The experiment shown on the left must be"),
        (dict(example_key="nope"), "has no output for example 'nope' to judge."),
        (dict(b=999), "There is no experiment 999."),
    ],
)
def test_a_choice_that_does_not_fit_is_refused_with_a_sentence(pair, change, message):
    db, first, second, keys = pair
    values = dict(a=first, b=second, example_key=keys[0], choice="a", shown_left=first)
    values |= change
    if values["b"] == "a":
        values["b"] = first
    with pytest.raises(PromptLabError) as refused, session_scope(db) as session:
        queries.choose(
            session=session,
            experiment_a=values["a"],
            experiment_b=values["b"],
            example_key=values["example_key"],
            rater="ann",
            choice=values["choice"],
            shown_left=values["shown_left"],
        )
    assert message in str(refused.value)


def test_a_pair_shows_the_examples_both_have_outputs_for(pair):
    db, first, second, keys = pair
    with session_scope(db) as session:
        found = queries.pair_examples(session=session, experiment_a=first, experiment_b=second)
    assert [e.key for e in found] == keys
    assert found[0].input and found[0].reference
    assert (found[0].output_a, found[0].output_b) == ("late train", "ten minutes")
    assert (found[1].input, found[1].reference) == EXAMPLES[1][1:]


def test_a_pair_from_different_datasets_is_refused(pair):
    db, first, _, _ = pair
    with session_scope(db) as session:
        other = queries.create_experiment(
            session=session,
            label="",
            dataset_name="elsewhere",
            example_keys=[],
            spec={},
            design={},
            settings={},
            model_id="m",
        )
        with pytest.raises(PromptLabError, match="ran on different datasets"):
            queries.pair_examples(session=session, experiment_a=first, experiment_b=other)


# Surviving a restart, the CSV tables and `show` ------------------------------------------------


def test_ratings_survive_a_restart_and_show_in_show_and_the_csv(pair):
    db, first, second, keys = pair
    rate(db, first, keys[0], "ann@example.org", value=1, note="=cmd|' /C calc'!A0")
    rate(db, first, keys[1], "bob@example.org", scale="five", value=4)
    choose(db, first, second, keys[0], "ann@example.org", "b", shown_left=second)
    dispose_all()  # every connection of this process closed: what follows reads the store anew
    shown = subprocess.run(
        [sys.executable, "-m", "core", "--db", db, "show", str(first)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "ann@example.org, bob@example.org" in shown.stdout
    assert "1 of 1 good" in shown.stdout and "mean 4.0 of 5 over 1" in shown.stdout
    assert f"blind choices: 1 (against experiment {second})" in shown.stdout
    with session_scope(db) as session:
        csv = judgement_export.ratings_csv(session=session, experiment_ids=[first])
    table = pd.read_csv(io.BytesIO(csv), keep_default_na=False)
    assert list(table.columns) == judgement_export.RATING_COLUMNS
    assert table[["rater", "scale", "value"]].values.tolist() == [
        ["ann@example.org", "good_bad", 1],
        ["bob@example.org", "five", 4],
    ]
    assert table["label"].tolist() == ["first", "first"]
    assert table["note"][0] == "'=cmd|' /C calc'!A0"  # a formula is defused, never run


def test_the_choices_table_names_the_winner_or_none(pair):
    db, first, second, keys = pair
    choose(db, second, first, keys[0], "ann", "a", shown_left=first)
    choose(db, first, second, keys[1], "ann", "tie", shown_left=second)
    with session_scope(db) as session:
        table = judgement_export.choices_table(session=session, experiment_ids=[first, second])
        csv = judgement_export.choices_csv(session=session, experiment_ids=[first])
        with pytest.raises(PromptLabError, match="There is no experiment 999"):
            judgement_export.choices_table(session=session, experiment_ids=[999])
    assert list(table.columns) == judgement_export.CHOICE_COLUMNS
    assert table[
        ["experiment_a", "experiment_b", "choice", "winner", "shown_left"]
    ].values.tolist() == [
        [first, second, "b", str(second), first],
        [first, second, "tie", "", second],
    ]
    read = pd.read_csv(io.BytesIO(csv), keep_default_na=False, dtype={"winner": str})
    assert read["winner"].tolist() == [str(second), ""]


# Win rates and the sign test -------------------------------------------------------------------


def test_win_rate_and_its_wilson_interval_match_hand_computed_values():
    found = win_rate(["b"] * 8 + ["a"] * 2 + ["tie"] * 3 + ["both_bad"], name_a="A", name_b="B")
    assert (found.wins_a, found.wins_b, found.ties, found.both_bad) == (2, 8, 3, 1)
    assert (found.n, found.decided) == (14, 10)
    assert found.rate_b == pytest.approx(0.8)
    # (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n), p = 0.8, n = 10, z = 1.959964
    assert (found.ci_low, found.ci_high) == pytest.approx((0.49016, 0.94331), abs=1e-5)
    wilson = scipy_stats.binomtest(8, 10).proportion_ci(0.95, method="wilson")
    assert (found.ci_low, found.ci_high) == pytest.approx((wilson.low, wilson.high))
    assert wilson_interval(0, 5) == pytest.approx((0.0, 0.43449), abs=1e-5)


@pytest.mark.parametrize(("wins_a", "wins_b"), [(2, 8), (5, 5), (0, 7), (12, 3), (1, 0)])
def test_the_sign_test_is_scipys_binomial_test_on_the_decisive_choices(wins_a, wins_b):
    found = win_rate(["a"] * wins_a + ["b"] * wins_b + ["tie"] * 4 + ["both_bad"] * 2)
    expected = scipy_stats.binomtest(wins_b, wins_a + wins_b, 0.5).pvalue
    assert found.p_sign == pytest.approx(expected)
    assert (found.ties, found.both_bad) == (4, 2)


def test_the_verdict_says_who_people_prefer_and_what_was_left_out():
    found = win_rate(["b"] * 9 + ["a"] + ["tie"] * 2, name_a="#1 short", name_b="#2 long")
    assert found.reliable
    assert found.verdict() == (
        "People prefer #2 long to #1 short: #2 long won 9 of 10 choices that went one way "
        f"(90%, 95% CI [{found.ci_low:.0%}, {found.ci_high:.0%}]), sign test p = 0.02; "
        "2 tie(s) and 0 both bad left out."
    )
    assert win_rate(["a", "b", "a"]).verdict().startswith("No reliable preference between A and B")
    assert win_rate(["tie", "both_bad"]).verdict() == (
        "No choice between A and B went either way: 1 tie(s) and 1 both bad of 2."
    )
    assert win_rate([]).verdict() == "Nobody has judged A against B yet."
    empty = win_rate(["tie"])
    assert (empty.rate_b, empty.ci_low, empty.p_sign) == (None, None, 1.0)


def test_win_rate_refuses_an_unknown_choice():
    with pytest.raises(PromptLabError, match="got 'left'"):
        win_rate(["a", "left"])


# The blind order -------------------------------------------------------------------------------


def test_the_blind_order_is_the_same_each_time_for_a_rater_and_differs_between_raters():
    keys = [f"d{i:03d}" for i in range(40)]
    ann = blind_order(keys, "ann@example.org", (3, 7))
    assert ann == blind_order(list(reversed(keys)), "ann@example.org", (7, 3))
    assert sorted(k for k, _ in ann) == keys and {left for _, left in ann} == {3, 7}
    bob = blind_order(keys, "bob@example.org", (3, 7))
    assert [k for k, _ in ann] != [k for k, _ in bob]
    assert [k for k, _ in ann] != keys  # shuffled, not the dataset's order
    # An example added later slots in; the others keep their order and sides.
    grown = blind_order([*keys, "d999"], "ann@example.org", (3, 7))
    assert [entry for entry in grown if entry[0] != "d999"] == ann


# Metrics against people ------------------------------------------------------------------------


def test_metric_agreement_on_a_small_hand_case():
    choices = [("x", "b"), ("y", "a"), ("z", "a"), ("w", "b"), ("v", "tie"), ("u", "a")]
    a = {"x": 0.1, "y": 0.5, "z": 0.2, "w": 0.4, "v": 0.9}
    b = {"x": 0.3, "y": 0.2, "z": 0.6, "w": 0.4, "v": 0.1}
    upward = metric_agreement(choices, a, b, metric="rougeL", higher_is_better=True)
    # x: b higher, b chosen: agree; y: a higher, a chosen: agree; z: b higher, a chosen:
    # disagree; w: tie on the metric; v: people tied, left out; u: not scored
    assert (upward.agree, upward.disagree, upward.metric_ties, upward.unscored) == (2, 1, 1, 1)
    assert upward.share == pytest.approx(2 / 3)
    assert (
        upward.sentence()
        == "ROUGE-L agrees with people on 2 of 3 choices (67%); 1 tie(s) on ROUGE-L."
    )
    downward = metric_agreement(choices, a, b, metric="ter", higher_is_better=False)
    assert (downward.agree, downward.disagree) == (1, 2)


def test_a_metrics_direction_is_upward_unless_said_otherwise(monkeypatch):
    assert metric_direction("ter", {"ter": False}) is False
    monkeypatch.setitem(sys.modules, "core.evaluation.metric_set", None)  # not written yet
    monkeypatch.delattr(core.evaluation, "metric_set", raising=False)
    assert metric_direction("ter") is True and metric_direction("ter", {"ter": None}) is True
    described = types.ModuleType("core.evaluation.metric_set")
    described.info = lambda key: types.SimpleNamespace(label=key, higher_is_better=key != "ter")
    monkeypatch.setitem(sys.modules, "core.evaluation.metric_set", described)
    monkeypatch.setattr(core.evaluation, "metric_set", described, raising=False)
    assert metric_direction("ter") is False and metric_direction("chrf") is True
    described.info = lambda key: types.SimpleNamespace(label=key, higher_is_better=None)  # length
    assert metric_direction("words") is None
    with pytest.raises(PromptLabError, match="has no better direction"):
        metric_agreement([("x", "a")], {"x": 3}, {"x": 4}, metric="words")


# Ratings summary -------------------------------------------------------------------------------


def test_the_rating_summary_counts_each_experiments_ratings(pair):
    db, first, second, keys = pair
    rate(db, first, keys[0], "ann", value=1)
    rate(db, first, keys[0], "bob", value=0)
    rate(db, first, keys[1], "ann", value=1)
    rate(db, first, keys[2], "bob", scale="five", value=3)
    with session_scope(db) as session:
        ratings = queries.ratings_of(session=session, experiment_ids=[first, second])
    summary = rating_summary(ratings, [first, second])
    mine = summary[first]
    assert (mine.n_ratings, mine.n_examples, mine.good, mine.n_good_bad) == (4, 3, 2, 3)
    assert mine.share_good == pytest.approx(2 / 3) and mine.mean_five == 3.0
    assert mine.raters == ("ann", "bob")
    assert mine.sentence() == (
        "4 rating(s) of 3 output(s) by ann, bob: 2 of 3 good (67%); mean 3.0 of 5 over 1"
    )
    assert summary[second].n_ratings == 0 and summary[second].sentence() == "no ratings"


def test_the_examples_in_the_docstrings_run():
    results = doctest.testmod(judgements, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert results.attempted >= 4 and results.failed == 0


def test_the_cli_exports_ratings_and_choices_as_csv(db, tmp_path, capsys):
    from core import cli

    a = store_judged(db, "terse", ["a", "b"], [0.5, 0.4])
    b = store_judged(db, "chatty", ["c", "d"], [0.3, 0.6])
    key = EXAMPLES[0][0]
    with session_scope(db) as session:
        queries.rate_output(
            session=session, experiment_id=a, example_key=key, rater="ann", scale="five", value=4
        )
        queries.choose(
            session=session,
            experiment_a=b,
            experiment_b=a,
            example_key=key,
            rater="ann",
            choice="a",
            shown_left=b,
        )
    ratings, choices = tmp_path / "ratings.csv", tmp_path / "choices.csv"
    assert cli.main(["--db", db, "export", str(a), str(b), "--ratings", "-o", str(ratings)]) == 0
    assert cli.main(["--db", db, "export", str(a), str(b), "--choices", "-o", str(choices)]) == 0
    assert "wrote 1 row(s) of the ratings table" in capsys.readouterr().out
    rows = pd.read_csv(ratings)
    assert rows[["experiment_id", "rater", "value"]].values.tolist() == [[a, "ann", 4]]
    chosen = pd.read_csv(choices)
    # Stored with the lower id as a: b was chosen over a, whichever side it was on.
    assert chosen[["experiment_a", "experiment_b", "choice"]].values.tolist() == [[a, b, "b"]]
