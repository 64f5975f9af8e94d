"""experiments.endpoint and results.attempts: which served endpoint ran an experiment, and how
many requests each of its results took

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 09:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("endpoint", sa.String(length=1000), nullable=True))
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): recreating `experiments` in batch mode
    # would drop the table, and with it, through ON DELETE CASCADE, every stored result.
    with op.batch_alter_table("results", recreate="never") as batch:
        batch.drop_column("attempts")
    with op.batch_alter_table("experiments", recreate="never") as batch:
        batch.drop_column("endpoint")
