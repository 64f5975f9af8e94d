"""Verdicts on stored experiments: paired tests on the examples all of them scored, the
shot-count curve when only shots differ, and the spread of runs repeated with other seeds."""

import pytest

from core.errors import PromptLabError
from core.evaluation import stats, verdicts
from core.evaluation.compare import load_variants
from core.generation.settings import GenerationSettings
from storage.db import session_scope
from tests.test_compare import store_experiment

N = 12
LOW = [0.20, 0.25, 0.18, 0.30, 0.22, 0.27, 0.21, 0.19, 0.26, 0.24, 0.23, 0.28]
HIGH = [x + 0.1 + 0.01 * (i % 3) for i, x in enumerate(LOW)]


def variants_of(db, ids):
    with session_scope(db) as session:
        return load_variants(session=session, experiment_ids=ids)


def test_a_clear_improvement_is_called_reliable_with_the_tests_numbers(db):
    a = store_experiment(db, LOW, limit=N, label="zero")
    b = store_experiment(db, HIGH, shots=1, limit=N, label="one")
    with session_scope(db) as session:
        found, aligned = verdicts.paired_verdicts(
            session=session, variants=variants_of(db, [a, b]), metric="rougeL"
        )
    (comparison,) = found
    expected = stats.compare_pair(LOW, HIGH, name_a=f"#{a} zero", name_b=f"#{b} one")
    assert comparison.p_value == expected.p_value and comparison.diff == pytest.approx(0.11)
    assert (comparison.ci_low, comparison.ci_high) == (expected.ci_low, expected.ci_high)
    assert comparison.reliable and comparison.better == f"#{b} one"
    assert comparison.verdict().startswith(f"#{b} one is better than #{a} zero on ROUGE-L by 0.110")
    assert len(aligned.keys) == N and aligned.left_out == 0


def test_only_examples_every_variant_scored_are_paired(db):
    a = store_experiment(db, LOW, limit=N)
    b = store_experiment(db, HIGH[:9], shots=1, limit=N, finish=False)  # 3 not done yet
    with session_scope(db) as session:
        aligned = verdicts.aligned_scores(
            session=session, variants=variants_of(db, [a, b]), metric="rougeL"
        )
    assert len(aligned.keys) == 9 and aligned.left_out == 3
    assert aligned.scores[a] == LOW[:9] and aligned.scores[b] == HIGH[:9]


def test_experiments_on_different_examples_are_refused(db):
    a = store_experiment(db, LOW, limit=N)
    b = store_experiment(db, HIGH, limit=N, offset=5)
    with session_scope(db) as session, pytest.raises(PromptLabError, match="different examples"):
        verdicts.paired_verdicts(session=session, variants=variants_of(db, [a, b]))


def test_the_shot_curve_appears_only_when_shots_alone_differ(db):
    flat = [x + 0.1 for x in LOW]
    ids = [store_experiment(db, s, shots=k, limit=N) for s, k in ((LOW, 0), (HIGH, 1), (flat, 3))]
    with session_scope(db) as session:
        curve = verdicts.shots_study(session=session, variants=variants_of(db, ids))
    assert [p.shots for p in curve.points] == [0, 1, 3]
    assert curve.smallest_sufficient_k == 1
    other = store_experiment(db, LOW, shots=5, limit=N, settings=GenerationSettings(96))
    with session_scope(db) as session:
        assert (
            verdicts.shots_study(session=session, variants=variants_of(db, [*ids, other])) is None
        )


def test_shots_swept_with_another_setting_give_one_curve_per_value_of_it(db):
    flat = [x + 0.1 for x in LOW]
    short = GenerationSettings(48)
    plan = [(LOW, 0, None), (HIGH, 1, None), (flat, 3, None)]
    plan += [(HIGH, 0, short), (LOW, 1, short), (LOW, 3, short)]
    ids = [store_experiment(db, s, shots=k, limit=N, settings=g) for s, k, g in plan]
    with session_scope(db) as session:
        curves = verdicts.shots_studies(session=session, variants=variants_of(db, ids))
        alone = verdicts.shots_studies(session=session, variants=variants_of(db, ids[:3]))
    assert list(curves) == ["max_new_tokens=128", "max_new_tokens=48"]
    longer, shorter = curves.values()
    assert [p.shots for p in longer.points] == [p.shots for p in shorter.points] == [0, 1, 3]
    assert [round(p.mean, 4) for p in shorter.points] == [
        round(sum(x) / N, 4) for x in (HIGH, LOW, LOW)
    ]
    assert longer.smallest_sufficient_k == 1 and shorter.smallest_sufficient_k == 0
    assert list(alone) == ["all"] and alone["all"].points == longer.points
    # A series with one variant, or two at the same count, is no curve.
    with session_scope(db) as session:
        one_each = verdicts.shots_studies(session=session, variants=variants_of(db, ids[2:4]))
    assert one_each == {}


def test_runs_that_differ_only_by_seed_are_grouped_as_repeats(db):
    sampled = GenerationSettings(do_sample=True, temperature=0.7)
    runs = [
        store_experiment(db, [x + d for x in LOW], limit=N, settings=sampled.with_(seed=s))
        for s, d in ((1, 0.0), (2, 0.01), (3, -0.01))
    ]
    greedy = store_experiment(db, HIGH, limit=N)
    variants = variants_of(db, [*runs, greedy])
    groups = verdicts.repeat_groups(variants)
    assert list(groups) == [f"#{runs[0]}, #{runs[1]}, #{runs[2]} (seeds 1, 2, 3)"]
    with session_scope(db) as session:
        spreads, changes = verdicts.repeat_report(session=session, variants=variants)
    (spread,) = spreads.values()
    assert spread.repeats == 3 and spread.repeat_sd == pytest.approx(0.01)
    assert changes == []  # one repeated group: nothing to weigh against luck
