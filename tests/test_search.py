"""Prompt search on the embedded model and a real SQLite file: the split made and stored before
anything runs, the locked test set generated for the base and the winner only, a stopped
search resumed to the same winner, the winner saved in the library; and the CLI."""

from __future__ import annotations

import pytest

from core.cli import main
from core.datasets.data import load_builtin
from core.errors import PromptLabError
from core.evaluation import compare, verdicts
from core.generation.settings import GenerationSettings
from core.library import versions
from core.prompting.design import PRESETS, PromptDesign
from core.runs import experiments
from core.search import final, search
from core.search.proposals import key, proposals
from core.search.split import split_examples
from core.search.state import SearchConfig
from storage import queries
from storage.db import session_scope

# A base that a summarising design beats on chrF by far: it asks for one word, not a summary.
POOR = PRESETS["instruction"].with_(instruction="Reply with the single word: no.")
SMALL = dict(metric="chrf", budget=5, limit=6, max_shots=1, seed=0)


@pytest.fixture
def spy(monkeypatch):
    """A counting spy around the real generator: the example ids of every prompt it is sent."""
    sent: list[str] = []
    real = experiments.generate_batches

    def counting(loaded, prompts, settings, **kwargs):
        sent.extend(p.example_id for p in prompts)
        yield from real(loaded, prompts, settings, **kwargs)

    monkeypatch.setattr(experiments, "generate_batches", counting)
    return sent


def saved(db, design: PromptDesign = POOR) -> str:
    settings = GenerationSettings(max_new_tokens=8)
    return versions.save_version("summ", design, settings, "the base", db_url=db).ref


def test_the_split_is_three_disjoint_parts_fixed_by_the_seed():
    dataset = load_builtin()
    split = split_examples(dataset, seed=3, test_fraction=0.5)
    assert split.pool == tuple(ex.id for ex in dataset.pool)
    assert len(split.selection) == len(split.test) == 24
    assert not set(split.selection) & set(split.test)
    assert not set(split.pool) & (set(split.selection) | set(split.test))
    assert split == split_examples(dataset, seed=3, test_fraction=0.5)
    assert split.test != split_examples(dataset, seed=4, test_fraction=0.5).test


def test_greedy_forward_selection_keeps_the_shot_with_the_largest_gain():
    """Scores from a rule (a design with chosen shots is worth the sum of their numbers, any
    other 0.5): forward selection takes p4 first, then the best partner p3, then stops."""
    pool = [f"p{i}" for i in range(1, 5)]
    scores: dict[str, float] = {}
    tried = []
    for proposal in proposals(
        PromptDesign(), pool, score=lambda d: scores.get(key(d)), seed=0, max_shots=2
    ):
        design = proposal.design
        value = sum(int(i[1:]) for i in design.shot_ids) if design.selection == "ids" else 0.5
        scores[key(design)] = value
        tried.append(proposal)
        if proposal.how.startswith("the best"):  # the arrangements of the best come next
            break
    greedy = [p.design.shot_ids for p in tried if p.how.startswith("greedy")]
    assert sorted(greedy[:4]) == [(i,) for i in pool]  # every first shot tried alone
    assert sorted(greedy[4:]) == [("p4", "p1"), ("p4", "p2"), ("p4", "p3")]
    assert tried[-1].design.shot_ids == ("p4", "p3")  # the best, reversed next
    assert tried[-1].design.shot_order == "reversed"


