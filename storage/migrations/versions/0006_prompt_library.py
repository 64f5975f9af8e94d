"""The prompt library: named prompts with numbered versions and movable labels; every design
experiments used becomes an unnamed version, and experiments record the version they ran

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00

Designs stored before PromptDesign had `shot_format` and `instruction_role` lack those keys: they
are filled with their defaults ("inline", "user") and the fingerprint recomputed, so that the same
design stored now finds its old row. Two rows that become one design are merged into the older.
Each design then gets its unnamed version (no prompt, no number, no settings), and each
experiment points at the unnamed version of its design (`experiments.prompt_version_id`).

Downgrade: the column and the three tables are dropped; the two keys are taken out of designs
again where they hold their defaults, fingerprints recomputed as before.
"""

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_LENGTH = 320  # storage.schema.OWNER_LENGTH when this was written
NEW_DEFAULTS = {"shot_format": "inline", "instruction_role": "user"}  # PromptDesign's defaults
UNNAMED_WHERE = sa.text("prompt_id IS NULL")

designs = sa.table(
    "prompt_designs",
    sa.column("id", sa.Integer),
    sa.column("fingerprint", sa.String),
    sa.column("design", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("created_by", sa.String),
)
experiments = sa.table(
    "experiments",
    sa.column("id", sa.Integer),
    sa.column("design_id", sa.Integer),
    sa.column("design", sa.JSON),
    sa.column("spec", sa.JSON),
    sa.column("created_by", sa.String),
    sa.column("prompt_version_id", sa.Integer),
)
versions = sa.table(
    "prompt_versions",
    sa.column("id", sa.Integer),
    sa.column("prompt_id", sa.Integer),
    sa.column("design_id", sa.Integer),
    sa.column("design", sa.JSON),
    sa.column("message", sa.Text),
    sa.column("tags", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("created_by", sa.String),
)


def upgrade() -> None:
    _create_tables()
    conn = op.get_bind()
    _refingerprint(conn, lambda design: {**NEW_DEFAULTS, **design})
    _rewrite_experiment_designs(conn, lambda design: {**NEW_DEFAULTS, **design})
    _add_version_column(conn)
    _unnamed_versions(conn)


def downgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("experiments", recreate="never") as batch:
        if conn.dialect.name != "sqlite":  # SQLite drops a column's own REFERENCES with it
            batch.drop_constraint(
                "fk_experiments_prompt_version_id_prompt_versions", type_="foreignkey"
            )
        batch.drop_index("ix_experiments_prompt_version_id")
        batch.drop_column("prompt_version_id")
    op.drop_table("prompt_labels")
    op.drop_table("prompt_versions")
    op.drop_table("prompts")
    _refingerprint(conn, _without_defaults)
    _rewrite_experiment_designs(conn, _without_defaults)


def _create_tables() -> None:
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=OWNER_LENGTH), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
        sa.UniqueConstraint("name", name=op.f("uq_prompts_name")),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("design_id", sa.Integer(), nullable=False),
        sa.Column("design", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=OWNER_LENGTH), nullable=True),
        sa.ForeignKeyConstraint(
            ["design_id"],
            ["prompt_designs.id"],
            name=op.f("fk_prompt_versions_design_id_prompt_designs"),
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_prompt_versions_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_versions")),
        sa.UniqueConstraint("prompt_id", "version", name=op.f("uq_prompt_versions_prompt_id")),
    )
    op.create_index(
        op.f("ix_prompt_versions_design_id"), "prompt_versions", ["design_id"], unique=False
    )
    # One unnamed version per design (a plain unique constraint would let NULL prompt_ids repeat).
    op.create_index(
        "uq_prompt_versions_unnamed_design",
        "prompt_versions",
        ["design_id"],
        unique=True,
        sqlite_where=UNNAMED_WHERE,
        postgresql_where=UNNAMED_WHERE,
    )
    op.create_table(
        "prompt_labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=50), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moved_by", sa.String(length=OWNER_LENGTH), nullable=True),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_prompt_labels_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["prompt_versions.id"],
            name=op.f("fk_prompt_labels_version_id_prompt_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_labels")),
        sa.UniqueConstraint("prompt_id", "label", name=op.f("uq_prompt_labels_prompt_id")),
    )
    op.create_index(
        op.f("ix_prompt_labels_version_id"), "prompt_labels", ["version_id"], unique=False
    )


