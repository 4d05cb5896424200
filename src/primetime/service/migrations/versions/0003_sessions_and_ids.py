"""Server-side sessions, login throttling, case-insensitive usernames, idempotent events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09

- `sessions`: one row per sign-in; a token is honoured only while its row is neither revoked
  nor expired (sign-out, sign-out everywhere and a password change revoke rows).
- `login_throttles`: failed sign-ins per account and per client address, shared by workers.
- `users`: a unique index on `lower(username)`. Usernames that differ only in case already
  in the table are reported (a warning naming each) and resolved deterministically first:
  the oldest account (smallest `created_at`, then `id`) keeps its name, each later one is
  renamed `<name>-<id>` (shortened to fit 64 characters; `-<id>-2`, `-<id>-3` … should that
  be taken too). Nothing else about those accounts changes; they sign in with the new name.
- `events.event_id`: an optional client key; unique per user, so a retried event is a no-op.

Downgrade drops all of it; renamed usernames keep their new names (the old ones collided).

A revision is frozen: it spells out its column types here instead of importing the models, so
later changes to `db.py` never rewrite history.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

USERNAME_MAX = 64


def _rename_case_duplicates() -> list[tuple[int, str, str]]:
    """Rename every account whose username equals an older one's but for case; returns
    `(id, old name, new name)` for each, in id order of the kept accounts."""
    conn = op.get_bind()
    users = sa.table(
        "users",
        sa.column("id", sa.Integer()),
        sa.column("username", sa.String()),
        sa.column("created_at", sa.Double()),
    )
    rows = conn.execute(
        sa.select(users.c.id, users.c.username).order_by(users.c.created_at, users.c.id)
    ).all()
    taken = {name.lower() for _, name in rows}
    seen: set[str] = set()
    renamed = []
    for user_id, name in rows:
        lower = name.lower()
        if lower not in seen:
            seen.add(lower)
            continue
        n = 1
        while True:
            suffix = f"-{user_id}" if n == 1 else f"-{user_id}-{n}"
            new = name[: USERNAME_MAX - len(suffix)] + suffix
            if new.lower() not in taken:
                break
            n += 1
        taken.add(new.lower())
        seen.add(new.lower())
        conn.execute(users.update().where(users.c.id == user_id).values(username=new))
        renamed.append((user_id, name, new))
    for user_id, old, new in renamed:
        log.warning(
            "username %r of user %d differs from an older account's only in case: renamed %r",
            old,
            user_id,
            new,
        )
    return renamed


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_user_id_revoked_at"), "sessions", ["user_id", "revoked_at"])
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.Double(), nullable=False),
        sa.Column("blocked_until", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )

    _rename_case_duplicates()
    op.create_index("uq_users_lower_username", "users", [sa.text("lower(username)")], unique=True)

    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("event_id", sa.String(length=64), nullable=True))
    op.create_index("uq_events_user_id_event_id", "events", ["user_id", "event_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_events_user_id_event_id", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("event_id")
    op.drop_index("uq_users_lower_username", table_name="users")
    op.drop_table("login_throttles")
    op.drop_index(op.f("ix_sessions_user_id_revoked_at"), table_name="sessions")
    op.drop_table("sessions")
