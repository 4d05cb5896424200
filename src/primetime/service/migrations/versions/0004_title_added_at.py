"""When a title joined the running catalog: `titles.added_at`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

`added_at` (unix seconds, NULL for the data set's own titles) is set when a title is added to
a running service (`POST /api/v1/admin/titles`). The export (`primetime data export`) writes
the added titles in that order, so a model retrained on the export numbers its titles as the
service does and can be swapped in without a restart.

A revision is frozen: it spells out its column types here instead of importing the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("titles") as batch:
        batch.add_column(sa.Column("added_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("titles") as batch:
        batch.drop_column("added_at")
