"""Background runs: experiments and sweeps executed in a thread of the app's process, with
progress that any page or session can read, a cancel that keeps what is finished, and at most
the operator's number going at once for one user."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from core import policy
from core.errors import PromptLabError
from core.policy import Actor, local_actor
from core.runs import experiments, sweeps
from storage import queries
from storage.db import session_scope

log = logging.getLogger("prompt_lab.jobs")
_ids = itertools.count(1)
_jobs: dict[int, Job] = {}
_lock = threading.Lock()


@dataclass
class Job:
    """One run or sweep in progress; counters are written by its thread and read by pages."""

    id: int
    title: str
    experiment_ids: list[int]
    total: int  # examples across all its experiments
    done: int = 0
    done_at_start: int = 0  # finished before this job began (a resume), not counted for speed
    current: int | None = None  # the experiment running now
    status: str = "running"  # running, completed, cancelled, failed
    error: str | None = None
    study_id: int | None = None
    owner: str = ""  # who started it (Actor.name): the runs-per-user limit counts by it
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self.status != "running"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job's thread has ended; whether it did within `timeout` seconds."""
        return self._ended.wait(timeout)

    def elapsed_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def remaining_s(self) -> float | None:
        """Estimated from this job's own pace; None until one example has finished."""
        fresh = self.done - self.done_at_start
        if self.finished or fresh <= 0:
            return None
        return self.elapsed_s() / fresh * (self.total - self.done)

    def cancel(self, actor: Actor | None = None) -> None:
        """Stop after the batch in progress; its results and everything before are kept. With an
        actor, only the one who started it (or an admin) may; None is the process itself."""
        if actor is not None and not actor.may_change(self.owner or None):
            raise PromptLabError(
                f"You can cancel only the runs you started: {self.title} was started by "
                f"{self.owner or 'someone else'}. An admin ({policy.VARIABLES['admins']}) can "
                "cancel it."
            )
        self._cancel.set()

    @property
    def cancelling(self) -> bool:
        return self._cancel.is_set() and not self.finished


def start_run(
    spec: experiments.RunSpec, *, db_url: str | None = None, actor: Actor | None = None
) -> Job:
    """Create the experiment now (so a bad spec is refused at once) and run it in the background."""
    actor = _with_room(actor)
    experiment_id = experiments.create(spec, db_url=db_url, actor=actor)
    return _launch(spec.label or "run", [experiment_id], db_url, actor)


def start_sweep(
    sweep: sweeps.Sweep,
    *,
    db_url: str | None = None,
    actor: Actor | None = None,
    origin: str = "experiment",  # or "playground" (storage.schema.ORIGINS)
    example_keys: Sequence[str] | None = None,  # None: the base spec's slice of its dataset
) -> Job:
    """Create the study and its experiments now, then run them one after another."""
    actor = _with_room(actor)
    study_id, ids = sweeps.create_sweep(
        sweep, db_url=db_url, actor=actor, origin=origin, example_keys=example_keys
    )
    title = sweep.name or f"Study {study_id} ({' × '.join(sweep.variations) or 'one run'})"
    return _launch(title, ids, db_url, actor, study_id=study_id)


def start_resume(
    experiment_ids: Sequence[int], *, db_url: str | None = None, actor: Actor | None = None
) -> Job:
    """Finish stored experiments that are pending, interrupted or failed."""
    actor = _with_room(actor)
    with session_scope(db_url) as session:
        queries.mark_stale_runs(session=session)
        for experiment_id in experiment_ids:
            status = queries.get_experiment(session=session, experiment_id=experiment_id).status
            if status in ("completed", "running"):
                raise PromptLabError(f"Experiment {experiment_id} is {status}; nothing to resume.")
    title = f"resume {', '.join(map(str, experiment_ids))}"
    return _launch(title, list(experiment_ids), db_url, actor)


def start_retry(
    experiment_ids: Sequence[int], *, db_url: str | None = None, actor: Actor | None = None
) -> Job:
    """Run the failed examples of stored experiments again (and any never reached)."""
    actor = _with_room(actor)
    with session_scope(db_url) as session:  # one transaction: a refusal forgets nothing
        queries.mark_stale_runs(session=session)
        todo = [
            i for i in experiment_ids if experiments.prepare_retry(session=session, experiment_id=i)
        ]
    if not todo:
        raise PromptLabError("The selected experiments have no failed examples to retry.")
    return _launch(f"retry failed of {', '.join(map(str, todo))}", todo, db_url, actor)


