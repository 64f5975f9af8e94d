"""People's judgement of outputs: each rater's own rating of one output (good/bad, or 1 to 5,
with a note), and blind A/B choices between two experiments' outputs for one example."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from core.errors import PromptLabError
from storage.refusals import refuse_too_long
from storage.schema import (
    CHOICES,
    RATING_SCALES,
    DatasetRecord,
    ExampleRecord,
    ExperimentRecord,
    PreferenceRecord,
    RatingRecord,
    ResultRecord,
    utcnow,
)

NOTE_LENGTH = 2000  # a sentence or two on what is wrong; longer belongs in an issue
SCALE_VALUES = {"good_bad": (0, 1), "five": (1, 2, 3, 4, 5)}
SCALE_WORDS = {"good_bad": "1 (good) or 0 (bad)", "five": "a whole number from 1 to 5"}


@dataclass(frozen=True)
class Rating:
    """One rater's rating of one experiment's output for one example."""

    experiment_id: int
    example_key: str
    rater: str
    scale: str  # one of RATING_SCALES
    value: int  # good 1, bad 0; or 1 to 5
    note: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Preference:
    """One rater's blind choice between two experiments' outputs for one example; a and b are
    the lower and the higher id, whichever side each was shown on."""

    experiment_a: int
    experiment_b: int
    example_key: str
    rater: str
    choice: str  # one of CHOICES, of experiment_a or experiment_b
    shown_left: int
    created_at: datetime

    @property
    def winner(self) -> int | None:
        """The id of the experiment chosen as better; None for a tie or both bad."""
        return {"a": self.experiment_a, "b": self.experiment_b}.get(self.choice)


@dataclass(frozen=True)
class PairExample:
    """One example both experiments of a pair have an output for, as a rater judges it."""

    key: str
    input: str
    reference: str
    output_a: str
    output_b: str


# Ratings ---------------------------------------------------------------------------------------


def rate_output(
    *,
    session: Session,
    experiment_id: int,
    example_key: str,
    rater: str,
    scale: str,
    value: int,
    note: str = "",
) -> Rating:
    """Store `rater`'s rating of one output, replacing their own earlier one (not anyone
    else's); refused with a sentence for a scale, value or note that does not fit."""
    _check_rating(scale, value, note)
    _require_rater(rater)
    _require_results(session, [experiment_id], example_key)
    record = session.scalar(
        select(RatingRecord).where(
            RatingRecord.experiment_id == experiment_id,
            RatingRecord.example_key == example_key,
            RatingRecord.rater == rater,
        )
    )
    if record is None:
        record = RatingRecord(experiment_id=experiment_id, example_key=example_key, rater=rater)
        session.add(record)
    else:
        record.updated_at = utcnow()
    record.scale, record.value, record.note = scale, int(value), note
    session.flush()
    return _rating(record)


def ratings_of(
    *,
    session: Session,
    experiment_ids: Sequence[int],
    rater: str | None = None,
    example_key: str | None = None,
) -> list[Rating]:
    """The ratings of these experiments' outputs (only one rater's, or of one example, if
    given), by experiment, then in example order, then by rater."""
    ids = list(dict.fromkeys(int(i) for i in experiment_ids))
    if not ids:
        return []
    query = (
        select(RatingRecord)
        .outerjoin(
            ResultRecord,
            (ResultRecord.experiment_id == RatingRecord.experiment_id)
            & (ResultRecord.example_key == RatingRecord.example_key),
        )
        .where(RatingRecord.experiment_id.in_(ids))
        .order_by(RatingRecord.experiment_id, ResultRecord.position, RatingRecord.rater)
    )
    if rater is not None:
        query = query.where(RatingRecord.rater == rater)
    if example_key is not None:
        query = query.where(RatingRecord.example_key == example_key)
    return [_rating(record) for record in session.scalars(query)]


def remove_rating(*, session: Session, experiment_id: int, example_key: str, rater: str) -> bool:
    """Remove `rater`'s own rating of one output; whether there was one."""
    removed = session.execute(
        delete(RatingRecord).where(
            RatingRecord.experiment_id == experiment_id,
            RatingRecord.example_key == example_key,
            RatingRecord.rater == rater,
        )
    )
    return bool(removed.rowcount)


# Blind choices ---------------------------------------------------------------------------------


def choose(
    *,
    session: Session,
    experiment_a: int,
    experiment_b: int,
    example_key: str,
    rater: str,
    choice: str,
    shown_left: int,
) -> Preference:
    """Store `rater`'s blind choice for one example, `choice` being of experiment_a or
    experiment_b as given; kept with the lower id as a (the choice swapped to match), and
    replacing the rater's own earlier choice for that example of the pair."""
    if choice not in CHOICES:
        raise PromptLabError(f"A blind choice is one of {', '.join(CHOICES)}; got '{choice}'.")
    if experiment_a == experiment_b:
        raise PromptLabError(
            f"A blind choice is between two different experiments; got {experiment_a} twice."
        )
    if shown_left not in (experiment_a, experiment_b):
        raise PromptLabError(
            f"The experiment shown on the left must be {experiment_a} or {experiment_b}; "
            f"got {shown_left}."
        )
    _require_rater(rater)
    if experiment_a > experiment_b:
        experiment_a, experiment_b = experiment_b, experiment_a
        choice = {"a": "b", "b": "a"}.get(choice, choice)
    _require_results(session, [experiment_a, experiment_b], example_key)
    record = session.scalar(
        select(PreferenceRecord).where(
            PreferenceRecord.experiment_a == experiment_a,
            PreferenceRecord.experiment_b == experiment_b,
            PreferenceRecord.example_key == example_key,
            PreferenceRecord.rater == rater,
        )
    )
    if record is None:
        record = PreferenceRecord(
            experiment_a=experiment_a,
            experiment_b=experiment_b,
            example_key=example_key,
            rater=rater,
        )
        session.add(record)
    else:  # the time is that of the choice the row holds
        record.created_at = utcnow()
    record.choice, record.shown_left = choice, shown_left
    session.flush()
    return _preference(record)


