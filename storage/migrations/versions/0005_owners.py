"""Owners: who created each dataset, prompt design, study and experiment (`created_by`), and a
`deletions` table of what was deleted, by whom and when

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00

Rows stored before this migration have no creator (NULL): on a shared app only an admin
(PROMPT_LAB_ADMINS) may delete them; a single local user may, as before.

Downgrade: the deletions table and the four columns are dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNED = ("datasets", "prompt_designs", "studies", "experiments")
OWNER_LENGTH = 320  # storage.schema.OWNER_LENGTH when this was written


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN: recreating a table would cascade to its children.
    for table in OWNED:
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.add_column(sa.Column("created_by", sa.String(length=OWNER_LENGTH)))
    op.create_table(
        "deletions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("created_by", sa.String(length=OWNER_LENGTH), nullable=True),
        sa.Column("deleted_by", sa.String(length=OWNER_LENGTH), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletions")),
    )


def downgrade() -> None:
    op.drop_table("deletions")
    for table in reversed(OWNED):
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.drop_column("created_by")
