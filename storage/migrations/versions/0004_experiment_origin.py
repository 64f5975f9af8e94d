"""experiments.origin, and typed Playground inputs in a dataset of their own: the name
`playground` is a user's again (a dataset or a label of that name no longer disappears)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:30:00

Which stored experiments were Playground runs. Until now the Playground marked its runs with
the label `playground`, and that label was what hid them from the list. A row is taken for a
Playground run when all of these hold, as they do for every run the Playground stored: the
label is exactly `playground`, it evaluates one example, it belongs to no study, and its spec has
no limit (the Playground names its one example; an Experiments-page or CLI run of one example
has limit 1). Any other row labelled `playground` is a user's experiment and stays
`experiment`. (A re-run of a Playground run, copied with its spec, is taken for one too: it was
hidden like one until now.)

Typed inputs. They were kept in a dataset called `playground`; it moves to the name
storage.schema.TYPED_INPUTS, which no import may take, with the experiments that use it (their
dataset_name and the `dataset`/`pool_dataset` of their spec). It is recognised by the source the
Playground gave it; a `playground` dataset a user imported first is left where it is.

Downgrade: the typed inputs move back to `playground` when that name is free (otherwise they
stay under their new name), and origin is dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_NAME = "playground"
NEW_NAME = "(typed in the Playground)"  # storage.schema.TYPED_INPUTS when this was written
TYPED_SOURCE = "inputs typed in the Playground"  # what core.runs.playground gives that dataset

experiments = sa.table(
    "experiments",
    sa.column("id", sa.Integer),
    sa.column("label", sa.String),
    sa.column("study_id", sa.Integer),
    sa.column("n_examples", sa.Integer),
    sa.column("dataset_name", sa.String),
    sa.column("spec", sa.JSON),
    sa.column("origin", sa.String),
)
datasets = sa.table(
    "datasets", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("source")
)


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN: recreating `experiments` would cascade to its results.
    with op.batch_alter_table("experiments", recreate="never") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(length=20), nullable=False, server_default="experiment")
        )
    conn = op.get_bind()
    candidates = conn.execute(
        sa.select(experiments.c.id, experiments.c.spec).where(
            experiments.c.label == "playground",
            experiments.c.n_examples == 1,
            experiments.c.study_id.is_(None),
        )
    ).all()
    runs = [i for i, spec in candidates if (spec or {}).get("limit") is None]
    if runs:
        conn.execute(
            sa.update(experiments).where(experiments.c.id.in_(runs)).values(origin="playground")
        )
    _move_typed_inputs(conn, OLD_NAME, NEW_NAME, source=TYPED_SOURCE)


def downgrade() -> None:
    _move_typed_inputs(op.get_bind(), NEW_NAME, OLD_NAME)
    with op.batch_alter_table("experiments", recreate="never") as batch:
        batch.drop_column("origin")


def _move_typed_inputs(conn: sa.Connection, old: str, new: str, source: str | None = None) -> None:
    """Rename the typed-inputs dataset and point its experiments at the new name, if the new
    name is free (and, given `source`, the dataset is the Playground's)."""
    if conn.scalar(sa.select(datasets.c.id).where(datasets.c.name == new)) is not None:
        return
    found = conn.execute(
        sa.select(datasets.c.id, datasets.c.source).where(datasets.c.name == old)
    ).first()
    if found is None or (source is not None and found.source != source):
        return
    conn.execute(sa.update(datasets).where(datasets.c.id == found.id).values(name=new))
    conn.execute(
        sa.update(experiments).where(experiments.c.dataset_name == old).values(dataset_name=new)
    )
    for experiment_id, spec in conn.execute(sa.select(experiments.c.id, experiments.c.spec)).all():
        spec = dict(spec or {})
        moved = {k: new for k in ("dataset", "pool_dataset") if spec.get(k) == old}
        if moved:
            conn.execute(
                sa.update(experiments)
                .where(experiments.c.id == experiment_id)
                .values(spec={**spec, **moved})
            )
