"""Sign-in throttling: exponential back-off per account and per client address.

After `settings.login_throttle_failures` failed sign-ins of one account (any case of the
username, whether or not it exists), or `settings.login_throttle_address_failures` from one
client address (any accounts), sign-ins under that key are refused for
`login_throttle_base_seconds` (1 s), then twice as long after each further failure, up to
`login_throttle_max_seconds` (15 min). A refused sign-in is a 429 with `Retry-After` and its
password is not even checked, so guessing stops paying: 30 guesses at one account take
about an hour instead of a second. A successful sign-in clears the account's failures (not the
address's: an attacker signing in to their own account must not reset the address count);
failures are forgotten a day after the last one.

The counters live in the database (`login_throttles`), so every worker sees the same ones,
they survive restarts, and, unlike the cache, they cannot be lost in a Redis outage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from primetime.service.errors import TooManyRequests
from primetime.service.settings import Settings
from primetime.service.store import EventStore

FORGET_AFTER_SECONDS = 24 * 3600.0
"""Failures under a key are forgotten this long after its last failure."""


def account_key(username: str) -> str:
    return f"account:{username.lower()[:100]}"


def address_key(address: str) -> str:
    return f"address:{address[:100]}"


def back_off(failures: int, *, after: int, base: float, cap: float) -> float:
    """Seconds to refuse sign-ins after `failures` failures: none before `after`, then
    `base`, doubling with each further failure, at most `cap`."""
    if failures < after:
        return 0.0
    return min(cap, base * 2.0 ** min(failures - after, 64))


class LoginThrottle:
    """The throttle of one service (see the module docstring).

    Args:
        store: where the counters live.
        settings: the `login_throttle_*` limits.
        clock: unix seconds (tests move it forward).
    """

    def __init__(
        self, store: EventStore, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store, self.settings, self.clock = store, settings, clock

    def _keys(self, username: str, address: str | None) -> dict[str, int]:
        """Each key with the failures it tolerates before back-off starts."""
        s = self.settings
        keys = {account_key(username): s.login_throttle_failures}
        if address:
            keys[address_key(address)] = s.login_throttle_address_failures
        return keys

    def check(self, username: str, address: str | None) -> None:
        """Raise `TooManyRequests` while the account or the address is backed off."""
        if not self.settings.login_throttle:
            return
        wait = self.store.login_blocked_until(self._keys(username, address)) - self.clock()
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise TooManyRequests(
                f"too many failed sign-ins: try again in {seconds} s", retry_after=seconds
            )

    def failed(self, username: str, address: str | None) -> None:
        """Count a failed sign-in under the account and the address."""
        if not self.settings.login_throttle:
            return
        s, now = self.settings, self.clock()
        for key, after in self._keys(username, address).items():
            n = self.store.add_login_failure(key, now=now, forget_before=now - FORGET_AFTER_SECONDS)
            wait = back_off(
                n,
                after=after,
                base=s.login_throttle_base_seconds,
                cap=s.login_throttle_max_seconds,
            )
            if wait > 0:
                self.store.block_login(key, now + wait)

    def succeeded(self, username: str) -> None:
        """Clear the account's failures after a successful sign-in."""
        if self.settings.login_throttle:
            self.store.clear_login_failures(account_key(username))
