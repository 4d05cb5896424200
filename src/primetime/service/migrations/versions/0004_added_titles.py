"""Titles added to a running service survive a restart.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

- `titles.details`: the body of `POST /api/v1/admin/titles` (cast, crew, directors, text,
  network …) of a title added while running; NULL for the data set's titles.
- `titles.added_at`: when it was added (unix seconds); NULL for the data set's titles.

At start-up the service grows its catalog and models to every title with an `added_at`
(in that order), so the title is scored and listed in "New on Primetime" after a restart
and on every worker. The export (`primetime data export`) writes the added titles in
`added_at` order, so a model retrained on the export numbers its titles as the service
does and can be swapped in without a restart. Downgrade drops both columns.

A revision is frozen: it spells out its column types here instead of importing the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("titles") as batch:
        batch.add_column(
            sa.Column("details", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=True)
        )
        batch.add_column(sa.Column("added_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("titles") as batch:
        batch.drop_column("added_at")
        batch.drop_column("details")
