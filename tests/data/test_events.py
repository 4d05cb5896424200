"""The one event vocabulary (primetime.data.events): spellings, codes, loaders."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from primetime.data import EVENT_TYPES, Dataset
from primetime.data.events import (
    EVENT_CODE,
    EVENT_NAMES,
    EventType,
    event_code,
    event_from_code,
)
from primetime.data.tabular import ColumnMapping, load_table

#: The data layer's names before the enum, in their (stored int8) code order.
OLD_DATA_NAMES = (
    "view",
    "play",
    "complete",
    "rate",
    "like",
    "dislike",
    "add_to_list",
    "search_click",
)
#: The API's (and database's) values: unchanged.
API_VALUES = (
    "view",
    "click",
    "play",
    "complete",
    "rate",
    "like",
    "dislike",
    "add-to-list",
    "remove-from-list",
)
SRC = Path(__file__).resolve().parents[2] / "src"


def test_values_are_the_api_spelling() -> None:
    assert set(EventType) == set(API_VALUES)
    assert all(isinstance(e, str) for e in EventType)
    assert EventType.ADD_TO_LIST == "add-to-list" and str(EventType.ADD_TO_LIST) == "add-to-list"
    assert f"{EventType.REMOVE_FROM_LIST}" == "remove-from-list"


def test_codes_are_unchanged() -> None:
    expected = {
        "view": 0,
        "play": 1,
        "complete": 2,
        "rate": 3,
        "like": 4,
        "dislike": 5,
        "add-to-list": 6,
        "click": 7,
        "remove-from-list": 8,
    }
    assert dict(EVENT_CODE) == expected
    assert EVENT_NAMES == EVENT_TYPES == tuple(expected)
    assert {e: e.code for e in EventType} == expected
    # every old name still maps to the code it was stored with
    for code, old in enumerate(OLD_DATA_NAMES):
        assert event_code(old) == code
        assert EventType.parse(old) is event_from_code(code) is EventType.from_code(code)
    for bad in (-1, 9, 127):
        with pytest.raises(ValueError, match="unknown event code"):
            event_from_code(bad)


@pytest.mark.parametrize(
    ("text", "member"),
    [
        ("view", EventType.VIEW),
        ("play", EventType.PLAY),
        ("complete", EventType.COMPLETE),
        ("rate", EventType.RATE),
        ("like", EventType.LIKE),
        ("dislike", EventType.DISLIKE),
        ("click", EventType.CLICK),
        ("add-to-list", EventType.ADD_TO_LIST),
        ("remove-from-list", EventType.REMOVE_FROM_LIST),
        # legacy spellings
        ("add_to_list", EventType.ADD_TO_LIST),
        ("remove_from_list", EventType.REMOVE_FROM_LIST),
        ("search_click", EventType.CLICK),
        ("search-click", EventType.CLICK),
        ("Search_Click", EventType.CLICK),
        ("ADD-TO-LIST", EventType.ADD_TO_LIST),
        ("Add_To-List", EventType.ADD_TO_LIST),
        ("  like\t", EventType.LIKE),
        ("COMPLETE", EventType.COMPLETE),
        (EventType.DISLIKE, EventType.DISLIKE),
    ],
)
def test_parse_accepts_canonical_and_legacy_spellings(text: str, member: EventType) -> None:
    assert EventType.parse(text) is member


@pytest.mark.parametrize("text", ["binge", "", " ", "add to list", "addtolist", "search", None, 3])
def test_parse_refuses_unknown_names_naming_the_known_ones(text: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"unknown event type {text!r}")) as err:
        EventType.parse(text)
    assert all(name in str(err.value) for name in API_VALUES)


def test_try_parse_answers_none_for_unknown_names() -> None:
    assert EventType.try_parse(" Search_Click") is EventType.CLICK
    assert EventType.try_parse("binge") is None
    assert EventType.try_parse(None) is None


def test_strict_constructor_takes_only_canonical_values() -> None:
    assert EventType("add-to-list") is EventType.ADD_TO_LIST
    with pytest.raises(ValueError):
        EventType("add_to_list")


def _frame(events: list[str]) -> pl.DataFrame:
    n = len(events)
    return pl.DataFrame(
        {
            "user_id": ["u"] * n,
            "item_id": [f"i{k}" for k in range(n)],
            "rating": [4.0 if e.lower() == "rate" else None for e in events],
            "timestamp": list(range(n)),
            "event": events,
        }
    )


def test_dataset_saved_with_old_codes_reads_back_the_same_events(tmp_path: Path) -> None:
    ds = Dataset.from_frames("old", interactions=_frame(list(OLD_DATA_NAMES)))
    ds.save(tmp_path)
    # what the data layer wrote before the enum: code k for OLD_DATA_NAMES[k]
    path = tmp_path / "interactions.parquet"
    old_codes = pl.Series("event", list(range(len(OLD_DATA_NAMES))), dtype=pl.Int8)
    pl.read_parquet(path).with_columns(old_codes).write_parquet(path)
    back = Dataset.load(tmp_path).interactions
    assert back.event.dtype == np.int8
    names = [EVENT_TYPES[c] for c in back.event]
    assert names == [EventType.parse(old) for old in OLD_DATA_NAMES]
    assert names[-2:] == ["add-to-list", "click"]


def test_from_frames_reads_legacy_names_and_refuses_unknown_ones() -> None:
    legacy = ["VIEW", "add_to_list", "search_click", "search-click", "remove_from_list", "rate"]
    ds = Dataset.from_frames("legacy", interactions=_frame(legacy))
    assert ds.interactions.event.tolist() == [0, 6, 7, 7, 8, 3]
    with pytest.raises(ValueError, match=r"unknown event type\(s\) \['binge'\]; known:"):
        Dataset.from_frames("bad", interactions=_frame(["view", "binge"]))


def test_table_loader_reads_old_spellings(tmp_path: Path) -> None:
    f = tmp_path / "log.csv"
    f.write_text(
        "user_id,item_id,timestamp,event\n"
        "a,x,1,add_to_list\n"
        "a,y,2,Search_Click\n"
        "b,x,3, play \n"
        "b,y,4,remove-from-list\n"
        "b,z,5,CLICK\n"
    )
    ds = load_table(f, columns=ColumnMapping(rating=None, event="event"))
    got = [EVENT_TYPES[c] for c in ds.interactions.event]
    assert got == ["add-to-list", "click", "play", "remove-from-list", "click"]


def test_no_dash_to_underscore_normalisation_left_in_src() -> None:
    """Event names are parsed by EventType.parse, not patched with str.replace."""
    needle = '.replace("-", "_")'
    hits = [
        f"{p.relative_to(SRC)}:{n}"
        for p in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if needle in line
    ]
    assert hits == [], f"use EventType.parse instead of {needle}: {hits}"
