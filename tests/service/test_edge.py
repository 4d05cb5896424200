"""Input a database cannot store is refused at the edge, on SQLite and PostgreSQL: NUL
characters, lone surrogates and non-finite numbers give a 422 naming the field (they
were 500s on PostgreSQL), events from the future are refused, and the request id has
one length limit everywhere."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_api import ADMIN_HEADERS, make_settings, registry, signup  # noqa: F401 (fixture)

from primetime.registry import ModelRegistry
from primetime.service.app import create_app
from primetime.service.db import REQUEST_ID_MAX
from primetime.service.edge import printable, strict_json, value_problems

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(db_url: str, registry: ModelRegistry, planted) -> Iterator[TestClient]:  # noqa: F811
    app = create_app(make_settings(db_url, registry), dataset=planted, registry=registry)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def refused(r, field: str) -> None:  # type: ignore[no-untyped-def]
    """A 422 in the API's documented shape whose message names ``field``."""
    assert r.status_code == 422, (r.status_code, r.text)
    body = r.json()
    assert field in body["message"], body["message"]
    assert any(".".join(map(str, d["loc"])) == field for d in body["detail"]), body["detail"]


# Raw JSON texts: each sends one unstorable value (escapes as a client would send them).
EVENT = '{"item_id": "i3", "event_type": "play", %s}'
BAD_EVENTS = [
    ('"device": "tv\\u0000"', "body.device"),
    ('"device": "tv\\ud800"', "body.device"),
    ('"request_id": "r\\u0000"', "body.request_id"),
    ('"context": {"x\\u0000y": "1"}', "body.context.x\\u0000y"),
    ('"context": {"k": "v\\u0000"}', "body.context.k"),
    ('"context": {"k": "\\udc00"}', "body.context.k"),
    ('"context": {"x": NaN}', "body.context.x"),
    ('"context": {"x": Infinity}', "body.context.x"),
    ('"context": {"x": -Infinity}', "body.context.x"),
    ('"context": {"x": 1e400}', "body.context.x"),
    ('"ts": 1e400', "body.ts"),
    ('"position": NaN', "body.position"),
]


@pytest.mark.parametrize(("fragment", "field"), BAD_EVENTS, ids=[f for f, _ in BAD_EVENTS])
def test_unstorable_event_fields_are_422_naming_the_field(
    client: TestClient, fragment: str, field: str
) -> None:
    h = signup(client, "edge-ev")
    r = client.post("/api/v1/events", headers={**h, **JSON}, content=EVENT % fragment)
    refused(r, field)
    batch = '{"events": [{"item_id": "i4", "event_type": "play"}, %s]}' % (EVENT % fragment)
    r = client.post("/api/v1/events", headers={**h, **JSON}, content=batch)
    refused(r, field.replace("body.", "body.events.1.", 1))
    assert client.get("/api/v1/me", headers=h).json()["events"] == 0, "nothing stored"


def test_unstorable_input_on_the_other_routes(client: TestClient) -> None:
    """Account, admin, path and query parameters: 422 naming the field, never a 500."""
    login = client.post(
        "/api/v1/auth/login", headers=JSON, content='{"username": "a\\u0000b", "password": "x"}'
    )
    refused(login, "body.username")
    signup_body = {
        "username": "edge-demo",
        "password": "pass-word-1",
        "demographics": {"occupation": "x\x00y"},
    }
    refused(client.post("/api/v1/auth/signup", json=signup_body), "body.demographics.occupation")
    h = signup(client, "edge-acct")
    onboarding = client.put("/api/v1/me/onboarding", headers=h, json={"genres": ["Drama\x00"]})
    refused(onboarding, "body.genres.0")
    exp = {
        "id": "ab\x00",
        "name": "x",
        "arms": [
            {"name": "a", "model_version": "itemknn:v1"},
            {"name": "b", "model_version": "popularity:v1"},
        ],
    }
    refused(client.post("/api/v1/admin/experiments", headers=ADMIN_HEADERS, json=exp), "body.id")
    exp = {**exp, "id": "ab", "name": "x\x00"}
    refused(client.post("/api/v1/admin/experiments", headers=ADMIN_HEADERS, json=exp), "body.name")
    note = {"version": "v1", "note": "n\x00"}
    promote = client.post(
        "/api/v1/admin/models/popularity/promote", headers=ADMIN_HEADERS, json=note
    )
    refused(promote, "body.note")
    ghost = client.get("/api/v1/admin/experiments/a%00b", headers=ADMIN_HEADERS)
    refused(ghost, "path.experiment_id")
    history = client.get("/api/v1/admin/promotions?name=x%00", headers=ADMIN_HEADERS)
    refused(history, "query.name")
    refused(client.get("/api/v1/search?q=st%00ar"), "query.q")
    refused(client.get("/api/v1/titles/i3%00"), "path.item_id")


