"""The web UI speaks the one event vocabulary (primetime.data.events.EventType)."""

from __future__ import annotations

import re
from pathlib import Path

from primetime.data.events import EventType

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "primetime" / "web" / "templates"


def test_every_action_button_posts_an_event_type() -> None:
    """Each ``name="action"`` button's value is recorded as that event type, as spelled."""
    buttons = re.compile(r'<button[^>]*\bname="action"[^>]*\bvalue="([^"]+)"')
    actions = {v for f in TEMPLATES.glob("*.html") for v in buttons.findall(f.read_text())}
    assert {"play", "complete", "like", "dislike", "add-to-list", "remove-from-list"} <= actions
    assert actions <= set(EventType), sorted(actions - set(EventType))
