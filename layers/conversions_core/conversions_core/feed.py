"""The changes feed as the API serves it: cursors, filters, the page and its answer.

A cursor says where a reader is: the user, the sequence number of the last change it was given
(or passed over), and a time from which every later change was recorded (the last change's own
time, or the moment of a read that found nothing more). It is signed with an HMAC whose key
belongs to the deployment: an edited cursor, or one that is not this deployment's, is a 400
naming `cursor`, and so is another user's (which a reader could not use anyway: the feed only
ever queries the caller's partition). A cursor whose time is older than the retention may point
before changes that have expired: a 410.

The cost of a call is bounded by `limit`: without a filter it reads `limit` + 1 entries at most;
with one, `FILTER_READS` times `limit` + 1, passing over the entries that do not match (the
cursor moves past them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Strict, WithJsonSchema

from conversions_core.errors import GoneError, Problem, invalid
from conversions_core.models import Conversion
from conversions_core.repository.changes import ChangesFeed, Entry
from conversions_core.values import contract_error, text_id

__all__ = [
    "FILTER_READS",
    "PARAMETER_RULES",
    "ChangeListBody",
    "CursorText",
    "FeedLimit",
    "read_changes",
]

FILTER_READS = 4
MAX_LIMIT = 1000
CURSOR_RULE = "cursor must be the meta.next_cursor of an earlier answer to this user"
LIMIT_RULE = f"limit must be a whole number from 1 to {MAX_LIMIT}, in digits"
PARAMETER_RULES = {
    "cursor": CURSOR_RULE,
    "limit": LIMIT_RULE,
    "goal_id": "goal_id must be a positive integer",
    "website_id": "website_id must be a positive integer",
}
_CURSOR = re.compile(r"([A-Za-z0-9_-]{4,80})\.([A-Za-z0-9_-]{22})")
_PAYLOAD = re.compile(r"c1\.([1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,19})\.([1-9][0-9]{0,11})")
_CONTEXT = b"goals-conversions changes cursor\x00"


def _cursor_shape(value: str) -> str:
    if not _CURSOR.fullmatch(value):
        raise contract_error(CURSOR_RULE)
    return value


def _limit_range(value: int) -> int:
    if not 1 <= value <= MAX_LIMIT:
        raise contract_error(LIMIT_RULE)
    return value


CursorText = Annotated[
    str,
    AfterValidator(_cursor_shape),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[A-Za-z0-9_-]{4,80}\.[A-Za-z0-9_-]{22}$",
            "description": "meta.next_cursor of an earlier answer (opaque, signed: any other value is a 400)",
        }
    ),
]
FeedLimit = Annotated[
    int,
    Strict(),
    AfterValidator(_limit_range),
    BeforeValidator(text_id),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
]


# -- cursors ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    user_id: int
    sequence: int  # the last change given or passed over (0: none yet)
    since: int  # epoch seconds: every change after `sequence` was recorded from then on


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _CONTEXT + payload, hashlib.sha256).digest()[:16]


def encode_cursor(key: bytes, cursor: Cursor) -> str:
    payload = f"c1.{cursor.user_id}.{cursor.sequence}.{cursor.since}".encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def decode_cursor(key: bytes, text: str, user_id: int) -> Cursor:
    """The cursor `text` stands for: a 400 naming `cursor` when it is malformed, edited, signed
    with another key, or another user's."""
    found = _CURSOR.fullmatch(text)
    try:
        payload, mac = (_unb64(found.group(1)), _unb64(found.group(2))) if found else (b"", b"")
    except ValueError:
        payload, mac = b"", b""
    parts = _PAYLOAD.fullmatch(payload.decode("ascii", "replace")) if payload else None
    canonical = found is not None and _b64(payload) == found.group(1) and _b64(mac) == found.group(2)
    if (
        parts is None
        or not canonical  # base64 leaves spare bits: an edit of them is an edit too
        or not hmac.compare_digest(mac, _mac(key, payload))
        or int(parts.group(1)) != user_id
    ):
        raise invalid("cursor", CURSOR_RULE)
    return Cursor(int(parts.group(1)), int(parts.group(2)), int(parts.group(3)))


# -- the answer ----------------------------------------------------------------------------------------


class ConversionChange(BaseModel):
    """One change: `created`, `updated` or `deleted`, when it was made (UTC), and the conversion
    after it (for `deleted`, as it was)."""

    change: Literal["created", "updated", "deleted"]
    changed_at: str
    conversion: Conversion


class ChangesMeta(BaseModel):
    next_cursor: str
    has_more: bool


class ChangeListBody(BaseModel):
    """Response of the changes feed."""

    data: list[ConversionChange]
    meta: ChangesMeta


def read_changes(
    feed: ChangesFeed,
    key: bytes,
    user_id: int,
    cursor: str | None,
    limit: int,
    website_id: int | None,
    goal_id: int | None,
    now: float,
    retention_days: int,
) -> ChangeListBody:
    """The caller's changes after `cursor` (from the oldest kept without one), at most `limit`,
    those of a website or goal when filtered (on the conversion after the change; before it for a
    deletion)."""
    after = 0
    if cursor is not None:
        read = decode_cursor(key, cursor, user_id)
        if read.since + retention_days * 86400 < now:
            raise GoneError(
                Problem(
                    f"This cursor is older than the {retention_days} days changes are kept: some changes after it"
                    " are gone. Copy the list again (GET /api/goals-conversions), then follow the feed from"
                    " a call without cursor",
                    "cursor",
                )
            )
        after = read.sequence
    filtered = website_id is not None or goal_id is not None
    budget = limit * (FILTER_READS if filtered else 1) + 1
    data: list[Entry] = []
    position, since, read_count, has_more = after, int(now), 0, False
    for entry in feed.entries(user_id, after, budget):
        read_count += 1
        if len(data) == limit:
            has_more = True
            break
        position, since = entry.sequence, entry.recorded_at
        conversion = entry.change.conversion
        if (website_id is None or conversion.website_id == website_id) and (
            goal_id is None or conversion.goal_id == goal_id
        ):
            data.append(entry)
    else:
        has_more = read_count == budget  # stopped by the budget: more may follow
    if not has_more:
        since = int(now)  # nothing more was committed when the read ran: later changes come after it
    return ChangeListBody(
        data=[
            ConversionChange(
                change=entry.change.kind,
                changed_at=entry.change.changed_at,
                conversion=Conversion.from_stored(entry.change.conversion),
            )
            for entry in data
        ],
        meta=ChangesMeta(next_cursor=encode_cursor(key, Cursor(user_id, position, max(since, 1))), has_more=has_more),
    )
