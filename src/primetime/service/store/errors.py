"""Errors of the store: a taken username, and a user or experiment that does not exist."""

from __future__ import annotations


class UsernameTaken(ValueError):
    """`create_user` was given a username that already exists."""


class NotFound(KeyError):
    """A user or experiment the call refers to does not exist."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


class SessionEnded(Exception):
    """A group of `store_event_groups` named a session that is no longer open (signed out,
    revoked or expired): nothing of it was stored."""


class EventIdReused(ValueError):
    """`add_events` was given an `event_id` the user already sent with a different event."""
