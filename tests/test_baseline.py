"""A pinned baseline: every other experiment as its difference from it, and the examples on which
a variant does worse than it by more than a margin, on any metric."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import PromptLabError
from core.evaluation import baseline, compare
from core.runs import rescoring
from storage import queries
from storage.db import session_scope
from tests.test_compare import store_experiment, variants_of


@pytest.fixture
def db_url(db, monkeypatch) -> str:
    monkeypatch.setenv("PROMPT_LAB_DB", db)
    return db


def test_differences_are_each_variants_mean_minus_the_baselines(db_url):
    base = store_experiment(db_url, [0.5, 0.5, 0.5], label="base")
    better = store_experiment(db_url, [0.7, 0.6, 0.5], label="better")
    worse = store_experiment(db_url, [0.2, 0.5, 0.5], label="worse")
    variants = variants_of(db_url, [base, better, worse])
    frame = baseline.differences(variants, base)
    assert frame["id"].tolist() == [better, worse]
    assert frame["Δ rougeL"].tolist() == pytest.approx([0.1, -0.1])
    assert frame["Δ rouge2"].tolist() == pytest.approx([0.05, -0.05])


def table(scores: dict[int, list[float | None]]) -> pd.DataFrame:
    frame = pd.DataFrame({"example_key": [f"d{i}" for i in range(4)]})
    for experiment_id, values in scores.items():
        frame[f"e{experiment_id} rougeL"] = values
        frame[f"e{experiment_id} words"] = values
    return frame


def test_what_got_worse_keeps_drops_beyond_the_margin_largest_first():
    frame = table({1: [0.5, 0.5, 0.5, 0.5], 2: [0.4, 0.5, 0.1, None], 3: [0.5, 0.44, 0.6, 0.2]})
    found = baseline.regressions(frame, [1, 2, 3], 1, "rougeL", 0.05)
    assert found["example_key"].tolist() == ["d2", "d3", "d0", "d1"]
    assert found["worse by"].tolist() == pytest.approx([0.4, 0.3, 0.1, 0.06])
    assert found["worst"].tolist() == [2, 3, 2, 3]
    assert baseline.regressions(frame, [1, 2, 3], 1, "rougeL", 0.35)["example_key"].tolist() == [
        "d2"
    ]


def test_for_a_metric_with_no_better_direction_a_change_either_way_counts():
    frame = table({1: [10, 10, 10, 10], 2: [20, 10, 4, 11]})
    found = baseline.regressions(frame, [1, 2], 1, "words", 5)
    assert found["example_key"].tolist() == ["d0", "d2"]


def test_refusals_say_what_is_wrong():
    frame = table({1: [0.5] * 4, 2: [0.5] * 4})
    with pytest.raises(PromptLabError, match="margin cannot be negative"):
        baseline.regressions(frame, [1, 2], 1, "rougeL", -0.1)
    with pytest.raises(PromptLabError, match="baseline 7 is not among"):
        baseline.regressions(frame, [1, 2], 7, "rougeL", 0.1)


def test_the_baseline_view_works_on_a_metric_added_by_scoring_again(db_url):
    first = store_experiment(db_url, [0.5] * 3, label="first")
    with session_scope(db_url) as session:
        results = queries.results_of(session=session, experiment_id=first)
    references = [r.reference for r in results]
    # The baseline repeats the references; the other does too, but for its second answer.
    base = store_experiment(db_url, [0.5] * 3, outputs=references, label="base")
    other = store_experiment(
        db_url, [0.5] * 3, outputs=[references[0], "x", references[2]], label="other"
    )
    for experiment_id in (base, other):
        rescoring.rescore(experiment_id, ["chrf"], db_url=db_url)
    with session_scope(db_url) as session:
        frame = compare.per_example(session=session, experiment_ids=[base, other], metric="chrf")
    found = baseline.regressions(frame, [base, other], base, "chrf", 1.0)
    keys = frame["example_key"].tolist()
    drop = frame[f"e{base} chrf"] - frame[f"e{other} chrf"]
    assert found["example_key"].tolist() == [k for k, d in zip(keys, drop, strict=True) if d > 1]
    assert found["example_key"].tolist() == [results[1].example_key]
    assert "Δ chrf" in baseline.differences(variants_of(db_url, [base, other]), base)
