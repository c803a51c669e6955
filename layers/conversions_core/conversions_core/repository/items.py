"""The stored shape of the records the repository reads and writes, apart from the API's models.

An item (or a stream image) is read into these types field by field: attributes they do not
know are ignored and optional ones may be missing, so an item written by an older or newer
version still reads; one that lacks what every version writes is `UnreadableItem`. The API maps
them to its own models (conversions_core.models), which may change without touching them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

REFERENCE_FIELDS = ("visitor_id", "session_id", "event_id")
# The kind of item each reference names.
REFERENCE_KINDS = {"visitor_id": "VISITOR", "session_id": "SESSION", "event_id": "EVENT"}
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


class UnreadableItem(ValueError):
    """An item or stream image without what every version of the service writes."""


def _id(item: dict[str, Any], name: str, optional: bool = False) -> Any:
    value = item.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UnreadableItem(f"{name} is not a positive integer: {value!r}")
    return value


def _datetime(item: dict[str, Any], name: str = "datetime") -> str:
    value = item.get(name)
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        raise UnreadableItem(f"{name} is not a datetime: {value!r}")
    try:
        datetime.strptime(value, DATETIME_FORMAT)
    except ValueError:
        raise UnreadableItem(f"{name} is not a datetime: {value!r}") from None
    return value


def _worth(item: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    """An item's value and currency: both, or neither when either is missing or unreadable."""
    value, currency = item.get("value"), item.get("currency")
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value < 0 or not isinstance(currency, str):
        return None, None
    return Decimal(value), currency


@dataclass(frozen=True)
class StoredConversion:
    """A conversion as the data table holds it."""

    id: int
    goal_id: int
    website_id: int
    user_id: int
    datetime: str
    visitor_id: int | None = None
    session_id: int | None = None
    event_id: int | None = None
    value: Decimal | None = None  # with `currency`, or neither: what the conversion was worth
    currency: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> StoredConversion:
        """The conversion of an item by id, a listed item or a stream image; UnreadableItem."""
        value, currency = _worth(item)
        return cls(
            id=_id(item, "id"),
            goal_id=_id(item, "goal_id"),
            website_id=_id(item, "website_id"),
            user_id=_id(item, "user_id"),
            datetime=_datetime(item),
            **{name: _id(item, name, optional=True) for name in REFERENCE_FIELDS},
            value=value,
            currency=currency,
        )

    def fields(self) -> dict[str, Any]:
        return asdict(self)

    def but(self, **changes: Any) -> StoredConversion:
        return replace(self, **changes)


@dataclass(frozen=True)
class StoredGoal:
    """What the stream's readers need of a goal item: whose it is and where."""

    goal_id: int
    website_id: int
    user_id: int

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> StoredGoal:
        return cls(_id(item, "goal_id"), _id(item, "website_id"), _id(item, "user_id"))


@dataclass(frozen=True)
class User:
    """The caller, as its API key item says."""

    user_id: int
    status: str
    rate_limit_per_minute: int | None
    api_key_hash: str


@dataclass(frozen=True, kw_only=True)
class ListRequest:
    """A list's filters, range (aware datetimes, inclusive), order and page."""

    goal_id: int | None = None
    website_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    ascending: bool = False
    page: int = 1
    results_per_page: int = 25


@dataclass(frozen=True)
class Page:
    conversions: list[StoredConversion]
    total: int
