"""Domain errors of the service's actions, as each front end answers them: the API with its
JSON bodies and status codes, the web with the HTML error page (or its one-line fragment);
and the layering that makes this one translation per front end (the web calls actions,
never the API's route handlers)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web_support import ADMIN_TOKEN

from primetime.service import actions
from primetime.service.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
)

ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
SRC = Path(__file__).resolve().parents[2] / "src" / "primetime"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("no experiment 'ab'"), 404),
        (Conflict("experiment 'ab' exists"), 409),
        (Forbidden("not yours"), 403),
        (Unauthorized("wrong username or password"), 401),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, DomainError) else str(v),
)
def test_an_action_error_is_json_on_the_api_and_a_page_on_the_web(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, error: DomainError, status: int
) -> None:
    def refuse(*args: Any, **kw: Any) -> Any:
        raise error

    monkeypatch.setattr(actions, "stop_experiment", refuse)
    api = client.post("/api/v1/admin/experiments/ab/stop", headers=ADMIN)
    assert api.status_code == status
    assert api.headers["content-type"].startswith("application/json")
    assert api.json() == {"detail": str(error)}
    web = client.post("/admin/experiments/ab/stop", headers=ADMIN)
    assert web.status_code == status
    assert web.headers["content-type"].startswith("text/html")
    assert "<html" in web.text and "detail" not in web.text
    sentence = str(error)[0].upper() + str(error)[1:] + "."
    assert sentence.replace("'", "&#39;") in web.text
    fragment = client.post("/admin/experiments/ab/stop", headers={**ADMIN, "X-Fragment": "1"})
    assert fragment.status_code == status and fragment.text.startswith('<p class="error"')


def test_invalid_input_is_a_validation_shaped_422_on_the_api_and_a_page_on_the_web(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kw: Any) -> Any:
        raise InvalidInput.of([(("arms",), "no model version 'x:v1'"), ((), "and more")])

    monkeypatch.setattr(actions, "stop_experiment", refuse)
    api = client.post("/api/v1/admin/experiments/ab/stop", headers=ADMIN)
    assert api.status_code == 422
    assert api.json() == {
        "detail": [
            {"loc": ["body", "arms"], "msg": "no model version 'x:v1'", "type": "value_error"},
            {"loc": ["body"], "msg": "and more", "type": "value_error"},
        ],
        "message": "body.arms: no model version 'x:v1'; body: and more",
    }
    web = client.post("/admin/experiments/ab/stop", headers=ADMIN)
    assert web.status_code == 422 and web.headers["content-type"].startswith("text/html")
    assert "No model version &#39;x:v1&#39;; and more." in web.text


def test_real_refusals_of_the_actions(client: TestClient) -> None:
    """Without stubs: the same refusal through both front ends."""
    api = client.post("/api/v1/admin/experiments/nope/stop", headers=ADMIN)
    assert api.status_code == 404 and api.json() == {"detail": "no experiment 'nope'"}
    web = client.post("/admin/experiments/nope/stop", headers=ADMIN)
    assert web.status_code == 404 and "No experiment &#39;nope&#39;." in web.text
    api_signup = client.post(
        "/api/v1/auth/signup",
        json={"username": "err-picks", "password": "pass-word-1", "genres": ["Western"]},
    )
    assert api_signup.status_code == 422
    assert api_signup.json()["detail"][0]["loc"] == ["body", "genres"]
    assert client.post(
        "/signup", data={"username": "err-dup", "password": "pass-word-1"}
    ).is_redirect
    bad = client.post("/onboarding", data={"genres": ["Western"]})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    assert "Unknown genre(s) [&#39;Western&#39;]" in bad.text
    client.cookies.clear()
    dup = client.post(
        "/api/v1/auth/signup", json={"username": "err-dup", "password": "pass-word-1"}
    )
    assert dup.status_code == 409 and dup.json() == {"detail": "username 'err-dup' is taken"}
    login = client.post("/api/v1/auth/login", json={"username": "err-dup", "password": "x"})
    assert login.status_code == 401 and login.json() == {"detail": "wrong username or password"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_dependencies_point_one_way() -> None:
    """The web uses the service's actions and shared dependencies, never the API's route
    handlers; the service imports the web only where create_app wires both together."""
    handlers = {"account", "admin", "events", "ops", "recs", "titles"}
    for path in (SRC / "web").rglob("*.py"):
        used = {m for m in _imports(path) if m.startswith("primetime.service.routes.")}
        bad = {m for m in used if m.split(".")[3] in handlers or m.split(".")[3] == "errors"}
        assert not bad, f"{path.relative_to(SRC)} imports API route modules {sorted(bad)}"
    for path in (SRC / "service").rglob("*.py"):
        if path.name == "app.py" and path.parent.name == "service":
            continue
        web = {m for m in _imports(path) if m.startswith("primetime.web")}
        assert not web, f"{path.relative_to(SRC)} imports the web app {sorted(web)}"
