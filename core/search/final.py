"""The end of a search: the base and the winner, and only they, generated on the locked test
set; their paired comparison there beside the winner's selection-set score (the gap between
the two is the optimism of selecting); the winner saved in the prompt library."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from core.errors import PromptLabError
from core.evaluation import stats, verdicts
from core.evaluation.wording import format_score, metric_label
from core.library import versions
from core.library.refs import MESSAGE_LENGTH, parse_ref
from core.prompting.design import PromptDesign
from core.search.state import Candidate, SearchState
from storage import queries
from storage.db import session_scope

# Each function takes `run`, the search session (core.search.search's _Run): its state, spec,
# store and callbacks; not imported here, since that module calls this one.


def test(run) -> bool:
    """Generate the base and the winner on the test set, compare them and save the winner;
    False if stopped first (what finished is kept, and a resume goes on from there)."""
    state = run.state
    winner = state.best()
    if winner is None:
        raise PromptLabError(
            "No candidate was scored on every selection example, so there is no winner to test."
        )
    base = state.candidates[0]
    result: dict[str, Any] = dict(state.result or {})
    result.setdefault("winner", winner.number)
    ids = dict(result.get("test_experiments") or {})
    for role, candidate in (("base", base), ("winner", winner)):
        if role == "winner" and winner.number == base.number:
            ids["winner"] = ids["base"]
            break
        if role not in ids:
            if "test_study" not in result:  # its own: Compare sets a study's runs side by side
                result["test_study"] = run.create_study(f"{state.name}: the final test")
            spec = _test_spec(run, candidate, role)
            ids[role] = run.create(spec, state.split.test, study_id=result["test_study"])
            run.keep_result(result | {"test_experiments": ids})
        done = len(state.split.test) if role == "winner" else 0
        if not run.execute(ids[role], state.split.test, tested=done):
            return False
    run.keep_result(result | {"test_experiments": ids} | _verdict(run, base, winner, ids))
    if "version" not in run.state.result:
        run.keep_result(run.state.result | _saved(run, base, winner))
    return True


def _test_spec(run, candidate: Candidate, role: str):
    design = PromptDesign.from_dict(candidate.design)
    return replace(
        run.spec,
        design=design,
        label=f"test: the {role} (#{candidate.number}: {candidate.how})"[:300],
        prompt=run.spec.prompt if design == run.spec.design else None,
    )


def _verdict(run, base: Candidate, winner: Candidate, ids: dict) -> dict[str, Any]:
    """The paired comparison on the test set, as numbers and as one sentence."""
    state, metric = run.state, run.state.config.metric
    test_base, _ = run.mean_score(ids["base"], state.split.test)
    test_winner, _ = run.mean_score(ids["winner"], state.split.test)
    numbers = {
        "selection": {"base": base.score, "winner": winner.score},
        "test": {"base": test_base, "winner": test_winner},
        "n_selection": len(state.split.selection),
        "n_test": len(state.split.test),
        "candidates": len(state.candidates),
    }
    if winner.number == base.number:
        numbers["sentence"] = (
            f"No candidate scored higher than the base on the selection set; the base stays "
            f"(its {metric_label(metric)} on the {len(state.split.test)} test examples is "
            f"{format_score(test_base)})."
        )
        return numbers
    with session_scope(run.db_url) as session:
        scored = queries.scores_of(
            session=session, experiment_ids=[ids["base"], ids["winner"]], metric=metric
        )
    keys = [k for k in state.split.test if all(scored[i].get(k) is not None for i in ids.values())]
    if len(keys) < 2:
        numbers["sentence"] = "Too few test examples were scored for a paired comparison."
        return numbers
    found = stats.compare_pair(
        [scored[ids["base"]][k] for k in keys],
        [scored[ids["winner"]][k] for k in keys],
        metric=metric,
        name_a="the base",
        name_b="the winner",
        seed=state.config.seed,
        **verdicts.direction(metric),
    )
    numbers |= {
        "diff": found.diff,
        "ci": [found.ci_low, found.ci_high],
        "p": found.p,
        "reliable": found.reliable,
        "n_compared": found.n,
        "sentence": f"On {found.n} locked test examples: {found.verdict()}",
    }
    return numbers


def _saved(run, base: Candidate, winner: Candidate) -> dict[str, Any]:
    """The winner as a new version of the library, with how it was found; none for the base."""
    if winner.number == base.number:
        return {"version": None}
    state = run.state
    name = state.config.save_as or parse_ref(state.config.prompt).name
    message = message_for(state, winner)
    try:
        version = versions.save_version(
            name,
            PromptDesign.from_dict(winner.design),
            run.spec.settings,
            message[:MESSAGE_LENGTH],
            db_url=run.db_url,
            actor=run.actor,
        )
    except PromptLabError as exc:
        return {"version": None, "version_note": str(exc)}
    return {"version": version.ref}


def message_for(state: SearchState, winner: Candidate) -> str:
    result, label = state.result or {}, metric_label(state.config.metric)
    return (
        f"Found by search {state.id} (study {state.study_id}, seed {state.config.seed}): "
        f"candidate {winner.number} of {len(state.candidates)}, {winner.how}; {label} "
        f"{format_score(winner.score)} on {len(state.split.selection)} selection examples of "
        f"'{state.config.dataset}', from {state.config.prompt}. {result.get('sentence', '')}"
    ).strip()


def summary(state: SearchState) -> str:
    """The result as a short paragraph: the test verdict, beside the selection-set score."""
    result = state.result or {}
    if "sentence" not in result:
        return ""
    label = metric_label(state.config.metric)
    chosen, tested = result["selection"]["winner"], result["test"]["winner"]
    gap = chosen - tested if chosen is not None and tested is not None else None
    text = result["sentence"]
    if result["winner"] != 1 and gap is not None:
        text += (
            f" On the selection set the winner scored {format_score(chosen)} ({label}); on the "
            f"test set {format_score(tested)}: the optimism of selecting is "
            f"{format_score(gap, True)}."
        )
    if result.get("version"):
        text += f" Saved as {result['version']}."
    elif result.get("version_note"):
        text += f" Not saved: {result['version_note']}"
    return text
