"""Counts kept from the data table's stream, each stream record applied exactly once.

A batch of stream records is summed per user and bucket: a conversion created adds 1 to its
user's total, its website's and its goal's in each of its six buckets; one deleted takes 1 away;
one moved to another goal or website moves its 1. Each user's sums are applied in transactions
of at most 100 items: an `ADD` on each bucket, and for each record a small marker item named
after the record's event id, put on the condition that it does not exist yet. So a batch
delivered twice, or a function that dies between two transactions and is retried with the same
records (or a split of them), applies nothing twice: a refused transaction reads the markers,
drops the records already applied, and applies the rest. The same transactions write each
record's entry in the user's changes feed and move the feed's head (repository/changes.py), so
the feed is written exactly once too: a record that changes a conversion but no count (its
references) gets a marker and an entry, with no bucket.

The state is bounded: one marker of about 60 bytes per record, whatever else shares its second,
user or goal, expiring after two days (the stream keeps a record 24 hours). Write units
(transactional writes cost 2 per item of up to 1 KB): one conversion alone in a batch is 6
buckets + 1 marker + 1 feed entry + the feed's head = 18 units; n conversions of one user in
the same minute share their 6 buckets and the head: 2 (2n + 7) units per transaction of up to
46 of them, about 4.4 units a conversion in bulk (bench/writes.py).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from conversions_core.errors import DomainError
from conversions_core.repository import buckets
from conversions_core.repository.changes import Change, ChangesFeed, change_of, entry_items
from conversions_core.repository.dynamo import Cancelled, Table, to_dynamo
from conversions_core.repository.items import StoredConversion
from conversions_core.repository.keys import applied_key, count_deltas, count_key
from conversions_core.repository.stream import CONVERSION, StreamRecord

MAX_TRANSACTION_ITEMS = 100
MAX_BUCKET_ATTRIBUTES = 250  # "#a249 :d249, " is 13 characters: 250 of them stay under 4 KB
MARKER_LIFETIME_SECONDS = 2 * 86400  # beyond the stream's 24 h retention: no retry outlives it
_ATTEMPTS = 6


@dataclass
class CountChange:
    """What one stream record does to its user's counts."""

    sequence: str
    event_id: str
    user_id: int
    deltas: dict[tuple[str, str], int | Decimal] = field(default_factory=dict)  # (bucket, attribute) -> +-n
    change: Change | None = None  # the record's entry in the changes feed (repository/changes.py)


@dataclass
class Outcome:
    """A batch's result: the sequence number to resume from when part of it failed."""

    failed_sequence: str | None = None
    applied: int = 0
    skipped: int = 0


def count_change(record: StreamRecord) -> CountChange | None:
    """The count change of a conversion's record (None for other records, or when no count moves)."""
    if record.kind != CONVERSION:
        return None
    some: StoredConversion = record.new or record.old
    change = CountChange(record.sequence, record.event_id, some.user_id)
    for conversion, sign in ((record.old, -1), (record.new, +1)):
        if conversion is None:
            continue
        moment = datetime.fromisoformat(conversion.datetime)
        for bucket in buckets.bucket_labels(moment):
            for attribute, delta in count_deltas(conversion).items():
                key = (bucket, attribute)
                change.deltas[key] = change.deltas.get(key, 0) + sign * delta
    change.deltas = {key: delta for key, delta in change.deltas.items() if delta}
    return change if change.deltas else None


def earliest(sequences: list[str]) -> str:
    """The first of stream sequence numbers (decimal strings of any length)."""
    return min(sequences, key=int)


