"""The rules a conversion's references follow, in one place for create, update and seed import.

A conversion belongs to a goal of the caller; its visitor, session and event are optional, need
a website with tracking_mode normal, must exist on the goal's website, and a session must be
the visitor's and an event the session's when both are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_LABELS = {"visitor_id": "Visitor", "session_id": "Session", "event_id": "Event"}

# The kinds of violation, in the order they are checked: a request is refused for the first.
TRACKING_MODE = "tracking_mode"
NOT_FOUND = "not_found"
NOT_RELATED = "not_related"


@dataclass(frozen=True)
class Violation:
    rule: str
    field: str
    title: str


def reference_violations(
    website: dict[str, Any], refs: dict[str, int | None], found: dict[str, dict[str, Any] | None]
) -> list[Violation]:
    """What is wrong with `refs` (field -> id or None) on a conversion of `website`.

    `found` holds the referenced items looked up by field (None when missing); only the first
    kind of violation found is returned, as a request is refused for it.
    """
    given = {name: value for name, value in refs.items() if value is not None}
    if given and website.get("tracking_mode") != "normal":
        title = "{} is only accepted when the goal's website has tracking_mode normal"
        return [Violation(TRACKING_MODE, name, title.format(name)) for name in given]
    missing = [
        Violation(NOT_FOUND, name, f"{_LABELS[name]} not found on the goal's website")
        for name in given
        if (found.get(name) or {}).get("website_id") != website["website_id"]
    ]
    if missing:
        return missing
    unrelated = []
    session, event = found.get("session_id"), found.get("event_id")
    if session and "visitor_id" in given and session.get("visitor_id") != given["visitor_id"]:
        unrelated.append(Violation(NOT_RELATED, "session_id", "session_id does not belong to the given visitor_id"))
    if event and "session_id" in given and event.get("session_id") != given["session_id"]:
        unrelated.append(Violation(NOT_RELATED, "event_id", "event_id does not belong to the given session_id"))
    return unrelated
