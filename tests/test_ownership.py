"""Who created what, and who may delete it: created_by on every kind of record, deletions refused
in the store for another's work (admins excepted) and recorded; the local user owns everything,
as before sign-in existed. And the most background runs one user may have going at once."""

import threading

import pytest

from core.datasets.data import Dataset, Example
from core.errors import PromptLabError
from core.policy import local_actor, local_user, signed_in_actor
from core.prompting.design import PRESETS
from core.runs import experiments, jobs, sweeps
from core.runs.experiments import RunSpec
from storage import queries
from storage.db import session_scope
from storage.schema import DatasetRecord, ExperimentRecord, PromptDesignRecord, StudyRecord

pytestmark = pytest.mark.both_databases

ALICE, BOB, ADA = "alice@example.org", "bob@example.org", "ada@example.org"
SPEC = RunSpec(limit=2, design=PRESETS["instruction"])
MINE = Dataset("mine", (Example("1", "hello", "hi"), Example("2", "bye", "ciao")))


@pytest.fixture(autouse=True)
def team(monkeypatch):
    """A team: ada is the operator's admin; no allow-list, no run limit unless a test sets one."""
    monkeypatch.setenv("PROMPT_LAB_ADMINS", ADA)
    monkeypatch.delenv("PROMPT_LAB_MAX_RUNS_PER_USER", raising=False)


def owner(db, kind, **where):
    with session_scope(db) as session:
        (record,) = session.query(kind).filter_by(**where).all()
        return record.created_by


def experiment_ids(db) -> list[int]:
    with session_scope(db) as session:
        return sorted(r.id for r in queries.list_experiments(session=session))


def test_each_kind_of_record_keeps_who_created_it(db):
    alice = signed_in_actor(ALICE)
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=MINE, created_by=alice.name)
        queries.add_example(
            session=session, dataset_name="typed", example=Example("t", "x"), created_by=BOB
        )
    study_id, (first, second) = sweeps.create_sweep(
        sweeps.Sweep(SPEC, {"shots": (0, 1)}), db_url=db, actor=alice
    )
    assert owner(db, DatasetRecord, name="mine") == ALICE
    assert owner(db, DatasetRecord, name="typed") == BOB
    assert owner(db, StudyRecord, id=study_id) == ALICE
    assert owner(db, ExperimentRecord, id=first) == owner(db, ExperimentRecord, id=second) == ALICE
    with session_scope(db) as session:
        designs = {r.created_by for r in session.query(PromptDesignRecord)}
    assert designs == {ALICE}


def test_without_sign_in_the_local_user_creates_and_deletes_anything(db):
    mine = experiments.create(SPEC, db_url=db)
    theirs = experiments.create(SPEC, db_url=db, actor=signed_in_actor(BOB))
    assert owner(db, ExperimentRecord, id=mine) == local_user()
    assert experiments.delete([mine, theirs], db_url=db) == 2  # as before sign-in existed
    with session_scope(db) as session:
        deletions = queries.list_deletions(session=session)
    assert {(d.item_id, d.created_by, d.deleted_by) for d in deletions} == {
        (mine, local_user(), local_user()),
        (theirs, BOB, local_user()),
    }
    assert local_actor().may_change(None)


def test_another_users_experiment_is_refused_with_its_creator_and_stays(db):
    bobs = experiments.create(SPEC, db_url=db, actor=signed_in_actor(BOB))
    alices = experiments.create(SPEC, db_url=db, actor=signed_in_actor(ALICE))
    with pytest.raises(PromptLabError) as refused:
        jobs.delete_experiments([alices, bobs], db_url=db, actor=signed_in_actor(ALICE))
    assert str(refused.value).startswith(
        f"You can delete only what you created: experiment {bobs} was created by {BOB}."
    )
    assert experiment_ids(db) == [bobs, alices]  # all or none: her own stays too
    with session_scope(db) as session:
        assert queries.list_deletions(session=session) == []
    assert jobs.delete_experiments([alices], db_url=db, actor=signed_in_actor(ALICE)) == 1
    assert experiment_ids(db) == [bobs]


