"""A PostgreSQL that goes away or is too slow: 503 with Retry-After (never a 500) on every
route that needs it, and the service recovers when it is back.

The app reaches PostgreSQL through a small TCP proxy in this test: cutting the proxy
(every connection dropped, new ones refused) is a database outage, restoring it is the
database coming back. A slow query is a real one: another session holds a lock the
request's statement waits for, until the statement timeout cancels it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from test_api import ADMIN_HEADERS, make_settings, registry, signup  # noqa: F401 (fixture)

from primetime.registry import ModelRegistry
from primetime.service.app import create_app
from primetime.service.db import make_engine, migrate
from primetime.service.settings import Settings


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``cut()`` drops every connection and
    refuses new ones, ``restore()`` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])

    def start(self) -> None:
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.05)
        args = (self._listener, self._stop)
        threading.Thread(target=self._accept, args=args, daemon=True).start()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._close(s)

    def _close(self, s: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()

    def cut(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            self._close(s)

    restore = start


@pytest.fixture
def outage_db(postgres_server: Any) -> Iterator[tuple[str, str]]:
    """(direct URL, URL through a running proxy) of a fresh migrated database."""
    url = postgres_server.create_database()
    direct = url.render_as_string(hide_password=False)
    migrate(direct)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield direct, proxied, proxy  # type: ignore[misc]
    proxy.cut()
    postgres_server.drop_database(url)


def unavailable(r: Any) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert int(r.headers["Retry-After"]) > 0


def test_statement_timeout_default_is_a_few_seconds() -> None:
    default = Settings(_env_file=None).db_statement_timeout_seconds
    assert 1 <= default <= 10


def test_a_lost_database_is_503_and_the_service_recovers(
    outage_db: Any,
    registry: ModelRegistry,  # noqa: F811
    planted,
) -> None:
    direct, proxied, proxy = outage_db
    settings = make_settings(proxied, registry, db_statement_timeout_seconds=2)
    app = create_app(settings, dataset=planted, registry=registry)
    with TestClient(app, raise_server_exceptions=False) as c:
        h = signup(c, "outage")
        cookie = {"primetime_session": h["Authorization"].removeprefix("Bearer ")}
        event = {"item_id": "i3", "event_type": "play"}
        assert c.post("/api/v1/events", headers=h, json=event).status_code == 201
        assert c.get("/title/i3", cookies=cookie).status_code == 200

        proxy.cut()
        t0 = time.monotonic()
        unavailable(c.post("/api/v1/events", headers=h, json=event))
        unavailable(c.get("/api/v1/me", headers=h))
        unavailable(c.get("/api/v1/insights", headers=h))
        unavailable(c.post("/api/v1/auth/login", json={"username": "outage", "password": "x"}))
        newcomer = {"username": "outage-2", "password": "quiet-harbor-lamp-2"}
        unavailable(c.post("/api/v1/auth/signup", json=newcomer))
        unavailable(c.get("/api/v1/admin/promotions", headers=ADMIN_HEADERS))
        unavailable(c.get("/api/v1/admin/experiments/none", headers=ADMIN_HEADERS))
        unavailable(c.get("/ready"))
        page = c.get("/insights", cookies=cookie)
        unavailable(page)
        assert page.headers["content-type"].startswith("text/html") and "database" in page.text
        assert time.monotonic() - t0 < 20, "refused connections fail fast"

        proxy.restore()
        assert c.get("/ready").status_code == 200
        assert c.post("/api/v1/events", headers=h, json=event).status_code == 201
        assert c.get("/api/v1/me", headers=h).json()["events"] == 2
        assert c.get("/title/i3", cookies=cookie).status_code == 200
        assert (
            c.post(
                "/api/v1/auth/login", json={"username": "outage", "password": "pass-word-1"}
            ).status_code
            == 200
        )


def test_a_slow_query_is_cut_by_the_statement_timeout(
    outage_db: Any,
    registry: ModelRegistry,  # noqa: F811
    planted,
) -> None:
    direct, proxied, _ = outage_db
    settings = make_settings(direct, registry, db_statement_timeout_seconds=0.5)
    app = create_app(settings, dataset=planted, registry=registry)
    locker = make_engine(direct)
    with TestClient(app, raise_server_exceptions=False) as c:
        h = signup(c, "slowpoke")
        event = {"item_id": "i3", "event_type": "play"}
        with locker.connect() as conn:
            conn.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))  # until rollback
            t0 = time.monotonic()
            slow = c.post("/api/v1/events", headers=h, json=event)
            waited = time.monotonic() - t0
            conn.rollback()
        unavailable(slow)
        assert 0.4 < waited < 5, waited
        assert c.post("/api/v1/events", headers=h, json=event).status_code == 201
    locker.dispose()
    # The limit is the server's: every statement of the service's connections has it.
    engine = make_engine(direct, statement_timeout=1.5)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "1500ms"
    engine.dispose()
    assert make_url(direct).get_backend_name() == "postgresql"