class Counter:
    """Counts, and the changes feed written in the same transactions (exactly once with them)."""

    def __init__(self, table: Table, clock: Callable[[], float] = time.time, feed: ChangesFeed | None = None):
        self.table = table
        self._clock = clock
        self.feed = feed or ChangesFeed(table, clock)

    def apply(self, records: list[StreamRecord]) -> Outcome:
        """Apply a batch of stream records (in stream order) to the count buckets."""
        outcome = Outcome()
        by_user: dict[int, list[CountChange]] = defaultdict(list)
        for record in records:
            change = count_change(record)
            entry = change_of(record, self._clock())
            if change is None and entry is not None:  # a change to the feed alone (references)
                change = CountChange(record.sequence, record.event_id, entry.conversion.user_id)
            if change is not None:  # a record that moves no count and changes nothing needs no marker
                change.change = entry
                by_user[change.user_id].append(change)
        failed: list[str] = []
        for changes in by_user.values():
            for chunk in _chunks(changes):
                try:
                    applied = self._apply_chunk(chunk)
                except (Cancelled, DomainError):  # a conflict that outlasted the retries, throttling, no time left
                    failed.append(chunk[0].sequence)
                    break  # this user's later records wait for the retry, in order
                outcome.applied += applied
                outcome.skipped += len(chunk) - applied
        if failed:
            outcome.failed_sequence = earliest(failed)
        return outcome

    def _apply_chunk(self, chunk: list[CountChange]) -> int:
        """Apply the chunk's records not yet applied; returns how many were applied."""
        for attempt in range(_ATTEMPTS):
            if not chunk:
                return 0
            try:
                self.table.transact(self._operations(chunk))
                return len(chunk)
            except Cancelled as cancelled:
                if "ConditionalCheckFailed" in cancelled.reasons:
                    done = self._applied(chunk)
                    chunk = [change for change in chunk if change.event_id not in done]
                elif not cancelled.conflict_only or attempt == _ATTEMPTS - 1:
                    raise
                else:
                    self.table.deadline.sleep(random.uniform(0, 0.02 * 2**attempt))
        raise Cancelled(["TransactionConflict"])

    def _applied(self, chunk: list[CountChange]) -> set[str]:
        markers = self.table.batch_get([applied_key(change.event_id) for change in chunk], consistent=True)
        return {marker["event_id"] for marker in markers}

    def _operations(self, chunk: list[CountChange]) -> list[dict[str, Any]]:
        sums: dict[str, dict[str, int | Decimal]] = defaultdict(lambda: defaultdict(int))
        for change in chunk:
            for (bucket, attribute), delta in change.deltas.items():
                sums[bucket][attribute] += delta
        operations = [_add_counts(chunk[0].user_id, bucket, deltas) for bucket, deltas in sorted(sums.items())]
        expires = int(self._clock()) + MARKER_LIFETIME_SECONDS
        feed = self.feed.operations(chunk[0].user_id, [c.change for c in chunk if c.change is not None])
        return [op for op in operations if op is not None] + [_mark(c.event_id, expires) for c in chunk] + feed


def _chunks(changes: list[CountChange]) -> list[list[CountChange]]:
    """Consecutive records whose buckets, markers and feed entries (with the feed's head) fit in one
    transaction, with at most MAX_BUCKET_ATTRIBUTES attributes added to a bucket (an update
    expression is at most 4 KB)."""
    chunks: list[list[CountChange]] = []
    current: list[CountChange] = []
    attributes: dict[str, set[str]] = defaultdict(set)
    for change in changes:
        wanted = defaultdict(set, {bucket: set(names) for bucket, names in attributes.items()})
        for bucket, attribute in change.deltas:
            wanted[bucket].add(attribute)
        entries = entry_items(sum(c.change is not None for c in (*current, change)))
        too_many = len(wanted) + len(current) + 1 + entries > MAX_TRANSACTION_ITEMS
        if current and (too_many or max(map(len, wanted.values())) > MAX_BUCKET_ATTRIBUTES):
            chunks.append(current)
            current, wanted = [], defaultdict(set)
            for bucket, attribute in change.deltas:
                wanted[bucket].add(attribute)
        current.append(change)
        attributes = wanted
    if current:
        chunks.append(current)
    return chunks


def _add_counts(user_id: int, bucket: str, deltas: dict[str, int | Decimal]) -> dict[str, Any] | None:
    deltas = {attribute: delta for attribute, delta in deltas.items() if delta}
    if not deltas:
        return None
    names = {f"#a{i}": attribute for i, attribute in enumerate(sorted(deltas))}
    values = {f":d{i}": deltas[attribute] for i, attribute in enumerate(sorted(deltas))}
    return {
        "Update": {
            "Key": to_dynamo(count_key(user_id, bucket)),
            "UpdateExpression": "ADD " + ", ".join(f"#a{i} :d{i}" for i in range(len(deltas))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_dynamo(values),
        }
    }


def _mark(event_id: str, expires: int) -> dict[str, Any]:
    """The record's marker: its put fails when the record was applied before."""
    item = {**applied_key(event_id), "event_id": event_id, "expires_at": expires}
    return {"Put": {"Item": to_dynamo(item), "ConditionExpression": "attribute_not_exists(pk)"}}