def start_rerun(
    experiment_id: int, *, db_url: str | None = None, actor: Actor | None = None
) -> Job:
    """Run a stored experiment again, as a new experiment on the same examples (`actor`'s)."""
    actor = _with_room(actor)
    new_id = experiments.copy(experiment_id, db_url=db_url, actor=actor)
    return _launch(f"re-run of {experiment_id}", [new_id], db_url, actor)


def delete_experiments(
    experiment_ids: Sequence[int], *, db_url: str | None = None, actor: Actor | None = None
) -> int:
    """Delete stored experiments; one that is running, or waits in a run in progress in this
    process, is refused with a message, and nothing is deleted; so is one `actor` (None: the
    local user) may not delete."""
    busy = {i for job in active() for i in job.experiment_ids}
    return experiments.delete(experiment_ids, db_url=db_url, busy=busy, actor=actor)


def running_for(user: str) -> list[Job]:
    """The jobs `user` started that are still running."""
    return [job for job in active() if job.owner == user]


def _with_room(actor: Actor | None) -> Actor:
    """The actor (None: the local user), refused if they already have as many runs going as
    the operator allows one user (PROMPT_LAB_MAX_RUNS_PER_USER); checked before anything is
    stored, and again as the run is registered."""
    actor = actor or local_actor()
    _refuse_over_limit(actor.name, len(running_for(actor.name)))
    return actor


def _refuse_over_limit(user: str, going: int) -> None:
    limit = policy.current().max_runs_per_user
    if limit and going >= limit:
        runs = "run" if limit == 1 else "runs"
        raise PromptLabError(
            f"You have {going} {'run' if going == 1 else 'runs'} going, and one person may "
            f"have at most {limit} {runs} at once here ({policy.VARIABLES['max_runs_per_user']}"
            f"={limit}): wait for one to finish, or cancel one, then start again."
        )


def get(job_id: int) -> Job | None:
    return _jobs.get(job_id)


def active() -> list[Job]:
    """Jobs still running, oldest first."""
    with _lock:
        return [job for job in _jobs.values() if not job.finished]


def _launch(
    title: str, ids: list[int], db_url: str | None, actor: Actor, *, study_id: int | None = None
) -> Job:
    with session_scope(db_url) as session:
        records = [queries.get_experiment(session=session, experiment_id=i) for i in ids]
        total = sum(r.n_examples for r in records)
        done = sum(len(queries.finished_keys(session=session, experiment_id=i)) for i in ids)
    job = Job(next(_ids), title, ids, total, done, done, study_id=study_id, owner=actor.name)
    with _lock:  # two clicks at once: only one of them gets the last place
        going = sum(1 for j in _jobs.values() if not j.finished and j.owner == actor.name)
        _refuse_over_limit(actor.name, going)
        _jobs[job.id] = job
    worker = threading.Thread(target=_work, args=(job, db_url), name=f"job-{job.id}", daemon=True)
    worker.start()
    return job


def _work(job: Job, db_url: str | None) -> None:
    finished_before = 0  # examples of the experiments already run by this job
    try:
        for experiment_id in job.experiment_ids:
            if job._cancel.is_set():
                break
            job.current = experiment_id
            status = experiments.execute(
                experiment_id,
                db_url=db_url,
                on_progress=_progress(job, finished_before),
                should_stop=job._cancel.is_set,
            )
            if status != "completed":
                break
            with session_scope(db_url) as session:
                finished_before += queries.get_experiment(
                    session=session, experiment_id=experiment_id
                ).n_examples
        job.status = "cancelled" if job._cancel.is_set() else "completed"
    except PromptLabError as exc:
        job.status, job.error = "failed", str(exc)
    except Exception:
        log.exception("background job %s failed", job.id)
        job.status = "failed"
        job.error = "Something went wrong inside Prompt Lab; the details are in the app's log."
    finally:
        job.current, job.ended = None, time.monotonic()
        job._ended.set()


def _progress(job: Job, before: int) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        job.done = before + done

    return update
