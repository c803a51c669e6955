"""Conversion events on EventBridge: one per change the feed records, for the operator's rules.

`source` `goals-conversions`, `detail-type` `Conversion Created`, `Conversion Updated` or
`Conversion Deleted`, `detail` the conversion as the API returns it (its `user_id` included),
`time` when the change was made. The schema is docs/events/conversion-event.schema.json.

EventBridge Pipes could read the stream and filter it without code, but cannot turn DynamoDB's
typed JSON (`{"N": "12"}`) into this detail, so the stream function publishes: PutEvents, 10
entries a call, the entries a call reports failed (FailedEntryCount) sent again with a backoff,
and when some still fail the batch is answered from the first record whose event failed, so
that the stream delivers it again. Events are published **at least once**: a batch delivered
again (or retried after a failure) publishes its events again, while the counts and the feed,
guarded by their markers, are applied once.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from conversions_core.models import Conversion
from conversions_core.repository.changes import Change

SOURCE = "goals-conversions"
DETAIL_TYPES = {"created": "Conversion Created", "updated": "Conversion Updated", "deleted": "Conversion Deleted"}
ENTRIES_PER_CALL = 10
ATTEMPTS = 4


def event_entry(change: Change, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry of one change."""
    detail = Conversion.from_stored(change.conversion).model_dump(mode="json")
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPES[change.kind],
        "Detail": json.dumps(detail, separators=(",", ":")),
        "EventBusName": bus_name,
        "Time": datetime.strptime(change.changed_at, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC),
    }


class ConversionEvents:
    """Publishes changes on one bus through one EventBridge client (None: events are off)."""

    def __init__(self, client: Any, bus_name: str | None, sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.bus_name = bus_name
        self._sleep = sleep

    @classmethod
    def from_env(cls, bus_name: str | None) -> ConversionEvents:
        if not bus_name:
            return cls(None, None)
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=1, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
        return cls(boto3.client("events", config=config), bus_name)

    def publish(self, changes: list[Change]) -> list[int]:
        """Publish the changes, in order, 10 a call; returns the indexes of those that could not
        be published after ATTEMPTS tries (empty when every one was)."""
        if self.client is None or not changes:
            return []
        failed: list[int] = []
        for start in range(0, len(changes), ENTRIES_PER_CALL):
            indexes = list(range(start, min(start + ENTRIES_PER_CALL, len(changes))))
            failed += self._put(indexes, [event_entry(changes[i], self.bus_name or "") for i in indexes])
        return failed

    def _put(self, indexes: list[int], entries: list[dict[str, Any]]) -> list[int]:
        for attempt in range(ATTEMPTS):
            if attempt:
                self._sleep(random.uniform(0, 0.1 * 2**attempt))
            try:
                response = self.client.put_events(Entries=entries)
            except (BotoCoreError, ClientError):  # a whole call refused or timed out: all of its entries again
                if attempt == ATTEMPTS - 1:
                    return indexes
                continue
            if not response.get("FailedEntryCount"):
                return []
            # Results are in the order of the entries; a failed one has an ErrorCode.
            results = response["Entries"]
            kept = [n for n, result in enumerate(results) if result.get("ErrorCode")]
            indexes, entries = [indexes[n] for n in kept], [entries[n] for n in kept]
        return indexes
