"""The ASGI middlewares and the metrics they feed, driven through a tiny FastAPI app (and raw
ASGI calls where the test client cannot produce the traffic)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fakes import FakeClock
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from primetime.service.auth import issue_token, session_rate_limit_key
from primetime.service.metrics import ServiceMetrics, percentile
from primetime.service.middleware import (
    BodySizeLimitMiddleware,
    RateLimitMiddleware,
    RequestBodyTooLarge,
    RequestIdMiddleware,
    TimingMiddleware,
    add_service_middleware,
    get_request_id,
)
from primetime.service.settings import Settings


class Item(BaseModel):
    name: str


def make_app() -> FastAPI:
    """Routes shaped like the service's: a nested router, a path parameter, probes."""
    app = FastAPI()
    app.state.settings = Settings(
        environment="test", secret_key="secret-for-tests-0123456789abcdefghij", _env_file=None
    )
    api = APIRouter(prefix="/api/v1")
    users = APIRouter(prefix="/users")

    @api.get("/titles/{item_id}")
    def get_title(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @api.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @api.post("/items")
    def create_item(item: Item) -> dict[str, str]:
        return {"name": item.name}

    @users.get("/{user_id}/history")
    def history(user_id: int) -> dict[str, int]:
        return {"user_id": user_id}

    api.include_router(users)
    app.include_router(api)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/rid")
    async def rid(request: Request) -> dict[str, str | None]:
        return {"state": request.state.request_id, "context": get_request_id()}

    @app.get("/rid-sync")
    def rid_sync(request: Request) -> dict[str, str | None]:
        return {"state": request.state.request_id, "context": get_request_id()}

    return app


def chunks(total: int, size: int = 10) -> Iterator[bytes]:
    """A body without Content-Length (sent chunked)."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


# ----------------------------------------------------------------------------- body size


@pytest.fixture
def body_client() -> TestClient:
    app = make_app()
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=100)
    return TestClient(app)


def test_body_within_limit(body_client: TestClient) -> None:
    r = body_client.post("/api/v1/raw", content=b"x" * 100)
    assert r.status_code == 200 and r.json() == {"size": 100}
    r = body_client.post("/api/v1/raw", content=chunks(100))
    assert r.status_code == 200 and r.json() == {"size": 100}


def test_413_by_content_length(body_client: TestClient) -> None:
    r = body_client.post("/api/v1/raw", content=b"x" * 101)
    assert r.status_code == 413
    assert r.json() == {"detail": "request body larger than 100 bytes"}


def test_413_for_chunked_body(body_client: TestClient) -> None:
    for path in ("/api/v1/raw", "/api/v1/items"):  # raw stream, and FastAPI's JSON parsing
        r = body_client.post(path, content=chunks(500), headers={"content-type": "text/plain"})
        assert r.status_code == 413, path
        assert r.json() == {"detail": "request body larger than 100 bytes"}


def test_invalid_content_length_is_400() -> None:
    sent = run_asgi(
        BodySizeLimitMiddleware(echo_app, max_bytes=100),
        [{"type": "http.request", "body": b"", "more_body": False}],
        headers=[(b"content-length", b"ten")],
    )
    assert sent[0]["status"] == 400


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers 200 with its size."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def run_asgi(
    app: object, messages: list[Message], headers: list[tuple[bytes, bytes]] | None = None
) -> list[Message]:
    """Call an ASGI app, feeding it (and consuming) `messages`; return what it sent."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": headers or [],
        "client": ("10.0.0.1", 1234),
    }
    incoming = messages
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    return sent


def test_chunked_body_growing_past_limit_in_several_messages() -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": b"x" * 40, "more_body": True} for _ in range(5)
    ]
    sent = run_asgi(BodySizeLimitMiddleware(echo_app, max_bytes=100), messages)
    assert sent[0]["status"] == 413
    assert b"larger than 100 bytes" in sent[1]["body"]
    assert len(messages) == 5 - 3  # stopped reading at the third chunk


