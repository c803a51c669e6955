"""The data table's stream records, read once for every reader (counts and cascades).

A record of a conversion, a goal or a job is read into the stored types (items.py). One that
cannot be read (an image without what every version writes, a record cut short) is returned
apart, with the reason, so that it is set aside and the rest of its batch goes on. Records of
other items, or of another table's shape, are none of the stream function's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conversions_core.repository.dynamo import from_dynamo
from conversions_core.repository.items import StoredConversion, StoredGoal, UnreadableItem
from conversions_core.repository.keys import CONVERSION_PREFIX, GOAL_PREFIX, JOB_PREFIX

# What DynamoDB's TTL deletions carry: AWS names the service as the record's principal.
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
CONVERSION, GOAL, JOB = "conversion", "goal", "job"
_KINDS = ((CONVERSION_PREFIX, CONVERSION), (GOAL_PREFIX, GOAL), (JOB_PREFIX, JOB))


@dataclass(frozen=True)
class StreamRecord:
    """One readable record: the item's kind, and its images before and after."""

    sequence: str
    event_id: str
    kind: str
    old: Any  # StoredConversion, StoredGoal or (a job) the item; None when there was none
    new: Any
    expired: bool = False  # deleted by DynamoDB's TTL
    created: float | None = None  # ApproximateCreationDateTime: when the write was made (epoch seconds)

    @property
    def user_id(self) -> int | None:
        some = self.new or self.old
        return getattr(some, "user_id", None)


@dataclass(frozen=True)
class UnreadableRecord:
    """A record set aside: as delivered, with why it could not be read."""

    record: dict[str, Any]
    reason: str

    @property
    def sequence(self) -> str | None:
        return (self.record.get("dynamodb") or {}).get("SequenceNumber")

    @property
    def keys(self) -> Any:
        return (self.record.get("dynamodb") or {}).get("Keys")


@dataclass
class Batch:
    records: list[StreamRecord]
    unreadable: list[UnreadableRecord]
    foreign: int  # records of other items or another table


def read_batch(records: list[dict[str, Any]]) -> Batch:
    """The batch's records in stream order, read; the unreadable ones apart."""
    batch = Batch([], [], 0)
    for record in records:
        try:
            read = _read(record)
        except (UnreadableItem, KeyError, TypeError, ValueError, AttributeError) as error:
            batch.unreadable.append(UnreadableRecord(record, f"{type(error).__name__}: {error}"))
            continue
        if read is None:
            batch.foreign += 1
        else:
            batch.records.append(read)
    return batch


def _read(record: dict[str, Any]) -> StreamRecord | None:
    stream = record.get("dynamodb")
    partition = ((stream or {}).get("Keys") or {}).get("pk", {}).get("S") if isinstance(stream, dict) else None
    kind = next((kind for prefix, kind in _KINDS if isinstance(partition, str) and partition.startswith(prefix)), None)
    if kind is None or not isinstance(stream, dict):
        return None
    old = _image(kind, stream.get("OldImage"))
    new = _image(kind, stream.get("NewImage"))
    if old is None and new is None:
        raise UnreadableItem("the record has no image")
    identity = record.get("userIdentity") or {}
    expired = record.get("eventName") == "REMOVE" and identity.get("principalId") == TTL_PRINCIPAL
    created = stream.get("ApproximateCreationDateTime")
    created = float(created) if isinstance(created, int | float) and not isinstance(created, bool) else None
    return StreamRecord(str(stream["SequenceNumber"]), str(record["eventID"]), kind, old, new, expired, created)


def _image(kind: str, image: dict[str, Any] | None) -> Any:
    if image is None:
        return None
    item = from_dynamo(image)
    if kind == CONVERSION:
        return StoredConversion.from_item(item)
    if kind == GOAL:
        return StoredGoal.from_item(item)
    if isinstance(item.get("goal_id"), bool) or not isinstance(item.get("goal_id"), int):
        raise UnreadableItem("a job without its goal")
    return item
