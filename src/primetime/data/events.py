"""The one event vocabulary: what a user can do with a title.

:class:`EventType` is shared by every layer: the data layer stores an event as
its int8 *code* (the member's position, see :data:`EVENT_CODE`) in prepared
datasets, the service stores and serves the member's *value* (the public API
spelling, ``"add-to-list"``), and the live preferences weight events by member.

The code order is a storage contract: prepared Parquet datasets written before
this module hold the same codes (``click`` is the former ``search_click``), so
new members go at the end and none is ever reordered or removed.

:meth:`EventType.parse` reads any spelling users' files or older code used
(``add_to_list``, ``ADD-TO-LIST``, ``search_click``); everything else compares
and serialises as the canonical string, since a member *is* that string.

This module imports nothing from the project, so any layer can use it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "EVENT_CODE",
    "EVENT_NAMES",
    "EventType",
    "event_code",
    "event_from_code",
]


class EventType(StrEnum):
    """One kind of user event; the value is the public API spelling.

    Members are declared in code order (see :attr:`code`): never reorder them.
    """

    VIEW = "view"
    PLAY = "play"
    COMPLETE = "complete"
    RATE = "rate"
    LIKE = "like"
    DISLIKE = "dislike"
    ADD_TO_LIST = "add-to-list"
    CLICK = "click"
    REMOVE_FROM_LIST = "remove-from-list"

    @property
    def code(self) -> int:
        """The int8 code stored in prepared datasets (0 = ``view``)."""
        return EVENT_CODE[self.value]

    @classmethod
    def from_code(cls, code: int) -> EventType:
        """The member stored as ``code``.

        Raises:
            ValueError: for a code no member has.
        """
        return event_from_code(code)

    @classmethod
    def parse(cls, text: object) -> EventType:
        """The member named by ``text``, in any known spelling.

        Accepts the canonical values and legacy spellings: any case, surrounding
        spaces, ``_`` for ``-`` (``add_to_list``), and ``search_click`` /
        ``search-click`` for :attr:`CLICK` (a search click is a click).

        Raises:
            ValueError: naming ``text`` and the known values.
        """
        found = cls.try_parse(text)
        if found is not None:
            return found
        known = ", ".join(EVENT_NAMES)
        raise ValueError(f"unknown event type {text!r}; known: {known}")

    @classmethod
    def try_parse(cls, text: object) -> EventType | None:
        """Like :meth:`parse`, but ``None`` for an unknown name."""
        if isinstance(text, EventType):
            return text
        if not isinstance(text, str):
            return None
        return _BY_SPELLING.get(text.strip().lower().replace("_", "-"))


#: Canonical values in code order: ``EVENT_NAMES[code]`` is the value stored as ``code``.
EVENT_NAMES: Final[tuple[str, ...]] = tuple(e.value for e in EventType)
#: Canonical value (or member: a member is its value) -> int8 code.
EVENT_CODE: Final[dict[str, int]] = {name: code for code, name in enumerate(EVENT_NAMES)}

_MEMBERS: Final[tuple[EventType, ...]] = tuple(EventType)
_BY_SPELLING: Final[dict[str, EventType]] = {
    **{e.value: e for e in EventType},
    "search-click": EventType.CLICK,
}


def event_code(text: object) -> int:
    """The int8 code of an event named in any spelling :meth:`EventType.parse` accepts."""
    return EventType.parse(text).code


def event_from_code(code: int) -> EventType:
    """The member stored as ``code``.

    Raises:
        ValueError: for a code no member has.
    """
    k = int(code)
    if not 0 <= k < len(_MEMBERS):
        raise ValueError(f"unknown event code {code!r}; known: 0..{len(_MEMBERS) - 1}")
    return _MEMBERS[k]
