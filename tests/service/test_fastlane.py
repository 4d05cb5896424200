"""The events fast lane (`service.fastlane.EventsFastLane`): the same answers as the route,
request by request, on SQLite and PostgreSQL, and only well-formed single events served by it.

Each case runs on two services over one database, the lane on and off, with users of their
own; statuses, bodies (ids compared by count and by retry identity) and the headers a
client acts on must be equal, and the lane must have served or passed exactly the cases it
should."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_api import make_settings, registry, signup  # noqa: F401  (registry: a fixture)

from primetime.registry import ModelRegistry
from primetime.service.app import create_app
from primetime.service.fastlane import EventsFastLane

EVENTS = "/api/v1/events"


def lane_of(c: TestClient) -> EventsFastLane | None:
    """The app's fast lane in its built middleware stack, or None."""
    layer: Any = c.app.middleware_stack  # type: ignore[attr-defined]
    while layer is not None:
        if isinstance(layer, EventsFastLane):
            return layer
        layer = getattr(layer, "app", None)
    return None


@pytest.fixture
def pair(db_url: str, registry: ModelRegistry, planted) -> Iterator[dict[bool, TestClient]]:  # noqa: F811
    clients = {}
    for on in (True, False):
        settings = make_settings(db_url, registry, events_fast_lane=on)
        clients[on] = TestClient(create_app(settings, dataset=planted, registry=registry))
        clients[on].__enter__()
    try:
        yield clients
    finally:
        for c in clients.values():
            c.__exit__(None, None, None)


def _post(c: TestClient, headers: dict[str, str], body: Any, **kw: Any) -> Any:
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"Content-Type": "application/json", **headers}
    return c.post(EVENTS, headers=headers, content=raw, **kw)


def _answer(r: Any) -> tuple[Any, ...]:
    """What a client acts on: status, body (ids as a count), and the telling headers."""
    body = r.json()
    if isinstance(body, dict) and "ids" in body:
        body = {**body, "ids": len(body["ids"])}
    telling = ("content-type", "www-authenticate", "retry-after", "cache-control")
    return r.status_code, body, {h: r.headers.get(h) for h in telling}


def _scenario(c: TestClient, tag: str) -> list[tuple[str, tuple[Any, ...], bool | None]]:
    """(case, answer, ids equal to the previous request's) for every case, in order."""
    h = signup(c, f"lane-{tag}")
    out: list[tuple[str, tuple[Any, ...], bool | None]] = []
    last: list[int] = []

    def case(name: str, headers: dict[str, str], body: Any, **kw: Any) -> None:
        nonlocal last
        r = _post(c, headers, body, **kw)
        ids = r.json().get("ids") if r.status_code < 300 else None
        out.append((name, _answer(r), ids == last if ids is not None else None))
        last = ids or []

    play = {"item_id": "i1", "event_type": "play", "event_id": "k1"}
    case("stored", h, play)
    case("retry", h, play)
    case("event_id reused", h, {**play, "item_id": "i2"})
    case("unknown title", h, {"item_id": "nope", "event_type": "play"})
    case("rate without rating", h, {"item_id": "i1", "event_type": "rate"})
    case("future ts", h, {"item_id": "i1", "event_type": "play", "ts": 4.1e9})
    case("no token", {}, {"item_id": "i1", "event_type": "play"})
    case("bad token", {"Authorization": "Bearer nonsense"}, {"item_id": "i1", "event_type": "play"})
    key = {**h, "Idempotency-Key": "retry-me"}
    case("idempotency key", key, {"item_id": "i3", "event_type": "like"})
    case("idempotency key again", key, {"item_id": "i3", "event_type": "like"})
    # The route's cases: none of these may be answered by the lane.
    case("NaN", h, '{"item_id": "i1", "event_type": "play", "context": {"x": NaN}}')
    case("NUL", h, '{"item_id": "i1", "event_type": "play", "device": "a\\u0000b"}')
    case("1e400", h, '{"item_id": "i1", "event_type": "play", "ts": 1e400}')
    case("batch", h, {"events": [{"item_id": "i4", "event_type": "play"}]})
    case("extra field", h, {"item_id": "i1", "event_type": "play", "why": 1})
    case("not JSON", h, "{not json")
    case("a list", h, "[1, 2]")
    case("bad key", {**h, "Idempotency-Key": "has space"}, {"item_id": "i1", "event_type": "play"})
    case("query", h, {"item_id": "i5", "event_type": "play"}, params={"x": "1"})
    assert c.post("/api/v1/auth/logout", headers=h).status_code == 204
    case("session ended", h, {"item_id": "i1", "event_type": "play"})
    return out


SERVED = {
    "stored",
    "retry",
    "event_id reused",
    "unknown title",
    "rate without rating",
    "future ts",
    "no token",
    "bad token",
    "idempotency key",
    "idempotency key again",
    "session ended",
}


def test_the_lane_answers_as_the_route_does(pair: dict[bool, TestClient]) -> None:
    lane = lane_of(pair[True])
    assert lane is not None and lane_of(pair[False]) is None
    with_lane = _scenario(pair[True], "on")
    served = lane.served
    assert served == len(SERVED), (served, lane.passed)
    without = _scenario(pair[False], "off")
    for (name, got, same), (_, want, want_same) in zip(with_lane, without, strict=True):
        assert (got, same) == (want, want_same), name
    statuses = {name: answer[0] for name, answer, _ in with_lane}
    assert statuses["stored"] == 201 and statuses["retry"] == 200
    assert statuses["event_id reused"] == 409 and statuses["session ended"] == 401
    assert statuses["NaN"] == statuses["NUL"] == statuses["unknown title"] == 422


def test_lane_requests_are_measured_under_the_route(pair: dict[bool, TestClient]) -> None:
    c = pair[True]
    h = signup(c, "metered")
    for n in range(3):
        assert _post(c, h, {"item_id": f"i{n + 1}", "event_type": "play"}).status_code == 201
    lane = lane_of(c)
    assert lane is not None and lane.served == 3
    text = c.get("/metrics").text
    counted = [
        line
        for line in text.splitlines()
        if 'route="/api/v1/events"' in line and 'status="201"' in line and "_count" in line
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) == 3
    assert 'route="unmatched"' not in text
