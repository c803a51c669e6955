"""Counts kept from the data table's stream, each stream record applied exactly once.

A batch of stream records is summed per user and bucket: a conversion created adds 1 to its
user's total, its website's and its goal's in each of its six buckets; one deleted takes 1 away;
one moved to another goal or website moves its 1. Each user's sums are applied in transactions
of at most 100 items that also add the records' event ids to the user's ledger items (one per
second of the conversions' datetimes), on the condition that none of them is there yet. So a
batch delivered twice, or a function that dies between two transactions and is retried with the
same records (or a split of them), applies nothing twice: a refused transaction reads the
ledger, drops the records already applied, and applies the rest.

Write units (transactional writes cost 2 per item under 1 KB): one conversion alone in a batch
is 6 buckets + 1 ledger = 7 items, 14 units; 100 conversions of one website in the same few
seconds share their buckets: about 6 buckets + a few ledgers, about 20 units, 0.2 a conversion.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conversions_core.errors import DomainError
from conversions_core.repository import buckets
from conversions_core.repository.dynamo import Cancelled, Table, from_dynamo, to_dynamo
from conversions_core.repository.keys import (
    CONVERSION_PREFIX,
    conversion_from_item,
    count_attributes,
    count_key,
    ledger_key,
    listed_key,
)

MAX_TRANSACTION_ITEMS = 100
MAX_EVENTS_PER_LEDGER = 100  # keeps a ledger's condition under DynamoDB's 4 KB expression limit
LEDGER_LIFETIME_SECONDS = 2 * 86400  # beyond the stream's 24 h retention: no retry outlives it
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
_ATTEMPTS = 6


@dataclass
class Change:
    """What one stream record does to its user's counts."""

    sequence: str
    event_id: str
    user_id: int
    second: str  # the conversion's datetime: the ledger item it is recorded in
    deltas: dict[tuple[str, str], int] = field(default_factory=dict)  # (bucket, attribute) -> +-n


@dataclass
class Outcome:
    """A batch's result: the sequence number to resume from when part of it failed."""

    failed_sequence: str | None = None
    applied: int = 0
    skipped: int = 0


def read_change(record: dict[str, Any]) -> Change | None:
    """The count change of a stream record, or None for records of other items."""
    stream = record["dynamodb"]
    if not stream["Keys"]["pk"]["S"].startswith(CONVERSION_PREFIX):
        return None
    old = conversion_from_item(from_dynamo(stream["OldImage"])) if "OldImage" in stream else None
    new = conversion_from_item(from_dynamo(stream["NewImage"])) if "NewImage" in stream else None
    some = new or old
    if some is None:
        return None
    change = Change(stream["SequenceNumber"], record["eventID"], some.user_id, some.datetime)
    for conversion, delta in ((old, -1), (new, +1)):
        if conversion is None:
            continue
        moment = datetime.fromisoformat(conversion.datetime)
        for bucket in buckets.bucket_labels(moment):
            for attribute in count_attributes(conversion):
                key = (bucket, attribute)
                change.deltas[key] = change.deltas.get(key, 0) + delta
    change.deltas = {key: delta for key, delta in change.deltas.items() if delta}
    return change


def expired_listing(record: dict[str, Any]) -> dict[str, str] | None:
    """The listed item to delete when DynamoDB's TTL deleted a conversion (retention)."""
    stream = record["dynamodb"]
    expired = record.get("eventName") == "REMOVE" and record.get("userIdentity", {}).get("principalId") == TTL_PRINCIPAL
    if not expired or not stream["Keys"]["pk"]["S"].startswith(CONVERSION_PREFIX) or "OldImage" not in stream:
        return None
    return listed_key(conversion_from_item(from_dynamo(stream["OldImage"])))


