"""Every metric works as ROUGE does: stored per example, summarised with its CI, compared with
paired tests (McNemar for checks), exported, and added to a stored experiment without
generating again; on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
import sacrebleu
from scipy import stats as scipy_stats

from core import cli
from core.errors import PromptLabError
from core.evaluation import compare, pass_rates, stats, verdicts
from core.evaluation.checks import parse_check
from core.policy import signed_in_actor
from core.reporting import export
from core.runs import rescoring
from storage import queries
from storage.db import session_scope
from tests.test_compare import store_experiment

pytestmark = pytest.mark.both_databases

OUTPUTS_A = (
    "#Person1# asks about the train ticket.",
    "They talk about the doctor tomorrow.",
    "#Person2#: hello, what time is it?",
    "The shop sells books today.",
)
OUTPUTS_B = (
    "#Person1#: I need a ticket.",
    "#Person2#: see you tomorrow.",
    "#Person2# asks #Person1# the time.",
    "#Person1#: thanks, bye.",
)
OPENS_AS_TURN = r"not regex:^\s*#Person\d#\s*:"


@pytest.fixture
def db_url(db, monkeypatch) -> str:
    monkeypatch.setenv("PROMPT_LAB_DB", db)
    return db


def stored(db_url: str, outputs: Sequence[str], label: str) -> int:
    return store_experiment(
        db_url, [0.5] * len(outputs), outputs=outputs, limit=len(outputs), label=label
    )


def references_of(db_url: str, experiment_id: int) -> list[str]:
    with session_scope(db_url) as session:
        results = queries.results_of(session=session, experiment_id=experiment_id)
        return [r.reference for r in results]


def test_rescoring_stores_each_examples_score_and_the_summary_without_generating(db_url):
    a = stored(db_url, OUTPUTS_A, "a")
    check = parse_check(f"plain={OPENS_AS_TURN}")
    done = rescoring.rescore(a, ["chrf", "length"], [check], db_url=db_url)
    assert done.keys == ("chrf", "words", "length_ratio", "check:plain") and done.n == 4
    references = references_of(db_url, a)
    with session_scope(db_url) as session:
        chrf = queries.scores_by_key(session=session, experiment_id=a, metric="chrf")
        passes = queries.scores_by_key(session=session, experiment_id=a, metric="check:plain")
        record = queries.get_experiment(session=session, experiment_id=a)
        results = queries.results_of(session=session, experiment_id=a)
    expected = [
        sacrebleu.sentence_chrf(out, [ref]).score
        for out, ref in zip(OUTPUTS_A, references, strict=True)
    ]
    assert list(chrf.values()) == expected
    assert list(passes.values()) == [1.0, 1.0, 0.0, 1.0]
    assert [r.output for r in results] == list(OUTPUTS_A)  # nothing generated again
    summary = record.aggregates
    assert summary["chrf"]["mean"] == pytest.approx(sum(expected) / 4)
    assert summary["chrf"]["corpus"] == sacrebleu.corpus_chrf(list(OUTPUTS_A), [references]).score
    low, high = pass_rates.wilson_interval(3, 4)
    assert summary["check:plain"] == {"mean": 0.75, "ci_low": low, "ci_high": high, "n": 4}
    assert summary["rougeL"]["mean"] == 0.5  # what it had stays
    assert record.spec["metrics"] == ["rouge", "chrf", "length"]
    assert record.spec["checks"] == [check.to_dict()]


def test_scoring_again_replaces_a_checks_scores_and_keeps_the_others(db_url):
    a = stored(db_url, OUTPUTS_A, "a")  # of 6, 6, 6 and 5 words

    def brief() -> list[float]:
        with session_scope(db_url) as session:
            found = queries.scores_by_key(session=session, experiment_id=a, metric="check:brief")
        return list(found.values())

    rescoring.rescore(a, ["bleu"], [parse_check("brief=max_words:5")], db_url=db_url)
    assert brief() == [0.0, 0.0, 0.0, 1.0]
    rescoring.rescore(a, [], [parse_check("brief=max_words:6")], db_url=db_url)
    assert brief() == [1.0, 1.0, 1.0, 1.0]
    with session_scope(db_url) as session:
        bleu = queries.scores_by_key(session=session, experiment_id=a, metric="bleu")
        record = queries.get_experiment(session=session, experiment_id=a)
    assert len(bleu) == 4
    assert [c["value"] for c in record.spec["checks"]] == ["6"]
    assert record.aggregates["check:brief"]["mean"] == 1.0


def test_checks_are_compared_with_mcnemar_beside_the_bootstrap(db_url):
    a, b = stored(db_url, OUTPUTS_A, "a"), stored(db_url, OUTPUTS_B, "b")
    check = parse_check(f"plain={OPENS_AS_TURN}")
    for experiment_id in (a, b):
        rescoring.rescore(experiment_id, [], [check], db_url=db_url)
    with session_scope(db_url) as session:
        variants = compare.load_variants(session=session, experiment_ids=[a, b])
        found, aligned = verdicts.paired_verdicts(
            session=session, variants=variants, metric="check:plain"
        )
    (verdict,) = found
    # A passes 3 (1, 2, 4), B passes 1 (3): A alone on 3 examples, B alone on 1.
    assert aligned.scores == {a: [1.0, 1.0, 0.0, 1.0], b: [0.0, 0.0, 1.0, 0.0]}
    assert verdict.p_value == scipy_stats.binomtest(1, 4, 0.5).pvalue
    assert verdict.test == "McNemar's exact test, two-sided"
    assert verdict.diff == pytest.approx(-0.5)


def test_mcnemar_is_the_binomial_test_of_the_discordant_pairs():
    a = [1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1]
    b = [0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0]
    only_a = sum(x == 1 and y == 0 for x, y in zip(a, b, strict=True))
    only_b = sum(x == 0 and y == 1 for x, y in zip(a, b, strict=True))
    assert (only_a, only_b) == (6, 1)
    expected = scipy_stats.binomtest(only_b, only_a + only_b, 0.5).pvalue
    assert pass_rates.mcnemar_exact(a, b) == expected
    assert stats.compare_pair(a, b, pass_fail=True).p_value == expected
    assert pass_rates.mcnemar_exact([1, 0], [1, 0]) == 1.0  # no discordant pair


def test_a_lower_is_better_or_directionless_metric_names_the_winner_rightly():
    low, high = [1.0, 2.0, 3.0, 4.0] * 5, [2.0, 3.5, 4.0, 5.5] * 5
    lower_wins = stats.compare_pair(low, high, name_a="L", name_b="H", higher_is_better=False)
    assert lower_wins.better == "L" and "L is better (lower) than H" in lower_wins.verdict()
    neither = stats.compare_pair(low, high, name_a="L", name_b="H", higher_is_better=None)
    assert neither.better is None and neither.higher == "H"
    assert "H is higher than L" in neither.verdict()


def test_every_metric_reaches_the_per_example_view_and_the_exports(db_url):
    a, b = stored(db_url, OUTPUTS_A, "a"), stored(db_url, OUTPUTS_B, "b")
    for experiment_id in (a, b):
        rescoring.rescore(experiment_id, ["chrf"], db_url=db_url)
    with session_scope(db_url) as session:
        frame = compare.per_example(session=session, experiment_ids=[a, b], metric="chrf")
        wide = export.wide_table(session=session, experiment_ids=[a, b])
        long = export.per_example_table(session=session, experiment_ids=[a, b])
        summary = compare.summary(compare.load_variants(session=session, experiment_ids=[a, b]))
        chrf_a = queries.scores_by_key(session=session, experiment_id=a, metric="chrf")
    spread = (frame[f"e{a} chrf"] - frame[f"e{b} chrf"]).abs()
    assert list(frame["spread"]) == sorted(spread, reverse=True)
    assert list(wide[f"e{a} chrf"]) == list(chrf_a.values())
    assert list(long[long["experiment_id"] == a]["chrf"]) == list(chrf_a.values())
    assert list(long.columns).index("chrf") == list(long.columns).index("rougeLsum") + 1
    assert {"chrf", "chrf ci_low", "chrf ci_high", "chrf corpus"} <= set(summary.columns)
    with session_scope(db_url) as session:
        exported = export.summary_table(session=session, experiment_ids=[a, b])
        record = queries.get_experiment(session=session, experiment_id=a)
    chrf = record.aggregates["chrf"]
    row = exported[exported["id"] == a].iloc[0]
    assert [row["chrf"], row["chrf_ci_low"], row["chrf_ci_high"], row["chrf_corpus"]] == [
        chrf["mean"],
        chrf["ci_low"],
        chrf["ci_high"],
        chrf["corpus"],
    ]


def test_the_cli_rescores_and_compares_on_any_metric(db_url, capsys):
    a, b = stored(db_url, OUTPUTS_A, "a"), stored(db_url, OUTPUTS_B, "b")
    argv = ["--db", db_url, "rescore", str(a), str(b), "--metrics", "bleu"]
    assert cli.main([*argv, "--check", f"plain={OPENS_AS_TURN}"]) == 0
    printed = capsys.readouterr().out
    assert f"experiment {a}: 2 score(s) over 4 outputs: bleu, check:plain" in printed
    assert cli.main(["--db", db_url, "compare", str(a), str(b), "--metric", "check:plain"]) == 0
    out = capsys.readouterr().out
    assert "Check plain" in out and "McNemar's exact test" in out
    assert cli.main(["--db", db_url, "compare", str(a), str(b), "--metric", "bleu"]) == 0
    assert "corpus-level" in capsys.readouterr().out
    assert cli.main(["--db", db_url, "show", str(a)]) == 0
    assert "check:plain 0.750" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rescore", "{a}", "--metrics", "bleu,meteor"], "METEOR is not available"),
        (["rescore", "{a}", "--metrics", "nonsense"], "Unknown metric 'nonsense'"),
        (["rescore", "{a}"], "Choose at least one metric or check"),
        (["rescore", "{a}", "--check", "x=sounds:good"], "has unknown kind 'sounds'"),
        (["rescore", "999", "--metrics", "chrf"], "There is no experiment 999"),
        (["compare", "{a}", "{b}", "--metric", "chrf"], "have no chrF scores; score it again"),
    ],
)
def test_bad_scoring_requests_are_one_error_line(db_url, capsys, argv, message):
    a, b = stored(db_url, OUTPUTS_A, "a"), stored(db_url, OUTPUTS_B, "b")
    args = [arg.format(a=a, b=b) for arg in argv]
    assert cli.main(["--db", db_url, *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    with session_scope(db_url) as session:
        assert queries.metrics_stored(session=session, experiment_ids=[a, b]) == []


def test_only_whoever_may_change_an_experiment_scores_it_again_and_not_while_it_runs(db_url):
    a = stored(db_url, OUTPUTS_A, "a")
    with session_scope(db_url) as session:
        queries.update_experiment(session=session, experiment_id=a, created_by="ann@example.org")
    with pytest.raises(PromptLabError, match="You can score again only what you created"):
        rescoring.rescore(a, ["chrf"], db_url=db_url, actor=signed_in_actor("bob@example.org"))
    rescoring.rescore(a, ["chrf"], db_url=db_url, actor=signed_in_actor("ann@example.org"))
    with session_scope(db_url) as session:
        queries.update_experiment(session=session, experiment_id=a, status="running")
    with pytest.raises(PromptLabError, match="is running; score it again once it has stopped"):
        rescoring.rescore(a, ["bleu"], db_url=db_url, actor=signed_in_actor("ann@example.org"))


def test_score_text_reports_any_metric_with_corpus_levels(tmp_path, capsys):
    predictions, references = tmp_path / "p.txt", tmp_path / "r.txt"
    predictions.write_text("the cat sat on the mat\nhello there\n", encoding="utf-8")
    references.write_text("the cat sat on a mat\nhello there\n", encoding="utf-8")
    argv = ["score", "--predictions", str(predictions), "--references", str(references)]
    assert cli.main([*argv, "--metric", "bleu,chrf", "--check", "brief=max_words:3"]) == 0
    report = json.loads(capsys.readouterr().out)
    hyps = ["the cat sat on the mat", "hello there"]
    refs = [["the cat sat on a mat", "hello there"]]
    assert report["bleu"]["corpus"] == sacrebleu.corpus_bleu(hyps, refs).score
    assert report["chrf"]["corpus"] == sacrebleu.corpus_chrf(hyps, refs).score
    assert report["check:brief"]["mean"] == 0.5


def test_an_operator_metrics_scores_stay_comparable_after_its_file_is_gone(
    db_url, tmp_path, monkeypatch, capsys
):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "speakers.py").write_text(
        '"""Whether both speakers are named."""\nNEEDS_REFERENCE = False\n\n'
        "def score(prediction, reference, example):\n"
        '    return float("#Person1#" in prediction and "#Person2#" in prediction)\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("PROMPT_LAB_METRICS_DIR", str(folder))
    a, b = stored(db_url, OUTPUTS_A, "a"), stored(db_url, OUTPUTS_B, "b")
    for experiment_id in (a, b):
        rescoring.rescore(experiment_id, ["custom:speakers"], db_url=db_url)
    monkeypatch.delenv("PROMPT_LAB_METRICS_DIR")
    assert cli.main(["--db", db_url, "compare", str(a), str(b), "--metric", "custom:speakers"]) == 0
    out = capsys.readouterr().out
    assert "speakers (custom, no longer offered) 0.000" in out  # A names both in none
    assert "speakers (custom, no longer offered) 0.250" in out  # B in its third answer
    assert "is better than" not in out  # which way is better went with the file
    with pytest.raises(PromptLabError, match="Unknown metric 'custom:speakers'"):
        rescoring.rescore(a, ["custom:speakers"], db_url=db_url)


def test_output_piped_into_a_reader_that_stops_early_is_no_error(monkeypatch):
    """A real pipe whose reading end is closed, as after `| head -n 1`: the first line written
    fails with EPIPE (deterministically, unlike racing a real `head`)."""
    import io
    import os
    import sys

    reading, writing = os.pipe()
    os.close(reading)
    with open(writing, "w", buffering=1) as broken:
        errors = io.StringIO()
        monkeypatch.setattr(sys, "stdout", broken)
        monkeypatch.setattr(sys, "stderr", errors)
        assert cli.main(["metrics"]) == 0
    assert errors.getvalue() == ""


def test_repeats_scored_with_different_metrics_are_still_repeats(db_url):
    from core.generation.settings import GenerationSettings

    seeds = [
        store_experiment(
            db_url, [0.5, 0.4, 0.3], settings=GenerationSettings(do_sample=True, seed=seed)
        )
        for seed in (0, 1)
    ]
    rescoring.rescore(seeds[1], ["chrf"], [parse_check("brief=max_words:3")], db_url=db_url)
    with session_scope(db_url) as session:
        variants = compare.load_variants(session=session, experiment_ids=seeds)
    assert [[v.id for v in group] for group in verdicts.repeat_groups(variants).values()] == [seeds]
    assert compare.differing_keys(variants) == ["settings.seed"]
