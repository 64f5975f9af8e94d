"""Searches as background jobs: progress, the current candidate's experiment and its live
throughput for the jobs panel, a cancel that keeps what is finished, and a resume."""

from __future__ import annotations

from core.errors import PromptLabError
from core.policy import Actor
from core.reporting import speed
from core.runs import jobs
from core.search import search
from core.search.state import SearchConfig
from storage import queries
from storage.db import session_scope


def start_search(
    config: SearchConfig, *, db_url: str | None = None, actor: Actor | None = None
) -> jobs.Job:
    """Create the search now (so a bad one is refused at once), then run it in the background."""
    actor = jobs.room_for(actor)
    search_id = search.create_search(config, db_url=db_url, actor=actor)
    return _launch(search_id, db_url, actor)


def start_resume(
    search_id: int, *, db_url: str | None = None, actor: Actor | None = None
) -> jobs.Job:
    """Go on with a search that was cancelled, interrupted or failed."""
    actor = jobs.room_for(actor)
    state = search.get_search(search_id, db_url=db_url)
    if state.status == "completed":
        raise PromptLabError(f"Search {search_id} is complete; nothing to resume.")
    if any(job.search_id == search_id for job in jobs.active()):
        raise PromptLabError(f"Search {search_id} is running already.")
    return _launch(search_id, db_url, actor)


def _launch(search_id: int, db_url: str | None, actor: Actor) -> jobs.Job:
    state = search.get_search(search_id, db_url=db_url)
    ids = [c.experiment_id for c in state.candidates]

    def work(job: jobs.Job) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        def experiment(experiment_id: int) -> None:
            job.experiment_ids.append(experiment_id)
            job.current = experiment_id
            with session_scope(db_url) as session:
                record = queries.get_experiment(session=session, experiment_id=experiment_id)
                job.engine = speed.engine_label(record.backend, record.device, record.endpoint)

        ended = search.run_search(
            search_id,
            db_url=db_url,
            on_progress=progress,
            should_stop=job.cancel_requested,
            on_tokens=lambda n: jobs.count_tokens(job, n),
            on_experiment=experiment,
            actor=actor,
        )
        job.status = "completed" if ended.status == "completed" else "cancelled"

    return jobs.launch_task(
        f"Search {search_id}",
        work,
        actor=actor,
        total=0,
        experiment_ids=ids,
        study_id=state.study_id,
        search_id=search_id,
    )