class Counter:
    def __init__(self, table: Table):
        self.table = table

    def apply(self, records: list[dict[str, Any]]) -> Outcome:
        """Apply a batch of stream records (in stream order) to the count buckets."""
        outcome = Outcome()
        by_user: dict[int, list[Change]] = defaultdict(list)
        for record in records:
            change = read_change(record)
            if change is not None and change.deltas:  # a record that moves no count needs no ledger
                by_user[change.user_id].append(change)
        failed: list[str] = []
        for user_id, changes in by_user.items():
            for chunk in _chunks(changes):
                try:
                    applied = self._apply_chunk(user_id, chunk)
                except (Cancelled, DomainError):  # a conflict that outlasted the retries, or throttling
                    failed.append(chunk[0].sequence)
                    break  # this user's later records wait for the retry, in order
                outcome.applied += applied
                outcome.skipped += len(chunk) - applied
        expired = {str(sorted(key.items())): key for key in map(expired_listing, records) if key is not None}
        self.table.batch_delete(list(expired.values()))  # deleting a missing item is fine: a retry does no harm
        if failed:
            outcome.failed_sequence = min(failed, key=lambda sequence: (len(sequence), sequence))
        return outcome

    def _apply_chunk(self, user_id: int, chunk: list[Change]) -> int:
        """Apply the chunk's records not yet applied; returns how many were applied."""
        for attempt in range(_ATTEMPTS):
            if not chunk:
                return 0
            try:
                self.table.transact(_operations(user_id, chunk))
                return len(chunk)
            except Cancelled as cancelled:
                if "ConditionalCheckFailed" in cancelled.reasons:
                    done = self._applied_events(user_id, chunk)
                    chunk = [change for change in chunk if change.event_id not in done]
                elif not cancelled.conflict_only or attempt == _ATTEMPTS - 1:
                    raise
                else:
                    time.sleep(0.01 * 2**attempt)
        raise Cancelled(["TransactionConflict"])

    def _applied_events(self, user_id: int, chunk: list[Change]) -> set[str]:
        seconds = sorted({change.second for change in chunk})
        ledgers = self.table.batch_get([ledger_key(user_id, second) for second in seconds], consistent=True)
        return {event for ledger in ledgers for event in ledger.get("events", set())}


def _chunks(changes: list[Change]) -> list[list[Change]]:
    """Consecutive records whose buckets and ledgers fit in one transaction."""
    chunks: list[list[Change]] = []
    current: list[Change] = []
    items: set[str] = set()
    events_per_second: dict[str, int] = defaultdict(int)
    for change in changes:
        wanted = {bucket for bucket, _ in change.deltas} | {f"ledger {change.second}"}
        full = len(items | wanted) > MAX_TRANSACTION_ITEMS or events_per_second[change.second] >= MAX_EVENTS_PER_LEDGER
        if current and full:
            chunks.append(current)
            current, items, events_per_second = [], set(), defaultdict(int)
        current.append(change)
        items |= wanted
        events_per_second[change.second] += 1
    if current:
        chunks.append(current)
    return chunks


def _operations(user_id: int, chunk: list[Change]) -> list[dict[str, Any]]:
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    events: dict[str, list[str]] = defaultdict(list)
    for change in chunk:
        for (bucket, attribute), delta in change.deltas.items():
            sums[bucket][attribute] += delta
        events[change.second].append(change.event_id)
    operations = [_add_counts(user_id, bucket, deltas) for bucket, deltas in sorted(sums.items())]
    operations = [operation for operation in operations if operation is not None]
    operations += [_record_events(user_id, second, ids) for second, ids in sorted(events.items())]
    return operations


def _add_counts(user_id: int, bucket: str, deltas: dict[str, int]) -> dict[str, Any] | None:
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


def _record_events(user_id: int, second: str, event_ids: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {f":e{i}": event for i, event in enumerate(event_ids)}
    values[":events"] = set(event_ids)
    values[":expires"] = int(time.time()) + LEDGER_LIFETIME_SECONDS
    return {
        "Update": {
            "Key": to_dynamo(ledger_key(user_id, second)),
            "UpdateExpression": "ADD events :events SET expires_at = :expires",
            "ConditionExpression": " AND ".join(f"NOT contains(events, :e{i})" for i in range(len(event_ids))),
            "ExpressionAttributeValues": to_dynamo(values),
        }
    }
