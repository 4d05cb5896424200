"""Every event acknowledged with 201 survives a SIGKILL of the server.

The real server runs as a subprocess (`uvicorn primetime.service.app:app_from_env --factory`,
configured only through `PRIMETIME_*` variables) on a planted log written to CSV and a registry
holding an itemknn model trained on it. A few threads post events (single and batched) and
record every id acknowledged with 201; the server is killed with SIGKILL while they post,
started again on the same database, and the store is read back with `EventStore.open`: each
acknowledged id must be there, for the same user and title.

SQLite runs in WAL mode with `synchronous=NORMAL`: a commit survives the death of the process
(what is tested here), not a power cut. PostgreSQL commits are fsynced.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import polars as pl
import pytest

from primetime.data.dataset import Dataset
from primetime.lifecycle import train_for_serving
from primetime.registry import ModelRegistry
from primetime.service.process import Server
from primetime.service.store import EventStore

pytestmark = pytest.mark.slow

THREADS = 4
KILL_AFTER = 150
"""Acknowledged events before the SIGKILL (the senders are still posting then)."""
START_TIMEOUT_S = 90.0


def _write_log_csv(ds: Dataset, path: Path) -> None:
    """The dataset's interactions in id space, as a CSV the generic table loader reads."""
    it = ds.interactions
    pl.DataFrame(
        {
            "user_id": it.users.ids(it.user_idx),
            "item_id": it.items.ids(it.item_idx),
            "rating": it.rating,
            "timestamp": it.timestamp,
        }
    ).write_csv(path)


@pytest.fixture
def server(
    db_url: str, planted: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    """A server (not started) on `db_url` with an itemknn model trained on the planted log."""
    home = tmp_path / "home"
    monkeypatch.setenv("PRIMETIME_HOME", str(home))  # the prepared CSV is cached under it
    data = tmp_path / "planted.csv"
    _write_log_csv(planted, data)
    registry = ModelRegistry(tmp_path / "registry")
    train_for_serving("itemknn", data=str(data), registry=registry)
    env = {
        **os.environ,
        "PRIMETIME_HOME": str(home),
        "PRIMETIME_ENVIRONMENT": "test",
        "PRIMETIME_DATABASE_URL": db_url,
        "PRIMETIME_REGISTRY_DIR": str(registry.root),
        "PRIMETIME_DATA": str(data),
        "PRIMETIME_MODELS": "itemknn",
        "PRIMETIME_RATE_LIMIT_PER_MINUTE": "0",
    }
    srv = Server(env=env, cwd=tmp_path, log=tmp_path / "server.log")  # cwd: no stray .env
    yield srv
    srv.stop()


@dataclass
class Tally:
    """What the senders saw: acknowledged `(event_id, user_id, item_id)` and other answers."""

    acked: list[tuple[int, int, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    unanswered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _sender(
    url: str, token: str, user_id: int, items: list[str], tally: Tally, stop: threading.Event
) -> None:
    """Post events (every third request a batch of 3) until the server stops answering."""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        n = 0
        while not stop.is_set():
            picks = [items[(n + k) % len(items)] for k in range(3 if n % 3 == 2 else 1)]
            events = [{"item_id": i, "event_type": "play"} for i in picks]
            body = {"events": events} if len(events) > 1 else events[0]
            n += 1
            try:
                r = client.post("/api/v1/events", json=body)
            except httpx.TransportError:  # killed mid-request: no answer, no promise
                with tally.lock:
                    tally.unanswered += 1
                return
            with tally.lock:
                if r.status_code == 201:
                    tally.acked.extend(
                        (i, user_id, it) for i, it in zip(r.json()["ids"], picks, strict=True)
                    )
                else:
                    tally.statuses.append(r.status_code)


def test_acknowledged_events_survive_sigkill(server: Server, db_url: str) -> None:
    server.start(START_TIMEOUT_S)
    users: list[tuple[str, int]] = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n in range(THREADS):
            r = client.post(
                "/api/v1/auth/signup", json={"username": f"dur{n}", "password": "pass-word-1"}
            )
            assert r.status_code == 201, r.text
            users.append((r.json()["token"], r.json()["user_id"]))
        items = [
            t["item_id"] for t in client.get("/api/v1/search", params={"q": "i"}).json()["items"]
        ]
    assert len(items) >= 5

    tally, stop = Tally(), threading.Event()
    threads = [
        threading.Thread(target=_sender, args=(server.url, tok, uid, items, tally, stop))
        for tok, uid in users
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(tally.acked) < KILL_AFTER and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()
    # No stop flag yet: a sender whose answer came just before the kill must post again
    # and find the server dead (setting the flag first let it leave silently, a race
    # seen once under load). The flag is only a safety net for a sender still stuck.
    for t in threads:
        t.join(timeout=30)
    stop.set()
    assert len(tally.acked) >= KILL_AFTER, f"only {len(tally.acked)} acknowledged before 120 s"
    assert tally.statuses == [], f"non-201 answers before the kill: {set(tally.statuses)}"
    assert tally.unanswered == THREADS, "every sender was still posting when the server died"

    server.start(
        START_TIMEOUT_S
    )  # the restarted service runs migrations and serves the same database
    with httpx.Client(base_url=server.url, timeout=10) as client:
        tok, uid = users[0]
        r = client.post(
            "/api/v1/events",
            headers={"Authorization": f"Bearer {tok}"},
            json={"item_id": items[0], "event_type": "like"},
        )
        assert r.status_code == 201, r.text
        new_id = r.json()["ids"][0]
    server.stop()

    store = EventStore.open(db_url, migrate=False)
    try:
        stored = {e.id: (uid, e.item_id) for _, uid in users for e in store.events(uid, limit=None)}
    finally:
        store.close()
    missing = [(i, u, it) for i, u, it in tally.acked if stored.get(i) != (u, it)]
    assert not missing, (
        f"{len(missing)} of {len(tally.acked)} acknowledged events lost: {missing[:5]}"
    )
    assert new_id not in {i for i, _, _ in tally.acked}, "an acknowledged id was handed out again"
    unacked_stored = len(stored) - len(tally.acked) - 1
    assert 0 <= unacked_stored <= 3 * THREADS, (
        f"{unacked_stored} stored events were never acknowledged; at most one request per "
        "sender was in flight at the kill"
    )
