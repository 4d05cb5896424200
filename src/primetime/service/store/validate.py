"""Argument checks of the store: each raises `ValueError` naming the bad argument.

Checks that build a record type (`experiments._check_arms`) live with their aggregate, so that
`records` can use these checks without importing in a circle.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from primetime.service.db import ITEM_ID_MAX, SLUG_MAX, TITLE_KINDS

DEMOGRAPHIC_KEYS: Final = frozenset({"age", "gender", "occupation"})

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _check_str(name: str, value: object, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise ValueError(f"{name}: longer than {max_len} characters ({len(value)})")
    return value


def _check_ts(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: expected finite unix seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: negative unix seconds {value!r}")
    return float(value)


def _check_id(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an int, got {value!r}")
    return value


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit: expected an int >= 0, got {limit!r}")
    return limit


def _str_list(name: str, values: Iterable[str], max_len: int) -> list[str]:
    if isinstance(values, str):  # a bare string would be split into characters
        raise ValueError(f"{name}: expected a list of strings, got the string {values!r}")
    out = list(values)
    for i, v in enumerate(out):
        _check_str(f"{name}[{i}]", v, max_len)
    return out


def _json_default(obj: object) -> Any:
    item = getattr(obj, "item", None)  # NumPy scalars
    if callable(item):
        return item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _json(name: str, value: Any) -> Any:
    """A plain JSON copy of `value` (NumPy scalars unwrapped); NaN/inf are refused because
    PostgreSQL's JSONB cannot store them."""
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=_json_default))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: not storable as JSON ({err})") from err


def _check_demographics(demographics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if demographics is None:
        return None
    if not isinstance(demographics, Mapping):
        raise ValueError(f"demographics: expected a mapping, got {type(demographics).__name__}")
    unknown = set(demographics) - DEMOGRAPHIC_KEYS
    if unknown:
        raise ValueError(
            f"demographics: unknown keys {sorted(unknown)}; allowed: {sorted(DEMOGRAPHIC_KEYS)}"
        )
    age = demographics.get("age")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int) or not 0 < age < 150):
        raise ValueError(f"demographics: age must be an int in 1–149, got {age!r}")
    for key in ("gender", "occupation"):
        value = demographics.get(key)
        if value is not None:
            _check_str(f"demographics.{key}", value, 64)
    return {k: v for k, v in demographics.items() if v is not None}


def _check_slug(name: str, value: object) -> str:
    value = _check_str(name, value, SLUG_MAX)
    if not _SLUG.match(value):
        raise ValueError(f"{name}: {value!r} is not a slug (lower-case letters, digits, _ . -)")
    return value


def _check_title(i: int, row: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise ValueError(f"rows[{i}]: expected a mapping, got {type(row).__name__}")
    item_id = _check_str(f"rows[{i}].item_id", row.get("item_id"), ITEM_ID_MAX)
    title = row.get("title")
    if not isinstance(title, str):
        raise ValueError(f"rows[{i}].title: expected a string, got {title!r}")
    kind = row.get("kind", "movie")
    if kind not in TITLE_KINDS:
        raise ValueError(f"rows[{i}].kind: {kind!r} is not one of {', '.join(TITLE_KINDS)}")
    year = row.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        raise ValueError(f"rows[{i}].year: expected an int or None, got {year!r}")
    genres = _str_list(f"rows[{i}].genres", row.get("genres") or (), 64)
    out = {"item_id": item_id, "title": title, "kind": kind, "year": year, "genres": genres}
    if row.get("added_at") is not None:
        out["added_at"] = _check_ts(f"rows[{i}].added_at", row["added_at"])
    return out
