"""Pre-encoded JSON bodies: joining, encoding, reading item ids back."""

from __future__ import annotations

import json

import pytest

from primetime.service.responses import item_ids, join_objects, json_bytes
from primetime.service.schemas import Recommendations


def test_join_objects_keeps_every_member_in_order() -> None:
    joined = join_objects(json_bytes({"a": 1, "b": None}), json_bytes({"c": [1, "é"]}))
    assert joined == '{"a":1,"b":null,"c":[1,"é"]}'.encode()
    assert list(json.loads(joined)) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("a", "b", "want"), [(b"{}", b'{"x":1}', b'{"x":1}'), (b'{"x":1}', b" {} ", b'{"x":1}')]
)
def test_join_objects_with_an_empty_object(a: bytes, b: bytes, want: bytes) -> None:
    assert join_objects(a, b) == want


@pytest.mark.parametrize("bad", [b"[1]", b"1", b'"{}"', b""])
def test_join_objects_refuses_anything_but_objects(bad: bytes) -> None:
    with pytest.raises(ValueError, match="two JSON objects"):
        join_objects(b'{"a":1}', bad)


def test_json_bytes_refuses_nan() -> None:
    with pytest.raises(ValueError):
        json_bytes({"score": float("nan")})


def test_a_joined_recommendations_body_is_valid_for_its_response_model() -> None:
    item = {
        "item_id": "i1",
        "title": "T",
        "kind": "movie",
        "year": 1999,
        "genres": ["Drama"],
        "score": 1.5,
        "reason": {"code": "popular", "text": "Popular", "source_item_id": None},
    }
    body = json_bytes({"cold_start": False, "items": [item]})
    head = json_bytes(
        {"user_id": 3, "request_id": "r", "model_version": "m:v1", "experiment_id": None}
    )
    Recommendations.model_validate_json(join_objects(head, body))
    assert item_ids(body) == ["i1"]
