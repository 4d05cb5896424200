"""Which client address the per-IP rate limit sees under `primetime serve`'s uvicorn:
forwarded headers count only from the proxies the operator lists.

uvicorn's own default trusts X-Forwarded-For from 127.0.0.1, so a client on the machine
(or behind a local proxy that passes the header on) could send a new made-up address with
every request and never be limited: 300 requests, 300 x 200. A real uvicorn server runs
here with the options `serve` passes it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from typer.testing import CliRunner

from primetime.service.middleware import RateLimitMiddleware, client_ip
from primetime.service.settings import Settings

BURST = 5


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = client_ip(scope).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(options: dict[str, Any]) -> Iterator[str]:
    """A uvicorn server on a free port running the rate-limited app with `options`."""
    app = RateLimitMiddleware(whoami, per_minute=1, burst=BURST)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _forged(base: str, n: int) -> list[tuple[int, str]]:
    """n requests, each with a new made-up X-Forwarded-For address."""
    out = []
    with httpx.Client(base_url=base) as client:
        for i in range(n):
            headers = {"X-Forwarded-For": f"203.0.113.{i % 250}, 10.{i}.0.1"}
            r = client.get("/", headers=headers)
            out.append((r.status_code, r.text))
    return out


def _settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, environment="test", **kw)  # type: ignore[arg-type]


def test_by_default_forged_forwarded_headers_change_nothing() -> None:
    options = _settings().uvicorn_proxy_options()
    assert options["proxy_headers"] is False
    with serving(options) as base:
        answers = _forged(base, 3 * BURST)
    statuses = [s for s, _ in answers]
    assert statuses[:BURST] == [200] * BURST and set(statuses[BURST:]) == {429}, statuses
    assert {text for s, text in answers if s == 200} == {"127.0.0.1"}


def test_forwarded_headers_count_from_listed_proxies() -> None:
    options = _settings(forwarded_allow_ips="127.0.0.1").uvicorn_proxy_options()
    assert options == {"proxy_headers": True, "forwarded_allow_ips": "127.0.0.1"}
    with serving(options) as base:
        answers = _forged(base, 3 * BURST)
    assert [s for s, _ in answers] == [200] * (3 * BURST), "each forwarded client its own bucket"
    assert answers[0][1] == "10.0.0.1", "the last address, the one the listed proxy added"


def test_a_proxy_not_listed_is_not_trusted() -> None:
    options = _settings(forwarded_allow_ips="192.0.2.0/24").uvicorn_proxy_options()
    with serving(options) as base:
        statuses = [s for s, _ in _forged(base, 2 * BURST)]
    assert statuses.count(429) == BURST


def test_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMETIME_FORWARDED_ALLOW_IPS", "10.0.0.1, 10.1.0.0/16")
    assert _settings().forwarded_allow_ips == ["10.0.0.1", "10.1.0.0/16"]
    assert _settings().uvicorn_proxy_options()["forwarded_allow_ips"] == "10.0.0.1,10.1.0.0/16"


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], None, {"proxy_headers": False}),
        ([], "10.0.0.1", {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.1"}),
        (
            ["--forwarded-allow-ips", "10.0.0.2,10.9.0.0/16"],
            "10.0.0.1",
            {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.2,10.9.0.0/16"},
        ),
    ],
)
def test_serve_passes_the_allow_list_to_uvicorn(
    argv: list[str],
    env: str | None,
    expected: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from primetime.cli import app

    for name in [n for n in os.environ if n.startswith("PRIMETIME_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PRIMETIME_HOME", str(tmp_path / uuid.uuid4().hex))
    monkeypatch.chdir(tmp_path)  # no developer .env
    if env is not None:
        monkeypatch.setenv("PRIMETIME_FORWARDED_ALLOW_IPS", env)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    r = CliRunner().invoke(app, ["serve", "--no-train", *argv])
    assert r.exit_code == 0, r.output
    assert {k: seen[k] for k in expected} == expected
