"""The changes feed: one entry per change to a conversion, numbered densely per user.

Written by the counting function from the data table's stream, inside the transactions that
apply the counts (counting.py), so that a stream record's entry is written exactly once, with
its marker. Each transaction of a user's changes takes the next numbers after the user's head
item and moves the head on, on the condition that the head is still what was read: two shards'
(or two retried invocations') transactions for one user serialize, and a later one can only take
numbers above every number an earlier one committed. Entries and the head commit together, so
the entries numbered up to the head all exist (until they expire), and a strongly consistent
Query of the feed above a number never returns n + 1 while n is missing.

Entries expire through TTL after the retention (a deploy parameter) plus a grace of an hour, so
that an entry a cursor still promises is never deleted before the cursor is refused (see
conversions_core.feed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conversions_core.repository.dynamo import Table, from_dynamo, to_dynamo
from conversions_core.repository.items import DATETIME_FORMAT, StoredConversion
from conversions_core.repository.keys import (
    change_bounds,
    change_key,
    change_sequence,
    changes_head_key,
    changes_partition,
)
from conversions_core.repository.stream import CONVERSION, StreamRecord

CREATED, UPDATED, DELETED = "created", "updated", "deleted"
DEFAULT_RETENTION_DAYS = 7
# Kept past the retention: a transaction's entries are timed before it commits (a Lambda timeout
# at most), and a cursor is refused from the retention on, so no entry it promises is gone.
GRACE_SECONDS = 3600
# A Query page of entries: an entry is under 1 KB, a page under DynamoDB's 1 MB.
PAGE_ITEMS = 1000


@dataclass(frozen=True)
class Change:
    """One change to a conversion: its kind, when it was made, and the conversion after it (as it
    was, for a deletion)."""

    kind: str
    changed_at: str  # YYYY-MM-DD HH:MM:SS, UTC
    conversion: StoredConversion


@dataclass(frozen=True)
class Entry:
    """A change as the feed holds it: its number, and when the feed recorded it."""

    sequence: int
    recorded_at: int  # epoch seconds
    change: Change


def change_of(record: StreamRecord, now: float) -> Change | None:
    """The feed's change of a stream record: a conversion created, changed or deleted (DynamoDB's
    TTL deletions included); None for other records, and for a write that left the conversion as
    the API returns it (a rewrite of the same fields)."""
    if record.kind != CONVERSION or record.old == record.new:
        return None
    kind = CREATED if record.old is None else DELETED if record.new is None else UPDATED
    when = datetime.fromtimestamp(record.created if record.created is not None else now, UTC)
    return Change(kind, when.strftime(DATETIME_FORMAT), record.new or record.old)


def entry_items(changes: int) -> int:
    """The transaction items `changes` entries take: theirs, and the head's."""
    return changes + 1 if changes else 0


class ChangesFeed:
    def __init__(
        self,
        table: Table,
        clock: Callable[[], float],
        retention_days: int = DEFAULT_RETENTION_DAYS,
    ):
        self.table = table
        self._clock = clock
        self.retention_seconds = retention_days * 86400

    # -- writing (the counting function) -------------------------------------------------------------

    def operations(self, user_id: int, changes: list[Change]) -> list[dict[str, Any]]:
        """The transaction items that record `changes` (one user's, in stream order) after the
        user's last entry: a Put per entry and the head moved on, on the condition that the head
        is as read (a refused head is read again when the transaction is retried)."""
        if not changes:
            return []
        head = self.table.get(changes_head_key(user_id), consistent=True)
        last = int(head["sequence"]) if head else 0
        recorded = int(self._clock())
        expires = recorded + self.retention_seconds + GRACE_SECONDS
        puts = [
            {"Put": {"Item": to_dynamo(_entry_item(user_id, last + n, change, recorded, expires))}}
            for n, change in enumerate(changes, start=1)
        ]
        moved: dict[str, Any] = {"Item": to_dynamo({**changes_head_key(user_id), "sequence": last + len(changes)})}
        if head is None:
            moved["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            moved["ConditionExpression"] = "#s = :last"
            moved["ExpressionAttributeNames"] = {"#s": "sequence"}
            moved["ExpressionAttributeValues"] = to_dynamo({":last": last})
        return [*puts, {"Put": moved}]

    # -- reading (the feed's endpoint) ---------------------------------------------------------------

    def entries(self, user_id: int, after: int, budget: int) -> Iterator[Entry]:
        """The user's entries numbered above `after`, in order, at most `budget` of them read
        (strongly consistent: every transaction committed before the read is seen whole)."""
        low, high = change_bounds(after)
        left = budget
        kwargs: dict[str, Any] = {}
        while left > 0:
            response = next(
                self.table.query(
                    KeyConditionExpression="pk = :p AND sk BETWEEN :low AND :high",
                    ExpressionAttributeValues=to_dynamo({":p": changes_partition(user_id), ":low": low, ":high": high}),
                    ConsistentRead=True,
                    Limit=min(left, PAGE_ITEMS),
                    **kwargs,
                )
            )
            for item in response["Items"]:
                yield _entry(from_dynamo(item))
            left -= len(response["Items"])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _entry_item(user_id: int, sequence: int, change: Change, recorded: int, expires: int) -> dict[str, Any]:
    return {
        **change_key(user_id, sequence),
        **change.conversion.fields(),
        "change": change.kind,
        "changed_at": change.changed_at,
        "recorded_at": recorded,
        "expires_at": expires,
    }


def _entry(item: dict[str, Any]) -> Entry:
    change = Change(item["change"], item["changed_at"], StoredConversion.from_item(item))
    return Entry(change_sequence(item), int(item["recorded_at"]), change)