def test_an_admin_may_delete_what_others_created_and_it_is_recorded(db):
    bobs = experiments.create(SPEC, db_url=db, actor=signed_in_actor(BOB))
    with session_scope(db) as session:
        queries.update_experiment(session=session, experiment_id=bobs, label="bob's run")
    admin = signed_in_actor(ADA)
    assert admin.admin
    assert experiments.delete([bobs], db_url=db, actor=admin) == 1
    with session_scope(db) as session:
        (deletion,) = queries.list_deletions(session=session)
        assert (deletion.kind, deletion.item_id, deletion.name) == ("experiment", bobs, "bob's run")
        assert (deletion.created_by, deletion.deleted_by) == (BOB, ADA)
        assert deletion.deleted_at is not None


def test_a_record_from_before_owners_is_an_admins_to_delete(db):
    old = experiments.create(SPEC, db_url=db)
    with session_scope(db) as session:
        queries.update_experiment(session=session, experiment_id=old, created_by=None)
    with pytest.raises(PromptLabError, match="before creators were recorded"):
        experiments.delete([old], db_url=db, actor=signed_in_actor(ALICE))
    assert experiments.delete([old], db_url=db, actor=signed_in_actor(ADA)) == 1


def test_another_users_dataset_is_refused_and_an_admin_deletes_it(db):
    with session_scope(db) as session:
        queries.save_dataset(session=session, dataset=MINE, created_by=BOB)
    with pytest.raises(PromptLabError, match=f"dataset 'mine' was created by {BOB}"):
        with session_scope(db) as session:
            queries.delete_dataset(session=session, name="mine", actor=signed_in_actor(ALICE))
    with pytest.raises(PromptLabError, match="was created by"):  # nor replaced by an import
        with session_scope(db) as session:
            queries.save_dataset(
                session=session, dataset=MINE, replace=True, actor=signed_in_actor(ALICE)
            )
    with session_scope(db) as session:
        assert "mine" in queries.list_dataset_names(session=session)
        queries.delete_dataset(session=session, name="mine", actor=signed_in_actor(ADA))
    with session_scope(db) as session:
        (deletion,) = queries.list_deletions(session=session)
        assert (deletion.kind, deletion.name, deletion.deleted_by) == ("dataset", "mine", ADA)
        assert "mine" not in queries.list_dataset_names(session=session)


@pytest.fixture
def held_runs(monkeypatch):
    """Background runs that stay running until the test lets them go."""
    release = threading.Event()

    def execute(experiment_id, **_):
        release.wait(60)  # a guard against a hang only: the test sets it
        return "completed"

    monkeypatch.setattr(jobs.experiments, "execute", execute)
    started: list[jobs.Job] = []
    yield started
    release.set()
    for job in started:
        assert job.wait(60)


def test_a_user_at_the_run_limit_is_refused_another_and_others_are_not(db, monkeypatch, held_runs):
    monkeypatch.setenv("PROMPT_LAB_MAX_RUNS_PER_USER", "2")
    alice, bob = signed_in_actor(ALICE), signed_in_actor(BOB)
    held_runs += [jobs.start_run(SPEC, db_url=db, actor=alice) for _ in range(2)]
    stored = experiment_ids(db)
    with pytest.raises(PromptLabError) as refused:
        jobs.start_sweep(sweeps.Sweep(SPEC, {"shots": (0, 1)}), db_url=db, actor=alice)
    assert "You have 2 runs going" in str(refused.value)
    assert "at most 2 runs at once here (PROMPT_LAB_MAX_RUNS_PER_USER=2)" in str(refused.value)
    with pytest.raises(PromptLabError, match="PROMPT_LAB_MAX_RUNS_PER_USER"):
        jobs.start_rerun(stored[0], db_url=db, actor=alice)
    assert experiment_ids(db) == stored  # refused before anything was stored
    held_runs.append(jobs.start_run(SPEC, db_url=db, actor=bob))
    assert [job.owner for job in jobs.running_for(ALICE)] == [ALICE, ALICE]


def test_without_a_run_limit_runs_are_not_counted(db, held_runs):
    held_runs += [jobs.start_run(SPEC, db_url=db) for _ in range(3)]
    assert len(jobs.running_for(local_user())) == 3