def choices_of(
    *,
    session: Session,
    pair: tuple[int, int] | None = None,
    experiment_ids: Sequence[int] | None = None,
    rater: str | None = None,
) -> list[Preference]:
    """Blind choices: of one pair (in either order), or those involving any of
    `experiment_ids`, or all; one rater's only if given. By pair, then rater, then time."""
    p = PreferenceRecord
    query = select(p).order_by(p.experiment_a, p.experiment_b, p.rater, p.id)
    if pair is not None:
        low, high = sorted(int(i) for i in pair)
        query = query.where(p.experiment_a == low, p.experiment_b == high)
    if experiment_ids is not None:
        ids = list(dict.fromkeys(int(i) for i in experiment_ids))
        query = query.where(or_(p.experiment_a.in_(ids), p.experiment_b.in_(ids)))
    if rater is not None:
        query = query.where(p.rater == rater)
    return [_preference(record) for record in session.scalars(query)]


def pair_examples(*, session: Session, experiment_a: int, experiment_b: int) -> list[PairExample]:
    """The examples both experiments have an output for (failed ones left out), in the first
    one's order, with input and reference; refused for experiments of different datasets."""
    records = {i: _experiment(session, i) for i in (experiment_a, experiment_b)}
    first, second = records[experiment_a], records[experiment_b]
    if first.dataset_name != second.dataset_name:
        raise PromptLabError(
            f"Experiments {experiment_a} and {experiment_b} ran on different datasets "
            f"('{first.dataset_name}' and '{second.dataset_name}'), so their outputs for one "
            "example cannot be judged against each other."
        )
    outputs = {i: _outputs(session, i) for i in records}
    keys = [k for k in outputs[experiment_a] if k in outputs[experiment_b]]
    inputs = dict(
        session.execute(
            select(ExampleRecord.key, ExampleRecord.input)
            .join(DatasetRecord)
            .where(DatasetRecord.name == first.dataset_name, ExampleRecord.key.in_(keys))
        ).all()
    )
    return [
        PairExample(
            key=k,
            input=inputs.get(k, ""),
            reference=outputs[experiment_a][k][1] or "",
            output_a=outputs[experiment_a][k][0],
            output_b=outputs[experiment_b][k][0],
        )
        for k in keys
    ]


# Helpers ---------------------------------------------------------------------------------------


def _check_rating(scale: str, value: int, note: str) -> None:
    if scale not in RATING_SCALES:
        raise PromptLabError(
            f"A rating's scale is one of {', '.join(RATING_SCALES)}; got '{scale}'."
        )
    if isinstance(value, bool) or not isinstance(value, int) or value not in SCALE_VALUES[scale]:
        raise PromptLabError(f"A {scale} rating is {SCALE_WORDS[scale]}; got {value!r}.")
    if not isinstance(note, str) or len(note) > NOTE_LENGTH:
        shown = len(note) if isinstance(note, str) else type(note).__name__
        raise PromptLabError(f"A note holds at most {NOTE_LENGTH} characters; got {shown}.")


def _require_rater(rater: str) -> None:
    if not isinstance(rater, str) or not rater.strip():
        raise PromptLabError("A rating or choice needs the rater's name; got none.")
    refuse_too_long(RatingRecord, {"rater": rater})


def _require_results(session: Session, experiment_ids: Sequence[int], example_key: str) -> None:
    """Each experiment exists and has a result for the example."""
    refuse_too_long(ResultRecord, {"example_key": example_key})
    for experiment_id in experiment_ids:
        _experiment(session, experiment_id)
        found = session.scalar(
            select(ResultRecord.id).where(
                ResultRecord.experiment_id == experiment_id,
                ResultRecord.example_key == example_key,
            )
        )
        if found is None:
            raise PromptLabError(
                f"Experiment {experiment_id} has no output for example '{example_key}' to judge."
            )


def _experiment(session: Session, experiment_id: int) -> ExperimentRecord:
    record = session.get(ExperimentRecord, experiment_id)
    if record is None:
        raise PromptLabError(f"There is no experiment {experiment_id}.")
    return record


def _outputs(session: Session, experiment_id: int) -> dict[str, tuple[str, str | None]]:
    query = (
        select(ResultRecord.example_key, ResultRecord.output, ResultRecord.reference)
        .where(ResultRecord.experiment_id == experiment_id, ResultRecord.error.is_(None))
        .order_by(ResultRecord.position)
    )
    return {key: (output, reference) for key, output, reference in session.execute(query)}


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes, which were stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rating(record: RatingRecord) -> Rating:
    return Rating(
        experiment_id=record.experiment_id,
        example_key=record.example_key,
        rater=record.rater,
        scale=record.scale,
        value=record.value,
        note=record.note or "",
        created_at=_aware(record.created_at),
        updated_at=_aware(record.updated_at),
    )


def _preference(record: PreferenceRecord) -> Preference:
    return Preference(
        experiment_a=record.experiment_a,
        experiment_b=record.experiment_b,
        example_key=record.example_key,
        rater=record.rater,
        choice=record.choice,
        shown_left=record.shown_left,
        created_at=_aware(record.created_at),
    )
