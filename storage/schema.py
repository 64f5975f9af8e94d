"""The whole store's schema: datasets and examples, prompt designs, the prompt library (named
prompts, their versions and labels), studies, experiments and their per-example results and
scores, people's ratings and blind choices, and who created or deleted what."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints, so that migrations can alter them on SQLite (batch mode) and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATUSES = ("pending", "running", "completed", "interrupted", "failed")
ORIGINS = ("experiment", "playground")  # where an experiment was made: a run or the Playground
# The dataset that inputs typed in the Playground go into: a name no import may take, so that
# it never mixes with a user's dataset (one may well be called "playground").
TYPED_INPUTS = "(typed in the Playground)"
OWNER_LENGTH = 320  # an e-mail address's longest, or a local account's name
PROMPT_NAME_LENGTH = 100
LABEL_LENGTH = 50
METRIC_LENGTH = 120  # a score's key: "chrf", "check:<name>", "custom:<file name>"
RATING_SCALES = ("good_bad", "five")  # good (1) or bad (0); or 1 to 5
CHOICES = ("a", "b", "tie", "both_bad")  # a blind A/B choice, of experiment_a or experiment_b


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class DatasetRecord(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(Text, default="")
    input_column: Mapped[str] = mapped_column(String(200))
    reference_column: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Who made it: a signed-in address or the local account; None from before owners.
    created_by: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))
    examples: Mapped[list[ExampleRecord]] = relationship(
        back_populates="dataset",
        cascade="all, delete-orphan",
        order_by="ExampleRecord.position",
        passive_deletes=True,
    )


class ExampleRecord(Base):
    __tablename__ = "examples"
    __table_args__ = (UniqueConstraint("dataset_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(200))  # the example's id within its dataset
    position: Mapped[int] = mapped_column(Integer)
    input: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    split: Mapped[str | None] = mapped_column(String(50))
    dataset: Mapped[DatasetRecord] = relationship(back_populates="examples")


class PromptDesignRecord(Base):
    """Each distinct design once; experiments also keep a full copy of theirs."""

    __tablename__ = "prompt_designs"

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    design: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Who made it: a signed-in address or the local account; None from before owners.
    created_by: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))


class PromptRecord(Base):
    """A named prompt of the library; its versions are numbered 1, 2, 3…"""

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(PROMPT_NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))


class PromptVersionRecord(Base):
    """One immutable version of a prompt, or (prompt_id NULL, no number) the unnamed version of
    a design that experiments used without naming it: one per design."""

    __tablename__ = "prompt_versions"
    __table_args__ = (
        UniqueConstraint("prompt_id", "version"),
        Index(
            "uq_prompt_versions_unnamed_design",
            "design_id",
            unique=True,
            sqlite_where=text("prompt_id IS NULL"),
            postgresql_where=text("prompt_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    version: Mapped[int | None] = mapped_column(Integer)  # 1, 2, 3… within its prompt
    design_id: Mapped[int] = mapped_column(ForeignKey("prompt_designs.id"), index=True)
    design: Mapped[dict[str, Any]]  # PromptDesign.to_dict()
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # GenerationSettings, if saved
    message: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))


class PromptLabelRecord(Base):
    """A movable name (production, best) for one version of a prompt."""

    __tablename__ = "prompt_labels"
    __table_args__ = (UniqueConstraint("prompt_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(LABEL_LENGTH))
    version_id: Mapped[int] = mapped_column(
        ForeignKey("prompt_versions.id", ondelete="CASCADE"), index=True
    )
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    moved_by: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))


class StudyRecord(Base):
    """The experiments of one sweep, all run on the same examples."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    base_spec: Mapped[dict[str, Any]]
    variations: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Who made it: a signed-in address or the local account; None from before owners.
    created_by: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))
    experiments: Mapped[list[ExperimentRecord]] = relationship(back_populates="study")


