"""Every worker notices a promotion and swaps the new version in: no restart, no failed request.

A promotion writes the registry's ``PROMOTED`` file and appends a row to the database's
``promotions`` history (:func:`primetime.service.promotion.promote`; ``primetime retrain``,
``primetime models promote`` and the admin API all go through it). Each worker polls both,
every ``Settings.promotion_poll_seconds``: the newest history row (one indexed read, shared by
every worker whatever its process) and the promoted versions of the configured models (a few
small files). When either changed since the last look, the worker loads the promoted versions
and replaces its :class:`~primetime.service.state.ModelSlots` in one assignment
(:meth:`ServiceState.reload`): a request in flight finishes on the slots it started with, the
next one gets the new version. A reload that fails (a bundle that cannot be read) is logged
and the old versions keep serving; the next change is tried again.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from primetime.service.state import ServiceState

__all__ = ["PromotionWatcher"]

log = logging.getLogger(__name__)

Signature = tuple[int | None, tuple[tuple[str, str | None], ...]]


class PromotionWatcher:
    """Polls for promotions and reloads the worker's models when one happened.

    Args:
        svc: The worker's state.
        interval: Seconds between looks (> 0).
    """

    def __init__(self, svc: ServiceState, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"interval: expected seconds > 0, got {interval}")
        self.svc, self.interval = svc, interval
        self.reloads = 0
        self._seen = self.signature()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def signature(self) -> Signature:
        """The newest promotion row's id and the promoted version of each served name."""
        rows = self.svc.store.promotions(limit=1)
        reg = self.svc.registry
        names = set(reg.names())
        promoted = tuple(
            (n, (p.version if (p := reg.promoted(n)) is not None else None))
            for n in self.svc.settings.served_models
            if n in names
        )
        return (rows[-1].id if rows else None, promoted)

    def check(self) -> bool:
        """Look once; reload when something was promoted since the last look.

        Returns:
            True when the models were reloaded.
        """
        sig = self.signature()
        if sig == self._seen:
            return False
        before = self.svc.slots.default.key
        self.svc.reload()
        self._seen = sig
        self.reloads += 1
        log.info("promotion noticed: serving %s (was %s)", self.svc.slots.default.key, before)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # a bad bundle or a database blip: keep serving, try again
                log.exception("promotion watcher: reload failed; the loaded versions keep serving")

    def start(self) -> PromotionWatcher:
        """Poll in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="promotion-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