def test_legitimate_input_is_unchanged(client: TestClient) -> None:
    """Unicode beyond the BMP (a proper surrogate pair in JSON), floats, big ints and
    invalid JSON behave as before: stored, or FastAPI's own answer."""
    h = signup(client, "edge-ok")
    body = (
        '{"item_id": "i3", "event_type": "rate", "rating": 4.5, "device": "\\ud83c\\udfac tv",'
        ' "context": {"f": 0.25, "big": 12345678901234567890, "e": 1e300, "t": true}}'
    )
    ok = client.post("/api/v1/events", headers={**h, **JSON}, content=body)
    assert ok.status_code == 201, ok.text
    broken = client.post("/api/v1/events", headers={**h, **JSON}, content='{"item_id": ')
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
    assert client.get("/api/v1/search?q=star").status_code == 200


def test_events_from_the_future_are_refused(client: TestClient) -> None:
    h = signup(client, "edge-ts")
    now = time.time()
    soon = client.post(
        "/api/v1/events", headers=h, json={"item_id": "i3", "event_type": "play", "ts": now + 60}
    )
    assert soon.status_code == 201, "a client clock a minute fast is fine"
    later = {"item_id": "i3", "event_type": "play", "ts": now + 3600}
    refused(client.post("/api/v1/events", headers=h, json=later), "body.ts")
    batch = {"events": [{"item_id": "i4", "event_type": "play"}, later]}
    refused(client.post("/api/v1/events", headers=h, json=batch), "body.events.1.ts")
    assert client.get("/api/v1/me", headers=h).json()["events"] == 1


def test_future_allowance_is_a_setting(
    db_url: str,
    registry: ModelRegistry,  # noqa: F811
    planted,
) -> None:
    settings = make_settings(db_url, registry, event_max_future_seconds=0)
    with TestClient(create_app(settings, dataset=planted, registry=registry)) as c:
        h = signup(c, "edge-ts0")
        ahead = {"item_id": "i3", "event_type": "play", "ts": time.time() + 30}
        refused(c.post("/api/v1/events", headers=h, json=ahead), "body.ts")


def test_request_id_has_one_limit(client: TestClient) -> None:
    h = signup(client, "edge-rid")
    longest = {"item_id": "i3", "event_type": "click", "request_id": "r" * REQUEST_ID_MAX}
    assert client.post("/api/v1/events", headers=h, json=longest).status_code == 201
    longer = {**longest, "request_id": "r" * (REQUEST_ID_MAX + 1)}
    refused(client.post("/api/v1/events", headers=h, json=longer), "body.EventIn.request_id")
    blank = {**longest, "request_id": " "}
    refused(client.post("/api/v1/events", headers=h, json=blank), "body.request_id")
    spec = client.get("/openapi.json").json()["components"]["schemas"]["EventIn"]
    schema = spec["properties"]["request_id"]["anyOf"][0]
    assert schema["maxLength"] == REQUEST_ID_MAX == 64


def test_strict_json_helpers() -> None:
    assert strict_json(b"not json") is None
    assert strict_json(b'{"a": [1, 2.5, "x"]}') == ({"a": [1, 2.5, "x"]}, [])
    parsed = strict_json(b'{"a": [NaN, "\\u0000"], "b\\ud800": 1}')
    assert parsed is not None
    assert [e["loc"] for e in parsed[1]] == [
        ("body", "a", 0),
        ("body", "a", 1),
        ("body", "b\\ud800"),
    ]
    assert value_problems(float("inf"), ("x",))[0]["type"] == "finite_number"
    assert printable("a\x00\ud800") == "a\\u0000\\ud800"
    json.dumps(printable("\udfff")).encode()  # safe to answer
