"""Test doubles shared by the service tests (imported as ``from fakes import …``: pytest puts
this folder on ``sys.path`` for the test modules in it)."""

from __future__ import annotations


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