def test_a_search_tests_only_the_base_and_the_winner_and_saves_the_winner(db, spy):
    search_id = search.create_search(SearchConfig(prompt=saved(db), **SMALL), db_url=db)
    split = search.get_search(search_id, db_url=db).split
    assert len(split.selection) == len(split.test) == 3
    state = search.run_search(search_id, db_url=db)
    assert state.status == "completed" and len(state.candidates) == 5
    ids = state.result["test_experiments"]
    winner = state.best()
    assert winner.number != 1, "the one-word base should lose to a summarising design"
    # Every candidate ran on the selection set and nothing else ...
    for candidate in state.candidates:
        with session_scope(db) as session:
            record = queries.get_experiment(session=session, experiment_id=candidate.experiment_id)
            assert record.example_keys == list(split.selection)
            assert record.study_id == state.study_id
    # ... and the test set was generated once for each of the final two designs only.
    tested = [k for k in spy if k in split.test]
    assert sorted(tested) == sorted(list(split.test) * 2)
    with session_scope(db) as session:
        designs = [
            queries.get_experiment(session=session, experiment_id=ids[role]).design
            for role in ("base", "winner")
        ]
    assert designs == [state.candidates[0].design, winner.design]
    # The test runs are a study of their own, so Compare sets the candidates side by side.
    with session_scope(db) as session:
        studies = {
            queries.get_experiment(session=session, experiment_id=i).study_id for i in ids.values()
        }
        assert studies == {state.result["test_study"]} != {state.study_id}
        candidates = compare.load_variants(
            session=session, experiment_ids=[c.experiment_id for c in state.candidates]
        )
        found, _ = verdicts.paired_verdicts(session=session, variants=candidates, metric="chrf")
        assert len(found) == 10  # every pair of the 5 candidates
    result = state.result
    assert result["selection"]["winner"] == winner.score
    assert result["sentence"].startswith("On 3 locked test examples: ")
    summary = final.summary(state)
    assert "optimism of selecting" in summary and f"Saved as {result['version']}" in summary
    version = versions.get_version(result["version"], db_url=db)
    assert version.design.to_dict() == winner.design
    assert version.message.startswith(f"Found by search {search_id}")
    assert state.curve()[-1][1] == winner.score
    with pytest.raises(PromptLabError, match="complete; nothing to resume"):
        search.run_search(search_id, db_url=db)


def test_a_stopped_search_resumes_to_the_same_winner_without_redoing_candidates(db, spy):
    config = SearchConfig(prompt=saved(db), **SMALL)
    whole = search.run_search(search.create_search(config, db_url=db), db_url=db)
    stopped_id = search.create_search(config, db_url=db)
    scored = []
    stopped = search.run_search(
        stopped_id,
        db_url=db,
        on_candidate=lambda s: scored.append(s.candidates[-1].number),
        should_stop=lambda: len(scored) >= 2,
    )
    assert stopped.status == "interrupted" and stopped.result is None
    assert [c.number for c in stopped.candidates if c.score is not None] == [1, 2]
    spy.clear()
    resumed = search.run_search(stopped_id, db_url=db)
    assert resumed.status == "completed"
    assert [c.design for c in resumed.candidates] == [c.design for c in whole.candidates]
    assert resumed.best().design == whole.best().design
    assert resumed.result["test"] == whole.result["test"]
    # Candidates 1 and 2 were read back, not generated again: what was sent after the resume
    # is exactly the rows generated (not copied) for the later candidates and the test.
    later = [c.experiment_id for c in resumed.candidates[2:]]
    later += sorted(set(resumed.result["test_experiments"].values()))
    with session_scope(db) as session:
        rows = [r for i in later for r in queries.results_of(session=session, experiment_id=i)]
    assert len(spy) == sum(1 for r in rows if r.attempts >= 1) > 0


def test_a_search_is_refused_with_a_sentence_before_anything_is_stored(db):
    ref = saved(db)
    with pytest.raises(PromptLabError, match="no better direction"):
        SearchConfig(prompt=ref, metric="words")
    with pytest.raises(PromptLabError, match="Unknown score"):
        SearchConfig(prompt=ref, metric="accuracy")
    with pytest.raises(PromptLabError, match="budget is 1 to"):
        SearchConfig(prompt=ref, budget=0)
    with pytest.raises(PromptLabError, match="a number of designs, or minutes"):
        SearchConfig(prompt=ref, budget=None)
    with pytest.raises(PromptLabError, match="at least 2 examples"):
        search.create_search(SearchConfig(prompt=ref, limit=4, test_fraction=0.9), db_url=db)
    assert search.list_searches(db_url=db) == []


def test_the_cli_runs_a_search_and_lists_it(db, capsys):
    saved(db)
    args = ["--db", db, "search", "--prompt", "summ@1", "--budget", "3", "--limit", "6"]
    assert main([*args, "--max-shots", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("search 1 (study 1): 16 pool, 3 selection and 3 locked test examples")
    assert "  #3 " in out and "winner: #" in out and "On 3 locked test examples" in out
    assert main(["--db", db, "searches"]) == 0
    assert capsys.readouterr().out.startswith("1  completed   3 candidates, best ")
    assert main(["--db", db, "search", "--resume", "1"]) == 1
    assert "is complete" in capsys.readouterr().err
    assert main(["--db", db, "search", "--metric", "chrf"]) == 1
    assert capsys.readouterr().err.startswith("error: Name the base prompt with --prompt")
