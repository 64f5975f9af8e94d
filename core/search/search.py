"""A prompt search: created with its split stored before anything runs, then each proposed
design scored as an experiment of one study on the selection set, until the budget is spent;
then the final test (core.search.final). Run again, it resumes: candidates already scored are
read back, not generated, so it goes on exactly where it stopped."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from core.errors import PromptLabError
from core.evaluation import metric_set
from core.generation.settings import GenerationSettings
from core.library import versions
from core.models.loading import ModelRequest
from core.policy import Actor, local_actor
from core.runs import experiments
from core.runs.spec import RunSpec
from core.search import final
from core.search.proposals import Proposal, key, proposals
from core.search.split import split_examples
from core.search.state import Candidate, SearchConfig, SearchState, state_of
from storage import queries, search_queries
from storage.db import session_scope
from storage.schema import utcnow

OnCandidate = Callable[[SearchState], None]
Progress = Callable[[int, int], None]  # (examples done, examples in the whole search)
StopCheck = Callable[[], bool]
MAX_SKIPS = 10_000  # proposals in a row that repeat tried designs: the space is spent


def metric_name(score_key: str) -> str:
    """The metric (RunSpec.metrics) that produces a score key; refused for one a search cannot
    maximise (answer length has no better direction; checks belong to a run's spec)."""
    described = metric_set.info(score_key)
    if described.higher_is_better is None:
        raise PromptLabError(
            f"{described.label} has no better direction, so a search cannot maximise it; "
            "choose rougeL, bleu, chrf, similarity or bertscore."
        )
    for name, metric in metric_set.available().items():
        if score_key in metric.keys:
            return name
    raise PromptLabError(
        f"A search scores candidates on a metric, not on {described.label}; choose rougeL, "
        "bleu, chrf, similarity or bertscore."
    )


def create_search(
    config: SearchConfig, *, db_url: str | None = None, actor: Actor | None = None
) -> int:
    """Store the search, its split and its study, pending; every refusal comes before."""
    base = base_spec(config, db_url=db_url)
    # The exact version (NAME@N), so that a label moved later does not change a resumed search.
    config = replace(config, prompt=base.prompt)
    dataset = experiments.get_dataset(config.dataset, db_url=db_url)
    split = split_examples(
        dataset, seed=config.seed, test_fraction=config.test_fraction, limit=config.limit
    )
    by = (actor or local_actor()).name
    name = f"Search: {config.prompt} on {config.dataset}, {config.metric} (seed {config.seed})"
    with session_scope(db_url) as session:
        study_id = queries.create_study(
            session=session, name=name, base_spec=base.to_dict(), variations={}, created_by=by
        )
        return search_queries.create_search(
            session=session,
            name=name,
            study_id=study_id,
            config=config.to_dict(),
            split=split.to_dict(),
            created_by=by,
        )


def base_spec(config: SearchConfig, *, db_url: str | None = None) -> RunSpec:
    """The run spec every candidate starts from: the base version's design and settings."""
    version = versions.get_version(config.prompt, db_url=db_url)
    return RunSpec(
        dataset=config.dataset,
        split="eval",
        design=version.design,
        settings=version.settings or GenerationSettings(),
        metrics=(metric_name(config.metric),),
        engine=config.engine,
        prompt=version.ref,
        model=ModelRequest(config.model) if config.model else ModelRequest(),
    )


def get_search(search_id: int, *, db_url: str | None = None) -> SearchState:
    with session_scope(db_url) as session:
        record = search_queries.get_search(session=session, search_id=search_id)
        if record is None:
            raise PromptLabError(f"There is no search {search_id}.")
        return state_of(record)


def list_searches(*, db_url: str | None = None) -> list[SearchState]:
    with session_scope(db_url) as session:
        return [state_of(r) for r in search_queries.list_searches(session=session)]


def run_search(
    search_id: int,
    *,
    db_url: str | None = None,
    on_candidate: OnCandidate | None = None,
    on_progress: Progress | None = None,
    should_stop: StopCheck | None = None,
    on_experiment: Callable[[int], None] | None = None,
    on_tokens: Callable[[int], None] | None = None,
    actor: Actor | None = None,
) -> SearchState:
    """Run (or resume) a search to its end, or until `should_stop`; returns where it stands."""
    state = get_search(search_id, db_url=db_url)
    if state.status == "completed":
        raise PromptLabError(f"Search {search_id} is complete; nothing to resume.")
    run = _Run(state, db_url, on_candidate, on_progress, should_stop, on_experiment, actor)
    run.on_tokens = on_tokens  # told the new tokens of each group of answers, as jobs count them
    _save(db_url, search_id, status="running", error=None, finished_at=None)
    try:
        if not run.explore():
            return run.stop("interrupted")
        if not final.test(run):
            return run.stop("interrupted")
        return run.stop("completed")
    except BaseException as exc:
        failed = isinstance(exc, Exception)
        run.stop(
            "failed" if failed else "interrupted",
            experiments.stored_reason(exc) if failed else None,
        )
        raise


class _Run:
    """One session of a search: its state as it changes, its clock and its callbacks."""

    def __init__(self, state, db_url, on_candidate, on_progress, should_stop, on_experiment, actor):
        self.state: SearchState = state
        self.db_url = db_url
        self.on_candidate, self.on_progress = on_candidate, on_progress
        self.should_stop = should_stop or (lambda: False)
        self.on_experiment = on_experiment or (lambda experiment_id: None)
        self.actor = actor
        self.started = time.monotonic()
        self.before_s = state.elapsed_s
        self.spec = base_spec(state.config, db_url=db_url)
        self.sign = 1 if state.higher_is_better else -1
        self.on_tokens: Callable[[int], None] | None = None

    def elapsed_s(self) -> float:
        return self.before_s + time.monotonic() - self.started

    def explore(self) -> bool:
        """Score proposals until the budget is spent; False if stopped first."""
        config, split = self.state.config, self.state.split
        scores: dict[str, float | None] = {}
        stored = {c.number: c for c in self.state.candidates}
        found = proposals(
            self.spec.design,
            split.pool,
            score=lambda d: None if scores.get(key(d)) is None else self.sign * scores[key(d)],
            seed=config.seed,
            instructions=config.instructions,
            max_shots=config.max_shots,
        )
        number, skips = 0, 0
        for proposal in found:
            if key(proposal.design) in scores:
                skips += 1
                if skips > MAX_SKIPS:
                    break
                continue
            skips = 0
            if config.budget is not None and number >= config.budget:
                break
            if number + 1 not in stored and not self._time_for_one_more():
                break
            if self.should_stop():
                return False
            number += 1
            candidate = self._score(number, proposal, stored.get(number))
            if candidate is None:
                return False
            scores[key(proposal.design)] = None if candidate.failed else candidate.score
        return True

    def _time_for_one_more(self) -> bool:
        """With a minutes budget: whether one more candidate and the final test still fit, at
        the pace measured so far (the first one always runs)."""
        minutes = self.state.config.minutes
        if minutes is None or not self.state.candidates:
            return True
        split = self.state.split
        done = len(self.state.candidates) * len(split.selection)
        per_example = self.elapsed_s() / max(done, 1)
        needed = per_example * (len(split.selection) + 2 * len(split.test))
        return self.elapsed_s() + needed <= minutes * 60

    def _score(self, number: int, proposal: Proposal, stored: Candidate | None) -> Candidate | None:
        """The candidate scored on the selection set: read back if it was, resumed if it was
        stopped, else run; None if stopped now."""
        if stored is not None and stored.design != proposal.design.to_dict():
            raise PromptLabError(
                f"Search {self.state.id} cannot resume: its candidate {number} is not the design "
                "this search proposes now (was it changed by hand?). Start a new search."
            )
        if stored is not None and stored.score is not None:
            return stored
        experiment_id = stored.experiment_id if stored else self._create(number, proposal)
        candidate = Candidate(number, experiment_id, proposal.how, proposal.design.to_dict())
        if stored is None:
            self._record(candidate)
        if not self.execute(experiment_id, self.state.split.selection):
            return None
        score, failed = self.mean_score(experiment_id, self.state.split.selection)
        candidate = replace(candidate, score=score, failed=failed)
        self._record(candidate)
        return candidate

    def _create(self, number: int, proposal: Proposal) -> int:
        spec = replace(
            self.spec,
            design=proposal.design,
            label=f"#{number}: {proposal.how}"[:300],
            prompt=self.spec.prompt if proposal.design == self.spec.design else None,
        )
        return self.create(spec, self.state.split.selection)

    def create(self, spec: RunSpec, keys, *, study_id: int | None = None) -> int:
        """An experiment of the candidates' study (or `study_id`) on `keys`, pending."""
        experiment_id = experiments.create(
            spec,
            db_url=self.db_url,
            study_id=study_id or self.state.study_id,
            example_keys=list(keys),
            actor=self.actor,
        )
        self.on_experiment(experiment_id)
        return experiment_id

    def create_study(self, name: str) -> int:
        with session_scope(self.db_url) as session:
            return queries.create_study(
                session=session,
                name=name[:200],
                base_spec=self.spec.to_dict(),
                variations={},
                created_by=(self.actor or local_actor()).name,
            )

    def execute(self, experiment_id: int, keys, *, tested: int = 0) -> bool:
        """Run an experiment to its end (resuming it if it was stopped); False if stopped.
        `tested`: test examples already done, for the progress of the final test."""
        with session_scope(self.db_url) as session:
            queries.mark_stale_runs(session=session)
            status = queries.get_experiment(session=session, experiment_id=experiment_id).status
        if status == "completed":
            return True
        base = self._examples_done() + tested
        status = experiments.execute(
            experiment_id,
            db_url=self.db_url,
            on_progress=lambda done, total: self._progress(base + done),
            should_stop=self.should_stop,
            on_tokens=self.on_tokens,
            reuse=True,
        )
        return status == "completed"

    def mean_score(self, experiment_id: int, keys) -> tuple[float | None, int]:
        """The mean of the search's metric over `keys`, and how many have no score (failed)."""
        with session_scope(self.db_url) as session:
            scored = queries.scores_of(
                session=session, experiment_ids=[experiment_id], metric=self.state.config.metric
            )[experiment_id]
        values = [scored.get(k) for k in keys]
        present = [v for v in values if v is not None]
        failed = len(values) - len(present)
        return (sum(present) / len(present) if present else None), failed

    def _examples_done(self) -> int:
        selection = len(self.state.split.selection)
        return sum(selection for c in self.state.candidates if c.score is not None)

    def _progress(self, done: int) -> None:
        if self.on_progress:
            config, split = self.state.config, self.state.split
            planned = (config.budget or len(self.state.candidates) + 1) * len(split.selection)
            tests = 1 if self.state.result and self.state.result.get("winner") == 1 else 2
            self.on_progress(done, max(done, planned + tests * len(split.test)))

    def _record(self, candidate: Candidate) -> None:
        kept = [c for c in self.state.candidates if c.number != candidate.number]
        ordered = tuple(sorted([*kept, candidate], key=lambda c: c.number))
        self.state = replace(self.state, candidates=ordered, elapsed_s=self.elapsed_s())
        _save(
            self.db_url,
            self.state.id,
            candidates=[c.to_dict() for c in ordered],
            elapsed_s=self.state.elapsed_s,
        )
        if candidate.score is not None and self.on_candidate:
            self.on_candidate(self.state)

    def keep_result(self, result: dict) -> None:
        self.state = replace(self.state, result=result, elapsed_s=self.elapsed_s())
        _save(self.db_url, self.state.id, result=result, elapsed_s=self.state.elapsed_s)

    def stop(self, status: str, error: str | None = None) -> SearchState:
        ended = utcnow() if status in ("completed", "failed") else None
        self.state = replace(self.state, status=status, error=error, elapsed_s=self.elapsed_s())
        _save(
            self.db_url,
            self.state.id,
            status=status,
            error=error,
            elapsed_s=self.state.elapsed_s,
            finished_at=ended,
        )
        return self.state


def _save(db_url: str | None, search_id: int, **fields) -> None:
    with session_scope(db_url) as session:
        search_queries.update_search(session=session, search_id=search_id, **fields)
