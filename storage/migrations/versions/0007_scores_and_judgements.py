"""Scores beyond ROUGE, one row per (experiment, example, metric); people's ratings of outputs;
blind A/B choices between two experiments' outputs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 09:00:00

Three new tables; nothing stored before changes (ROUGE stays in the columns of `results`).

Downgrade: the three tables are dropped, with what they hold.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_LENGTH = 320  # storage.schema.OWNER_LENGTH when this was written


def _to_experiments(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["experiments.id"],
        name=op.f(f"fk_{table}_{column}_experiments"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("example_key", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=120), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _to_experiments("scores", "experiment_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
        sa.UniqueConstraint(
            "experiment_id", "example_key", "metric", name=op.f("uq_scores_experiment_id")
        ),
    )
    op.create_index(op.f("ix_scores_experiment_id"), "scores", ["experiment_id"])
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("example_key", sa.String(length=200), nullable=False),
        sa.Column("rater", sa.String(length=OWNER_LENGTH), nullable=False),
        sa.Column("scale", sa.String(length=10), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _to_experiments("ratings", "experiment_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint(
            "experiment_id", "example_key", "rater", name=op.f("uq_ratings_experiment_id")
        ),
    )
    op.create_index(op.f("ix_ratings_experiment_id"), "ratings", ["experiment_id"])
    op.create_table(
        "preferences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_a", sa.Integer(), nullable=False),
        sa.Column("experiment_b", sa.Integer(), nullable=False),
        sa.Column("example_key", sa.String(length=200), nullable=False),
        sa.Column("rater", sa.String(length=OWNER_LENGTH), nullable=False),
        sa.Column("choice", sa.String(length=10), nullable=False),
        sa.Column("shown_left", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _to_experiments("preferences", "experiment_a"),
        _to_experiments("preferences", "experiment_b"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_preferences")),
        sa.UniqueConstraint(
            "experiment_a",
            "experiment_b",
            "example_key",
            "rater",
            name=op.f("uq_preferences_experiment_a"),
        ),
    )
    for column in ("experiment_a", "experiment_b"):
        op.create_index(op.f(f"ix_preferences_{column}"), "preferences", [column])


def downgrade() -> None:
    for table in ("preferences", "ratings", "scores"):
        op.drop_table(table)