def test_app_swallowing_the_error_still_gets_413() -> None:
    async def stubborn(scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(RequestBodyTooLarge):
            await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = run_asgi(
        BodySizeLimitMiddleware(stubborn, max_bytes=10),
        [{"type": "http.request", "body": b"x" * 11, "more_body": False}],
    )
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 413


def test_limit_hit_after_response_started_is_raised() -> None:
    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await receive()

    with pytest.raises(RequestBodyTooLarge):
        run_asgi(
            BodySizeLimitMiddleware(streaming, max_bytes=10),
            [{"type": "http.request", "body": b"x" * 11, "more_body": False}],
        )


# ----------------------------------------------------------------------------- rate limit


def rate_limited_client(clock: FakeClock, **kwargs: object) -> TestClient:
    app = make_app()
    app.add_middleware(RateLimitMiddleware, clock=clock, **kwargs)  # type: ignore[arg-type]
    return TestClient(app)


def test_429_after_burst_with_retry_after() -> None:
    clock = FakeClock()
    client = rate_limited_client(clock, per_minute=60, burst=3)
    assert [client.get("/api/v1/titles/1").status_code for _ in range(3)] == [200] * 3
    r = client.get("/api/v1/titles/1")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert r.json()["detail"].startswith("rate limit exceeded")
    clock.advance(1.0)  # one token back at 1/s
    assert client.get("/api/v1/titles/1").status_code == 200
    assert client.get("/api/v1/titles/1").status_code == 429


def test_retry_after_rounds_up_to_the_next_token() -> None:
    clock = FakeClock()
    client = rate_limited_client(clock, per_minute=6, burst=1)  # one token per 10 s
    assert client.get("/api/v1/titles/1").status_code == 200
    clock.advance(2.5)
    r = client.get("/api/v1/titles/1")
    assert (r.status_code, r.headers["Retry-After"]) == (429, "8")


def test_exempt_paths_are_not_limited() -> None:
    client = rate_limited_client(FakeClock(), per_minute=60, burst=1)
    assert all(client.get("/health").status_code == 200 for _ in range(20))
    assert client.get("/api/v1/titles/1").status_code == 200
    assert client.get("/api/v1/titles/1").status_code == 429


def test_exempt_paths_under_a_root_path() -> None:
    limiter = RateLimitMiddleware(echo_app, per_minute=60, burst=1, clock=FakeClock())
    scope = {"type": "http", "path": "/primetime/health", "root_path": "/primetime"}
    assert limiter._exempt(scope)
    assert not limiter._exempt({**scope, "path": "/primetime/api"})


def test_zero_per_minute_turns_limiting_off() -> None:
    client = rate_limited_client(FakeClock(), per_minute=0, burst=1)
    assert all(client.get("/api/v1/titles/1").status_code == 200 for _ in range(20))


def test_signed_in_users_have_their_own_buckets() -> None:
    clock = FakeClock()
    client = rate_limited_client(clock, per_minute=60, burst=2, key_func=session_rate_limit_key)
    settings = client.app.state.settings  # type: ignore[attr-defined]
    alice_token = issue_token(1, is_admin=False, session_id="s1", settings=settings)
    bob_token = issue_token(2, is_admin=False, session_id="s2", settings=settings)
    alice = {"Authorization": f"Bearer {alice_token}"}
    bob = {"Authorization": f"Bearer {bob_token}"}
    forged = {"Authorization": "Bearer forged"}
    assert [client.get("/health", headers=alice).status_code for _ in range(3)] == [200] * 3
    assert [client.get("/api/v1/titles/1", headers=alice).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    assert client.get("/api/v1/titles/1", headers=bob).status_code == 200
    # Anonymous and forged-token callers share the IP bucket.
    assert client.get("/api/v1/titles/1").status_code == 200
    assert client.get("/api/v1/titles/1", headers=forged).status_code == 200
    assert client.get("/api/v1/titles/1", headers=forged).status_code == 429


def test_idle_buckets_are_dropped_and_count_is_capped() -> None:
    clock = FakeClock()
    limiter = RateLimitMiddleware(echo_app, per_minute=60, burst=5, clock=clock, max_buckets=50)
    for i in range(30):
        assert limiter.acquire(f"ip:{i}") == 0.0
    assert len(limiter) == 30
    clock.advance(5.0)  # burst / rate = 5 s: every bucket is full again
    limiter.acquire("ip:new")
    assert len(limiter) == 1
    for i in range(200):
        limiter.acquire(f"ip:{i}")
    assert len(limiter) == 50


def test_rate_limiter_checks_arguments() -> None:
    with pytest.raises(ValueError, match="burst"):
        RateLimitMiddleware(echo_app, per_minute=60, burst=0)
    with pytest.raises(ValueError, match="per_minute"):
        RateLimitMiddleware(echo_app, per_minute=-1, burst=1)


# ----------------------------------------------------------------------------- request id


@pytest.fixture
def rid_client() -> TestClient:
    app = make_app()
    app.add_middleware(RequestIdMiddleware)
    return TestClient(app)


@pytest.mark.parametrize("path", ["/rid", "/rid-sync"])
def test_request_id_is_echoed_and_in_state(rid_client: TestClient, path: str) -> None:
    r = rid_client.get(path, headers={"X-Request-ID": "abc-123.x:y"})
    assert r.headers["X-Request-ID"] == "abc-123.x:y"
    assert r.json() == {"state": "abc-123.x:y", "context": "abc-123.x:y"}


def test_request_id_is_created_when_missing_or_unsafe(rid_client: TestClient) -> None:
    ids = set()
    for headers in ({}, {"X-Request-ID": "bad id\twith spaces"}, {"X-Request-ID": "x" * 129}):
        r = rid_client.get("/rid", headers=headers)
        rid = r.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
        assert r.json()["state"] == rid
        ids.add(rid)
    assert len(ids) == 3
    assert get_request_id() is None  # reset after each request


def test_request_id_on_error_responses(rid_client: TestClient) -> None:
    r = rid_client.get("/nope", headers={"X-Request-ID": "trace-1"})
    assert (r.status_code, r.headers["X-Request-ID"]) == (404, "trace-1")


def test_request_id_on_a_500() -> None:
    """An exception escaping the app still gets a response carrying the id (the server's
    own error middleware, outside ours, would answer without it), and is re-raised."""
    app = make_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(RequestIdMiddleware)
    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/boom", headers={"X-Request-ID": "trace-500"})
    assert (r.status_code, r.headers["X-Request-ID"]) == (500, "trace-500")
    assert r.json() == {"detail": "internal server error (request id trace-500)"}
    fresh = client.get("/boom")
    assert fresh.status_code == 500 and re.fullmatch(r"[0-9a-f]{32}", fresh.headers["X-Request-ID"])
    with pytest.raises(RuntimeError, match="boom"):
        TestClient(app).get("/boom")


# ----------------------------------------------------------------------------- timing + metrics


def metrics_client(metrics: ServiceMetrics) -> TestClient:
    app = make_app()
    app.add_middleware(TimingMiddleware, metrics=metrics)

    @app.get("/metrics")
    def scrape() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    return TestClient(app)


def test_metrics_use_route_templates_not_raw_paths() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    client = metrics_client(metrics)
    for item_id in (1, 2, 3):
        client.get(f"/api/v1/titles/{item_id}")
    client.get("/api/v1/titles/not-a-number")  # 422 from validation
    client.get("/api/v1/users/7/history")
    client.get("/no/such/path")
    text = client.get("/metrics").text
    assert 'route="/api/v1/titles/{item_id}"' in text
    assert 'route="/api/v1/users/{user_id}/history"' in text  # full prefix of nested routers
    assert 'route="unmatched"' in text
    assert "/api/v1/titles/1" not in text and "/no/such/path" not in text
    assert re.search(
        r'primetime_http_request_duration_seconds_count\{method="GET",'
        r'route="/api/v1/titles/\{item_id\}",status="200"\} 3\.0',
        text,
    )
    assert 'status="422"' in text and 'status="404"' in text
    snap = metrics.snapshot()
    routes = snap["requests"]
    assert isinstance(routes, dict)
    assert routes["GET /api/v1/titles/{item_id}"]["count"] == 4
    assert set(routes["GET /api/v1/titles/{item_id}"]) >= {"p50_ms", "p95_ms", "p99_ms"}


def test_mounts_and_plain_routes_get_templates() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    app = make_app()
    sub = FastAPI()

    @sub.get("/things/{thing_id}")
    def thing(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    app.mount("/sub", sub)
    app.mount("/static", echo_app)
    app.add_middleware(TimingMiddleware, metrics=metrics)
    client = TestClient(app)
    assert client.get("/sub/things/4").status_code == 200
    assert client.get("/static/css/site.css").status_code == 200
    assert client.get("/sub/nothing/here").status_code == 404
    assert client.get("/openapi.json").status_code == 200
    routes = metrics.snapshot()["requests"]
    assert isinstance(routes, dict)
    assert set(routes) == {
        "GET /sub/things/{thing_id}",
        "GET /static/{path}",
        "GET /sub/{path}",
        "GET /openapi.json",
    }


def test_unusual_methods_are_one_label() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    metrics.observe_request(route="unmatched", method="BREW", status=405, seconds=0.001)
    payload, _ = metrics.render()
    assert b'method="OTHER"' in payload and b"BREW" not in payload


def test_timing_records_exceptions_as_500() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    metrics = ServiceMetrics(process_metrics=False)
    with pytest.raises(RuntimeError):
        run_asgi(TimingMiddleware(broken, metrics), [])
    assert b'route="unmatched",status="500"' in metrics.render()[0]


def test_snapshot_percentiles_from_reservoir() -> None:
    metrics = ServiceMetrics(process_metrics=False, reservoir_size=100)
    for ms in range(1, 201):  # only the last 100 (101..200 ms) are kept
        metrics.observe_request(route="/x", method="GET", status=200, seconds=ms / 1000)
    stats = metrics.snapshot()["requests"]["GET /x"]  # type: ignore[index]
    assert stats["count"] == 200
    assert stats["p50_ms"] == pytest.approx(150.0)
    assert stats["p95_ms"] == pytest.approx(195.0)
    assert stats["p99_ms"] == pytest.approx(199.0)


def test_percentile_nearest_rank() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 1.0) == 4.0
    assert percentile([5.0], 0.99) == 5.0


@dataclass
class Stats:
    hits: int
    misses: int
    errors: int


def test_cache_hit_ratio_gauge() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    assert b"primetime_cache_hit_ratio" not in metrics.render()[0]  # no source yet
    metrics.set_cache_stats_source(lambda: Stats(hits=3, misses=1, errors=2))
    text = metrics.render()[0].decode()
    assert "primetime_cache_hit_ratio 0.75" in text
    assert "primetime_cache_hits_total 3.0" in text
    assert "primetime_cache_misses_total 1.0" in text
    assert "primetime_cache_errors_total 2.0" in text
    metrics.set_cache_stats_source(lambda: (0, 0, 0))
    assert "primetime_cache_hit_ratio 0.0" in metrics.render()[0].decode()
    snap = metrics.snapshot()
    assert snap["cache"] == {"hits": 0, "misses": 0, "errors": 0, "hit_ratio": 0.0}


def test_failing_cache_source_does_not_break_the_scrape() -> None:
    def broken() -> tuple[int, int, int]:
        raise ConnectionError("redis down")

    metrics = ServiceMetrics(process_metrics=False)
    metrics.set_cache_stats_source(broken)
    payload, _ = metrics.render()
    assert b"primetime_cache_hit_ratio" not in payload
    assert metrics.snapshot()["cache"] is None


def test_events_counter_and_rate_window() -> None:
    clock = FakeClock()
    metrics = ServiceMetrics(process_metrics=False, clock=clock)
    metrics.record_event("view", 90)
    clock.advance(30)
    metrics.record_event("rate", 30)
    metrics.record_recommendations(4)
    assert metrics.events_per_second() == pytest.approx(2.0)
    text = metrics.render()[0].decode()
    assert 'primetime_events_total{type="view"} 90.0' in text
    assert "primetime_events_per_second 2.0" in text
    assert "primetime_recommendations_total 4.0" in text
    clock.advance(31)  # the 90 views left the 60 s window
    assert metrics.events_per_second() == pytest.approx(0.5)
    clock.advance(60)
    assert metrics.events_per_second() == 0.0
    snap = metrics.snapshot()
    assert snap["events"] == {"view": 90, "rate": 30}
    assert snap["recommendations"] == 4


def test_model_version_replaces_previous() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    metrics.set_model_version("sasrec", "v1")
    metrics.set_model_version("sasrec", "v2")
    metrics.set_model_version("popularity", "p1")
    text = metrics.render()[0].decode()
    assert 'primetime_model_info{name="sasrec",version="v2"} 1.0' in text
    assert 'version="v1"' not in text
    assert metrics.snapshot()["models"] == {"sasrec": "v2", "popularity": "p1"}


def test_each_app_has_its_own_registry() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.record_recommendations(2)
    assert b"primetime_recommendations_total 2.0" in first.render()[0]
    assert b"primetime_recommendations_total 0.0" in second.render()[0]
    if sys.platform.startswith("linux"):  # ProcessCollector reads /proc
        assert b"process_resident_memory_bytes" in first.render()[0]


def test_render_content_types() -> None:
    metrics = ServiceMetrics(process_metrics=False)
    _, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    payload, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert payload.rstrip().endswith(b"# EOF")


# ----------------------------------------------------------------------------- all together


def test_service_middleware_stack() -> None:
    app = make_app()
    metrics = ServiceMetrics(process_metrics=False)
    settings = Settings(
        environment="test",
        rate_limit_per_minute=60,
        rate_limit_burst=2,
        max_body_bytes=10,
        _env_file=None,
    )
    add_service_middleware(app, settings=settings, metrics=metrics)
    client = TestClient(app)
    assert client.get("/api/v1/titles/1").status_code == 200
    r = client.post("/api/v1/raw", content=b"x" * 11, headers={"X-Request-ID": "req-413"})
    assert (r.status_code, r.headers["X-Request-ID"]) == (413, "req-413")
    r = client.get("/api/v1/titles/1", headers={"X-Request-ID": "req-429"})
    assert (r.status_code, r.headers["X-Request-ID"]) == (429, "req-429")
    assert "Retry-After" in r.headers
    text = metrics.render()[0].decode()
    assert 'route="unmatched",status="429"' in text
    assert 'route="unmatched",status="413"' in text