def _add_version_column(conn: sa.Connection) -> None:
    """experiments.prompt_version_id, added in place: recreating `experiments` (SQLite's batch
    way to add a foreign key) would cascade to its results."""
    if conn.dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE experiments ADD COLUMN prompt_version_id INTEGER "
            "CONSTRAINT fk_experiments_prompt_version_id_prompt_versions "
            "REFERENCES prompt_versions (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("experiments", sa.Column("prompt_version_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_experiments_prompt_version_id_prompt_versions",
            "experiments",
            "prompt_versions",
            ["prompt_version_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index(
        "ix_experiments_prompt_version_id", "experiments", ["prompt_version_id"], unique=False
    )


def _unnamed_versions(conn: sa.Connection) -> None:
    """An unnamed version for each design, and each experiment pointed at its design's."""
    orphans = sa.select(experiments).where(experiments.c.design_id.is_(None))
    for row in conn.execute(orphans).all():
        design_id = _design_row(conn, {**NEW_DEFAULTS, **(row.design or {})}, row.created_by)
        conn.execute(
            sa.update(experiments).where(experiments.c.id == row.id).values(design_id=design_id)
        )
    for row in conn.execute(sa.select(designs).order_by(designs.c.id)).all():
        conn.execute(
            sa.insert(versions).values(
                prompt_id=None,
                design_id=row.id,
                design=row.design,
                message="",
                tags=[],
                created_at=row.created_at,
                created_by=row.created_by,
            )
        )
    unnamed = (
        sa.select(versions.c.id)
        .where(versions.c.prompt_id.is_(None), versions.c.design_id == experiments.c.design_id)
        .scalar_subquery()
    )
    conn.execute(sa.update(experiments).values(prompt_version_id=unnamed))


def _design_row(conn: sa.Connection, design: dict[str, Any], created_by: str | None) -> int:
    found = conn.scalar(sa.select(designs.c.id).where(designs.c.fingerprint == _print(design)))
    if found is not None:
        return found
    return conn.execute(
        sa.insert(designs)
        .values(fingerprint=_print(design), design=design, created_by=created_by)
        .returning(designs.c.id)
    ).scalar_one()


def _refingerprint(conn: sa.Connection, change: Callable[[dict], dict]) -> None:
    """Rewrite each design by `change` with its new fingerprint; rows that become the same
    design are merged into the oldest, their experiments moved to it."""
    kept: dict[str, int] = {}
    for row in conn.execute(sa.select(designs).order_by(designs.c.id)).all():
        design = change(dict(row.design or {}))
        fingerprint = _print(design)
        if fingerprint in kept:
            conn.execute(
                sa.update(experiments)
                .where(experiments.c.design_id == row.id)
                .values(design_id=kept[fingerprint])
            )
            conn.execute(sa.delete(designs).where(designs.c.id == row.id))
            continue
        kept[fingerprint] = row.id
        if fingerprint != row.fingerprint:
            # A placeholder first: the new fingerprint may still be a later row's.
            conn.execute(
                sa.update(designs).where(designs.c.id == row.id).values(fingerprint=f"~{row.id}")
            )
    for fingerprint, design_id in kept.items():
        row = conn.execute(sa.select(designs).where(designs.c.id == design_id)).one()
        if row.fingerprint != fingerprint:
            conn.execute(
                sa.update(designs)
                .where(designs.c.id == design_id)
                .values(fingerprint=fingerprint, design=change(dict(row.design or {})))
            )


def _rewrite_experiment_designs(conn: sa.Connection, change: Callable[[dict], dict]) -> None:
    """The copies of the design each experiment keeps (its own and its spec's) rewritten the
    same way, so Compare sees one design where the fields were added, not a difference."""
    query = sa.select(experiments.c.id, experiments.c.design, experiments.c.spec)
    for row in conn.execute(query).all():
        design = change(dict(row.design or {}))
        spec = dict(row.spec or {})
        if isinstance(spec.get("design"), dict):
            spec["design"] = change(dict(spec["design"]))
        if design != row.design or spec != row.spec:
            conn.execute(
                sa.update(experiments)
                .where(experiments.c.id == row.id)
                .values(design=design, spec=spec)
            )


def _without_defaults(design: dict) -> dict:
    return {k: v for k, v in design.items() if not (k in NEW_DEFAULTS and v == NEW_DEFAULTS[k])}


def _print(design: dict) -> str:
    """storage.queries.design_id's fingerprint."""
    return hashlib.sha256(json.dumps(design, sort_keys=True).encode()).hexdigest()
