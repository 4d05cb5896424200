"""Group commit of events: one transaction for every request waiting at once.

A commit with ``synchronous_commit`` on costs PostgreSQL a WAL flush (an fsync), and the
request path around it a pool checkout, a thread hop and a round trip per statement: 251
single-event POSTs/s at 8 clients when each request committed alone
(``benchmarks/bench_service.py``). :class:`GroupCommit` gathers the events of concurrent
requests of one worker, writes them in one transaction
(:meth:`~primetime.service.store.EventStore.store_event_groups`) on a thread of its own, and
only then answers each waiting request: every acknowledged event is on disk, as before, and
the fsync is shared.

After its commit, a transaction's follow-up (``after``: the users' cache generations moved
on, so no answered client can be served a list from before its event) runs on a second
thread while the writer starts the next transaction, and the transaction's requests are
answered when it is done: the writer thread is the serial part of ingestion (each worker
has one, so transactions follow each other in arrival order), and the Redis round trip
was a large share of its time (py-spy under ``benchmarks/bench_ingest.py``).

Batching is adaptive: while a transaction is being written the requests arriving meanwhile
wait for the next one (they would have waited for the lock or a connection anyway); an idle
writer waits ``window_s`` after the first request for others to join (PostgreSQL's own
``commit_delay`` idea), at most ``max_events`` per transaction. A failed transaction (the
database unreachable, a statement timeout) fails every waiter with that error (503 with
``Retry-After`` through the API's handlers): nothing of it was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from primetime.service.store import EventGroup, NewEvent, StoredEvents

log = logging.getLogger(__name__)

WriteGroups = Callable[[list[EventGroup]], list[StoredEvents | Exception]]
"""Stores the groups in one transaction; one answer (or refusal) per group."""

AfterCommit = Callable[[list[EventGroup], list[StoredEvents | Exception]], None]
"""What a committed transaction's requests wait for besides the commit (given the groups
and their answers); its failure is logged and answered as the commit was (the events are
stored: a refusal would be a lie that makes clients send them again)."""


@dataclass(slots=True)
class _Waiter:
    user_id: int
    events: Sequence[NewEvent]
    session_id: str | None
    future: asyncio.Future[StoredEvents] = field(repr=False)


class GroupCommit:
    """Per-worker batcher of event writes; use from one asyncio event loop.

    Args:
        write: stores the groups in one transaction, e.g. ``actions.store_groups`` bound to
            the service (it runs on the batcher's own thread, never on the event loop).
        after: run after each commit on a second thread, overlapping the next
            transaction, before that commit's requests are answered (e.g.
            ``actions.after_groups`` bound to the service); None: nothing.
        window_s: how long an idle writer waits after the first request for others.
        max_events: most events per transaction (a request's batch is never split).
    """

    def __init__(
        self,
        write: WriteGroups,
        *,
        after: AfterCommit | None = None,
        window_s: float = 0.002,
        max_events: int = 500,
    ):
        if window_s < 0:
            raise ValueError(f"window_s: expected seconds >= 0, got {window_s!r}")
        if max_events < 1:
            raise ValueError(f"max_events: expected >= 1, got {max_events!r}")
        self._write = write
        self._after = after
        self.window_s = window_s
        self.max_events = max_events
        self._pending: list[_Waiter] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # One thread: transactions of one worker follow each other (their order is the
        # order the requests arrived in, which `store_event_groups` answers by).
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="group-commit")
        self._after_thread = ThreadPoolExecutor(1, thread_name_prefix="group-commit-after")
        self._answering: set[asyncio.Task[None]] = set()
        #: Transactions written and events in them (for tests and the benchmark's log).
        self.transactions = 0
        self.events = 0

    async def store(
        self, user_id: int, events: Sequence[NewEvent], *, session_id: str | None = None
    ) -> StoredEvents:
        """Store one request's events; returns once their transaction has committed.

        With `session_id`, they are stored only if that session is open when the
        transaction reads it (`SessionEnded` otherwise).

        Raises:
            The request's own refusal (`EventIdReused`, `NotFound`, …), or the database error
            that failed its transaction.
            RuntimeError: the batcher is closed.
        """
        if self._closed:
            raise RuntimeError("the group commit is closed (the service is stopping)")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name="group-commit")
        waiter = _Waiter(user_id, events, session_id, loop.create_future())
        self._pending.append(waiter)
        assert self._wake is not None
        self._wake.set()
        return await waiter.future

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closed:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            if self.window_s > 0 and self._count(self._pending) < self.max_events:
                await asyncio.sleep(self.window_s)  # idle: let concurrent requests join
            while self._pending:
                batch = self._take()
                groups = [EventGroup(w.user_id, w.events, w.session_id) for w in batch]
                try:
                    answers = await loop.run_in_executor(self._thread, self._write, groups)
                except Exception as err:  # the whole transaction failed: nobody is answered
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(err)
                    continue
                if len(answers) != len(batch):  # a broken `write`: answer, never hang
                    answers = [RuntimeError("group commit: no answer")] * len(batch)
                self.transactions += 1
                self.events += self._count(batch)
                if self._after is None:
                    self._answer(batch, answers)
                else:  # the writer goes on with the next transaction meanwhile
                    task = loop.create_task(self._after_then_answer(groups, batch, answers))
                    self._answering.add(task)
                    task.add_done_callback(self._answering.discard)

    async def _after_then_answer(
        self,
        groups: list[EventGroup],
        batch: list[_Waiter],
        answers: list[StoredEvents | Exception],
    ) -> None:
        assert self._after is not None
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._after_thread, self._after, groups, answers
            )
        except Exception:  # committed all the same: answer as the commit did
            log.exception("group commit: the step after a commit failed")
        self._answer(batch, answers)

    @staticmethod
    def _answer(batch: list[_Waiter], answers: list[StoredEvents | Exception]) -> None:
        for w, answer in zip(batch, answers, strict=True):
            if w.future.done():  # the request was cancelled (client gone)
                continue
            if isinstance(answer, Exception):
                w.future.set_exception(answer)
            else:
                w.future.set_result(answer)

    @staticmethod
    def _count(waiters: Sequence[_Waiter]) -> int:
        return sum(len(w.events) for w in waiters)

    def _take(self) -> list[_Waiter]:
        """The oldest waiters, up to `max_events` events (at least one waiter)."""
        n, total = 0, 0
        for w in self._pending:
            if n and total + len(w.events) > self.max_events:
                break
            n += 1
            total += len(w.events)
        batch, self._pending = self._pending[:n], self._pending[n:]
        return batch

    async def close(self) -> None:
        """Write what is pending, then stop (the service's shutdown)."""
        self._closed = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            try:
                await self._task
            finally:
                self._task = None
        while self._answering:
            await asyncio.gather(*self._answering)
        self._thread.shutdown(wait=True)
        self._after_thread.shutdown(wait=True)
