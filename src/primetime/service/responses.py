"""JSON bodies built once and sent as bytes.

A recommendations response is cached as the JSON the client receives, so a cache
hit sends those bytes with the request's own fields joined in front, instead of
decoding them, validating them against the response model and encoding them again
(FastAPI's path for a returned dict). The response models stay in the OpenAPI
schema, and the API tests and the schemathesis fuzz check the bytes against them.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


class JSONBytes(Response):
    """A response whose body is already JSON."""

    media_type = "application/json"


def json_bytes(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON, as Starlette's ``JSONResponse`` writes it (no NaN)."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def join_objects(first: bytes, second: bytes) -> bytes:
    """One JSON object with the members of ``first`` then ``second`` (two JSON objects,
    without members in common)."""
    a, b = first.strip(), second.strip()
    if not (a.startswith(b"{") and a.endswith(b"}") and b.startswith(b"{") and b.endswith(b"}")):
        raise ValueError("join_objects takes two JSON objects")
    if a == b"{}" or b == b"{}":
        return b if a == b"{}" else a
    return a[:-1] + b"," + b[1:]


def item_ids(body: bytes) -> list[str]:
    """The ``item_id`` of each entry of a body's ``items``."""
    return [str(it["item_id"]) for it in json.loads(body)["items"]]
