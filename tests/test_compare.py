"""Comparing experiments: differing settings, ROUGE tables and curves, word diffs, and the
per-example view, on experiments stored without a model in a temporary SQLite file and, again,
in a temporary PostgreSQL database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from core.errors import PromptLabError
from core.evaluation import compare, word_diff
from core.generation.settings import GenerationSettings
from core.prompting.design import PRESETS
from core.runs import experiments, recording
from core.runs.experiments import RunSpec
from storage import queries
from storage.db import session_scope
from ui import charts

pytestmark = pytest.mark.both_databases

HOSTILE = "<script>alert(1)</script> **bold** $x$ & done"


@pytest.fixture
def db_url(db, monkeypatch) -> str:
    monkeypatch.setenv("PROMPT_LAB_DB", db)
    return db


def store_experiment(
    db_url: str,
    scores: Sequence[float],
    *,
    shots: int = 0,
    label: str = "",
    outputs: Sequence[str] | None = None,
    settings: GenerationSettings | None = None,
    study_id: int | None = None,
    offset: int = 0,
    finish: bool = True,
    limit: int = 3,
) -> int:
    """An experiment on `limit` built-in examples, with one result per score given (fewer than
    `limit` leaves it partial) and, if `finish`, completed with its aggregates as a run would."""
    spec = RunSpec(
        limit=limit,
        offset=offset,
        design=PRESETS["instruction"].with_(shots=shots),
        settings=settings or GenerationSettings(),
        label=label,
    )
    experiment_id = experiments.create(spec, db_url=db_url, study_id=study_id)
    dataset = experiments.get_dataset(spec.dataset, db_url=db_url)
    references = {ex.id: ex.reference for ex in dataset.examples}
    with session_scope(db_url) as session:
        keys = queries.get_experiment(session=session, experiment_id=experiment_id).example_keys
        rows = [
            _result(i, key, references[key], score, outputs[i] if outputs else f"summary {i}")
            for i, (key, score) in enumerate(zip(keys, scores, strict=False))
        ]
        queries.add_results(session=session, experiment_id=experiment_id, results=rows)
    with session_scope(db_url) as session:
        results = queries.results_of(session=session, experiment_id=experiment_id)
        queries.update_experiment(
            session=session,
            experiment_id=experiment_id,
            status="completed" if finish else "interrupted",
            aggregates=recording.aggregate(session, experiment_id, results) if finish else {},
        )
    return experiment_id


def _result(position: int, key: str, reference: str, score: float, output: str) -> dict[str, Any]:
    return dict(
        example_key=key,
        position=position,
        prompt=f"prompt for {key}",
        output=output,
        reference=reference,
        rouge1=score,
        rouge2=score / 2,
        rougeL=score,
        rougeLsum=score,
        prompt_tokens=100,
        new_tokens=20,
        finish_reason="eos",
        latency_s=0.5,
    )


def store_study(db_url: str, shots: Sequence[int] = (0, 1, 3), **kwargs: Any) -> list[int]:
    """A study varying shots, each experiment scoring a little higher than the one before."""
    with session_scope(db_url) as session:
        study_id = queries.create_study(
            session=session, name="shots", base_spec={}, variations={"shots": list(shots)}
        )
    return [
        store_experiment(
            db_url, [0.2 + 0.1 * i] * 3, shots=k, label=f"shots={k}", study_id=study_id, **kwargs
        )
        for i, k in enumerate(shots)
    ]


def variants_of(db_url: str, ids: Sequence[int]) -> list[compare.Variant]:
    with session_scope(db_url) as session:
        return compare.load_variants(session=session, experiment_ids=ids)


# Settings and scores ---------------------------------------------------------------------------


def test_differing_settings_lists_only_what_differs(db_url):
    ids = [store_experiment(db_url, [0.3] * 3, shots=k, label=f"k{k}") for k in (0, 3)]
    table = compare.differing_settings(variants_of(db_url, ids))
    assert list(table.columns) == ["id", "variant", "design.shots"]
    assert table["design.shots"].tolist() == [0, 3]
    assert table["variant"].tolist() == [f"#{ids[0]} k0", f"#{ids[1]} k3"]


def test_differing_settings_flattens_every_part_of_the_spec(db_url):
    greedy = store_experiment(db_url, [0.3] * 3)
    sampled = GenerationSettings(do_sample=True, temperature=0.7, stop=("\n",))
    other = store_experiment(db_url, [0.3] * 3, settings=sampled, offset=3)
    table = compare.differing_settings(variants_of(db_url, [greedy, other]))
    assert set(table.columns) == {
        "id",
        "variant",
        "offset",
        "settings.do_sample",
        "settings.temperature",
        "settings.stop",
    }
    assert table["settings.stop"].tolist() == ["[]", '["\\n"]']


def test_identical_settings_leave_only_the_names(db_url):
    ids = [store_experiment(db_url, [0.3] * 3, label=name) for name in ("a", "b")]
    variants = variants_of(db_url, ids)
    assert compare.differing_keys(variants) == []
    assert list(compare.differing_settings(variants).columns) == ["id", "variant"]


def test_rouge_table_reads_the_stored_means_and_intervals(db_url):
    ids = store_study(db_url, shots=(0, 1))
    table = compare.rouge_table(variants_of(db_url, ids))
    assert len(table) == 8
    first = table[(table["id"] == ids[0]) & (table["rouge_type"] == "rouge2")].iloc[0]
    assert first["mean"] == pytest.approx(0.1)
    assert first["ci_low"] <= first["mean"] <= first["ci_high"]
    assert first["n"] == 3


def test_summary_puts_rouge_beside_the_differing_settings(db_url):
    ids = store_study(db_url, shots=(0, 1))
    frame = compare.summary(variants_of(db_url, ids))
    assert frame["design.shots"].tolist() == [0, 1]
    assert frame["rougeL"].tolist() == pytest.approx([0.2, 0.3])
    assert {"status", "done", "rougeL ci_low", "rougeL ci_high"} <= set(frame.columns)


def test_partial_run_is_scored_over_the_results_it_has(db_url):
    partial = store_experiment(db_url, [0.2, 0.6], finish=False)
    [variant] = variants_of(db_url, [partial])
    assert variant.status == "interrupted" and variant.n_scored == 2
    assert variant.scores["rougeL"]["mean"] == pytest.approx(0.4)
    # By hand: a resample of two scores averages 0.2, 0.4 or 0.6 (chances 1/4, 1/2, 1/4), so
    # of 1000 resamples the 2.5th and 97.5th percentiles are 0.2 and 0.6.
    assert variant.scores["rougeL"]["ci_low"] == pytest.approx(0.2)
    assert variant.scores["rougeL"]["ci_high"] == pytest.approx(0.6)


def test_pending_experiment_has_no_scores(db_url):
    pending = experiments.create(RunSpec(limit=2), db_url=db_url)
    [variant] = variants_of(db_url, [pending])
    assert variant.scores == {} and variant.status == "pending"


def test_ids_that_no_longer_exist_are_refused_by_number(db_url):
    kept = store_experiment(db_url, [0.3] * 3)
    with pytest.raises(PromptLabError, match="Experiment 999 no longer exists"):
        variants_of(db_url, [kept, 999])
    with pytest.raises(PromptLabError, match="Pick two or more"):
        variants_of(db_url, [])


# Shots curve and charts ------------------------------------------------------------------------


def test_shots_curve_has_a_row_per_shots_and_rouge_type(db_url):
    ids = store_study(db_url, shots=(3, 0, 1))
    curve = compare.shots_curve(variants_of(db_url, ids))
    assert len(curve) == 12 and set(curve["series"]) == {"all"}
    rouge_l = curve[curve["rouge_type"] == "rougeL"]
    assert rouge_l["shots"].tolist() == [0, 1, 3]
    assert rouge_l["mean"].tolist() == pytest.approx([0.3, 0.4, 0.2])


def test_shots_curve_splits_other_differences_into_series(db_url):
    greedy = store_study(db_url, shots=(0, 1))
    sampled = store_study(db_url, shots=(0, 1), settings=GenerationSettings(do_sample=True))
    curve = compare.shots_curve(variants_of(db_url, greedy + sampled))
    assert set(curve["series"]) == {"do_sample=False", "do_sample=True"}


def test_shots_curve_is_empty_when_shots_do_not_vary(db_url):
    ids = [store_experiment(db_url, [0.3] * 3, label=name) for name in ("a", "b")]
    assert compare.shots_curve(variants_of(db_url, ids)).empty


def test_charts_draw_error_bars_from_the_interval_and_escape_labels(db_url):
    ids = [store_experiment(db_url, [0.1, 0.5, 0.9], shots=k, label="<b>x</b>") for k in (0, 1)]
    variants = variants_of(db_url, ids)
    bars = charts.rouge_figure(compare.rouge_table(variants))
    rouge1 = next(trace for trace in bars.data if trace.name == "rouge1")
    stats = variants[0].scores["rouge1"]
    assert rouge1.error_y.array[0] == pytest.approx(stats["ci_high"] - stats["mean"])
    assert rouge1.error_y.arrayminus[0] == pytest.approx(stats["mean"] - stats["ci_low"])
    assert all("<b>" not in name for name in rouge1.x)
    lines = charts.shots_figure(compare.shots_curve(variants))
    assert {trace.name for trace in lines.data} == {"rouge1", "rouge2", "rougeL", "rougeLsum"}


# Word diff -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("the cat sat", "the dog sat down"),
        ("  two  spaces\nand a line ", "two spaces\n\nand lines"),
        ("", "only new"),
        ("only old", ""),
        ("same text", "same text"),
        (HOSTILE, "alert(2) **bold**"),
    ],
)
def test_word_diff_reconstructs_both_texts(a, b):
    pieces = word_diff.word_diff(a, b)
    assert "".join(text for op, text in pieces if op != "insert") == a
    assert "".join(text for op, text in pieces if op != "delete") == b


def test_word_diff_marks_only_the_changed_words():
    pieces = word_diff.word_diff("the cat sat", "the dog sat")
    assert [(op, text.strip()) for op, text in pieces if op != "equal"] == [
        ("delete", "cat"),
        ("insert", "dog"),
    ]


@pytest.mark.parametrize("side", ["a", "b", "both"])
def test_diff_html_escapes_every_piece_of_text(side):
    shown = word_diff.diff_html(word_diff.word_diff(HOSTILE, "fine " + HOSTILE + " <i>"), side=side)
    assert "<script>" not in shown and "<i>" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "**bold** $x$ &amp; done" in shown


def test_diff_html_shows_one_side_or_both():
    pieces = word_diff.word_diff("old word", "new word")
    assert "old" in word_diff.diff_html(pieces, side="a")
    assert "old" not in word_diff.diff_html(pieces, side="b")
    both = word_diff.diff_html(pieces, side="both")
    assert "<del" in both and "<ins" in both


# Example by example ----------------------------------------------------------------------------


def test_per_example_puts_the_largest_disagreement_first(db_url):
    steady = store_experiment(db_url, [0.5, 0.5, 0.5], outputs=[HOSTILE, "b", "c"])
    jumpy = store_experiment(db_url, [0.5, 0.1, 0.4], shots=1)
    with session_scope(db_url) as session:
        frame = compare.per_example(session=session, experiment_ids=[steady, jumpy])
        keys = queries.get_experiment(session=session, experiment_id=steady).example_keys
    assert frame["example_key"].tolist() == [keys[1], keys[2], keys[0]]
    assert frame["spread"].tolist() == pytest.approx([0.4, 0.1, 0.0])
    assert list(frame.columns) == [
        "example_key",
        "input",
        "reference",
        f"e{steady} output",
        f"e{steady} rougeL",
        f"e{jumpy} output",
        f"e{jumpy} rougeL",
        "spread",
    ]
    assert frame["input"].str.len().min() > 0 and frame["reference"].str.len().min() > 0
    assert frame[f"e{steady} output"].iloc[2] == HOSTILE


def test_per_example_orders_and_leaves_unfinished_examples_last(db_url):
    done = store_experiment(db_url, [0.5, 0.5, 0.5])
    partial = store_experiment(db_url, [0.2, 0.4], shots=1, finish=False)
    with session_scope(db_url) as session:
        agree = compare.per_example(
            session=session, experiment_ids=[done, partial], metric="rouge2", order="agreement"
        )
        as_stored = compare.per_example(
            session=session, experiment_ids=[done, partial], order="dataset"
        )
    assert agree["spread"].tolist()[:2] == pytest.approx([0.05, 0.15])
    assert agree["spread"].isna().tolist() == [False, False, True]
    assert as_stored["example_key"].tolist() == sorted(as_stored["example_key"])


def test_per_example_refuses_experiments_on_different_examples(db_url):
    first = store_experiment(db_url, [0.5] * 3)
    later = store_experiment(db_url, [0.5] * 3, offset=3)
    with session_scope(db_url) as session, pytest.raises(PromptLabError) as refused:
        compare.per_example(session=session, experiment_ids=[first, later])
    assert f"Experiments {first} and {later} were evaluated on different examples" in str(
        refused.value
    )


@pytest.mark.parametrize(
    ("ids", "metric", "message"),
    [
        ("one", "rougeL", "at least two"),
        ("two", "bleu", "have no BLEU scores; score it again"),
        ("two", "bluе", "Unknown score"),
        ("gone", "rougeL", "no longer exist"),
    ],
)
def test_per_example_refusals_say_what_to_do(db_url, ids, metric, message):
    stored = [store_experiment(db_url, [0.5] * 3, shots=k) for k in (0, 1)]
    chosen = {"one": stored[:1], "two": stored, "gone": [*stored, 999]}[ids]
    with session_scope(db_url) as session, pytest.raises(PromptLabError, match=message):
        compare.per_example(session=session, experiment_ids=chosen, metric=metric)


# Choosing --------------------------------------------------------------------------------------


def test_choices_and_studies_are_listed_newest_first(db_url):
    ids = store_study(db_url, shots=(0, 1))
    alone = store_experiment(db_url, [0.5] * 3, label="alone")
    with session_scope(db_url) as session:
        choices = compare.list_choices(session=session)
        studies = compare.list_studies(session=session)
        in_study = compare.list_choices(session=session, study_id=studies[0].id)
    assert [c.id for c in choices] == [alone, *reversed(ids)]
    assert "alone" in choices[0].describe() and "completed 3/3" in choices[0].describe()
    assert [s.experiments for s in studies] == [2]
    assert sorted(c.id for c in in_study) == ids


def test_csv_names_name_the_experiments():
    assert compare.csv_name([3, 4], "summary") == "compare-e3-e4-summary.csv"
    assert compare.csv_name(range(10), "per-example") == "compare-10-experiments-per-example.csv"


def test_a_setting_of_mixed_types_is_shown_as_text():
    def variant(number: int, device: object) -> compare.Variant:
        spec = {"model": {"device": device}, "label": str(number)}
        return compare.Variant(number, "", "completed", "d", "m", spec, {}, 0, 0, 0, ())

    table = compare.differing_settings([variant(1, None), variant(2, "cuda"), variant(3, 0)])
    devices = table["model.device"].tolist()
    assert pd.isna(devices[0])
    assert devices[1:] == ["cuda", "0"]