class ExperimentRecord(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(300), default="")
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("studies.id", ondelete="SET NULL"), index=True
    )
    dataset_name: Mapped[str] = mapped_column(String(200), index=True)
    split: Mapped[str | None] = mapped_column(String(50))
    example_keys: Mapped[list[Any]]  # exactly the examples evaluated, in order
    design_id: Mapped[int | None] = mapped_column(ForeignKey("prompt_designs.id"))
    # The library version it ran: named if started from one, else its design's unnamed version.
    prompt_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("prompt_versions.id", ondelete="SET NULL"), index=True
    )
    spec: Mapped[dict[str, Any]]  # the whole run spec: enough to run it again
    design: Mapped[dict[str, Any]]
    settings: Mapped[dict[str, Any]]
    model_id: Mapped[str] = mapped_column(String(500), index=True)
    model_revision: Mapped[str | None] = mapped_column(String(200))
    device: Mapped[str | None] = mapped_column(String(50))
    dtype: Mapped[str | None] = mapped_column(String(50))
    seed: Mapped[int] = mapped_column(Integer, default=0)
    library_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    backend: Mapped[str] = mapped_column(String(50), default="local")  # local or served
    # One of ORIGINS: Playground runs are told apart by it, never by their label.
    origin: Mapped[str] = mapped_column(
        String(20), default="experiment", server_default="experiment"
    )
    # The served endpoint's base URL and model name ("" for a local model); never an API key.
    endpoint: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    aggregates: Mapped[dict[str, Any]] = mapped_column(default=dict)  # type -> mean, CI, n
    n_examples: Mapped[int] = mapped_column(Integer, default=0)
    n_done: Mapped[int] = mapped_column(Integer, default=0)
    pid: Mapped[int | None] = mapped_column(Integer)  # of the process running it, to spot kills
    host: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Who made it: a signed-in address or the local account; None from before owners.
    created_by: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    study: Mapped[StudyRecord | None] = relationship(back_populates="experiments")
    results: Mapped[list[ResultRecord]] = relationship(
        back_populates="experiment",
        cascade="all, delete-orphan",
        order_by="ResultRecord.position",
        passive_deletes=True,
    )


class ResultRecord(Base):
    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("experiment_id", "example_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    example_key: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)  # exactly what the model received
    output: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    rouge1: Mapped[float | None] = mapped_column(Float)
    rouge2: Mapped[float | None] = mapped_column(Float)
    rougeL: Mapped[float | None] = mapped_column(Float)  # noqa: N815 - the metric's own name
    rougeLsum: Mapped[float | None] = mapped_column(Float)  # noqa: N815
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    new_tokens: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str] = mapped_column(String(20))  # eos, stop, length or error
    stop_string: Mapped[str | None] = mapped_column(Text)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    shots: Mapped[list[Any]] = mapped_column(default=list)
    dropped_shots: Mapped[list[Any]] = mapped_column(default=list)
    truncated_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    batch_size: Mapped[int] = mapped_column(Integer, default=1)
    batch_index: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # Requests sent for the example (served backend); 1 for rows from before it existed.
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Each answer token's id and probability, when the run asked for them (generation/confidence).
    token_confidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    experiment: Mapped[ExperimentRecord] = relationship(back_populates="results")


class ScoreRecord(Base):
    """One example's score on a metric other than ROUGE (whose four types are columns of
    results): BLEU, chrF, similarity, a check's pass (1) or fail (0), an operator's metric."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("experiment_id", "example_key", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    example_key: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(METRIC_LENGTH))
    value: Mapped[float | None] = mapped_column(Float)  # None: not scored (no reference)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RatingRecord(Base):
    """A person's rating of one output (good/bad, or 1 to 5) with a note; each rater's own."""

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("experiment_id", "example_key", "rater"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    example_key: Mapped[str] = mapped_column(String(200))
    rater: Mapped[str] = mapped_column(String(OWNER_LENGTH))  # the signed-in user
    scale: Mapped[str] = mapped_column(String(10))  # one of RATING_SCALES
    value: Mapped[int] = mapped_column(Integer)  # good 1, bad 0; or 1 to 5
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PreferenceRecord(Base):
    """A blind A/B choice between two experiments' outputs for one example, by one rater;
    experiment_a is the lower id, whichever side it was shown on."""

    __tablename__ = "preferences"
    __table_args__ = (UniqueConstraint("experiment_a", "experiment_b", "example_key", "rater"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_a: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    experiment_b: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    example_key: Mapped[str] = mapped_column(String(200))
    rater: Mapped[str] = mapped_column(String(OWNER_LENGTH))
    choice: Mapped[str] = mapped_column(String(10))  # one of CHOICES
    shown_left: Mapped[int] = mapped_column(Integer)  # the experiment shown on the left
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SearchRecord(Base):
    """A prompt search: what it explores, the three-way split made before anything ran (shot
    pool, selection set, locked test set), each candidate scored on the selection set, and the
    result of the one test-set comparison, the winner against the base."""

    __tablename__ = "searches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The study its candidates' experiments belong to (Compare opens it like a sweep's).
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("studies.id", ondelete="SET NULL"), index=True
    )
    config: Mapped[dict[str, Any]]  # core.search.search.SearchConfig, stored form
    split: Mapped[dict[str, Any]]  # pool, selection and test example ids, and the seed
    # Each candidate in the order tried: number, experiment id, how it was found, its design,
    # its selection-set score (None until scored or when an example failed).
    candidates: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the test-set verdict
    elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)  # over every session it ran
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeletionRecord(Base):
    """One thing deleted, by whom and when: the thing itself is gone, this line stays."""

    __tablename__ = "deletions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # experiment, dataset or prompt
    item_id: Mapped[int | None] = mapped_column(Integer)  # its id when it was stored
    name: Mapped[str] = mapped_column(String(300), default="")  # its label or name
    created_by: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))
    deleted_by: Mapped[str] = mapped_column(String(OWNER_LENGTH))
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
