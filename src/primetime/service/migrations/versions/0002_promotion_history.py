"""Promotion history instead of a copy of the model registry: drop model_versions, add promotions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

The on-disk model registry (`primetime.registry`) is the one store of model versions and of
which one is promoted; the database kept a mirror of it (`model_versions`, filled at start-up).
Now the database keeps only what the registry does not: the history of promotions (who
promoted which version of a name when, and what was promoted before).

Upgrade: each version the mirror had promoted becomes one history row (its `promoted_at`,
`previous_version` unknown, note "from model_versions"), then `model_versions` is dropped; the
versions themselves are in the registry. Downgrade: `model_versions` comes back empty (the old
start-up fills it again from the registry) and the history is dropped.

A revision is frozen: it spells out its column types here instead of importing the models, so
later changes to `db.py` never rewrite history.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
CARRIED_NOTE = "from model_versions (revision 0001)"


def upgrade() -> None:
    promotions = op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("previous_version", sa.String(length=128), nullable=True),
        sa.Column("promoted_at", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions")),
    )
    op.create_index(op.f("ix_promotions_name_promoted_at"), "promotions", ["name", "promoted_at"])

    # The only thing the mirror knew that the registry does not: when the promoted versions
    # were promoted.
    model_versions = sa.table(
        "model_versions",
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("version", sa.String()),
        sa.column("created_at", sa.Double()),
        sa.column("promoted_at", sa.Double()),
        sa.column("is_promoted", sa.Boolean()),
    )
    carried = (
        sa.select(
            model_versions.c.name,
            model_versions.c.version,
            sa.func.coalesce(model_versions.c.promoted_at, model_versions.c.created_at),
            sa.literal(CARRIED_NOTE, sa.Text()),
        )
        .where(model_versions.c.is_promoted)
        .order_by(model_versions.c.id)
    )
    op.execute(promotions.insert().from_select(["name", "version", "promoted_at", "note"], carried))

    op.drop_index("uq_model_versions_promoted_name", table_name="model_versions")
    op.drop_table("model_versions")


def downgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("promoted_at", sa.Double(), nullable=True),
        sa.Column("is_promoted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
    )
    op.create_index(
        "uq_model_versions_promoted_name",
        "model_versions",
        ["name"],
        unique=True,
        sqlite_where=sa.text("is_promoted"),
        postgresql_where=sa.text("is_promoted"),
    )
    op.drop_index(op.f("ix_promotions_name_promoted_at"), table_name="promotions")
    op.drop_table("promotions")
