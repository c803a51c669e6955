"""The data table's stream: counts and the changes feed kept exactly once
(conversions_core.repository.counting, .changes), what a goal's move or deletion does to its
conversions (conversions_core.repository.cascade), and each change published as an EventBridge
event, at least once (conversions_core.publishing).

A record that cannot be read is set aside in the failures queue, as itself, and the rest of the
batch is counted: one bad record never stalls its shard."""

import time
from typing import Any

from conversions_core.failures import FailuresQueue
from conversions_core.observability import count_records, logger
from conversions_core.publishing import ConversionEvents
from conversions_core.repository.cascade import Cascade
from conversions_core.repository.changes import ChangesFeed, change_of
from conversions_core.repository.counting import Counter, earliest
from conversions_core.repository.dynamo import Table, dynamodb_client
from conversions_core.repository.stream import StreamRecord, read_batch
from conversions_core.settings import Settings

settings = Settings.from_env()
table = Table(dynamodb_client(settings.dynamodb_timeout_seconds), settings.data_table_name)
feed = ChangesFeed(table, time.time, settings.changes_retention_days)
counter, cascade, failures = Counter(table, feed=feed), Cascade(table), FailuresQueue.from_env()
events = ConversionEvents.from_env(settings.event_bus_name)


def count_batch(
    event: dict[str, Any],
    counter: Counter,
    cascade: Cascade,
    failures: FailuresQueue,
    events: ConversionEvents | None = None,
) -> dict[str, Any]:
    """Apply a batch; a partial batch response names the record to resume from."""
    batch = read_batch(event.get("Records") or [])
    failed = set_aside(batch.unreadable, failures)
    if batch.foreign:
        logger.warning("Records of no conversion, goal or job were skipped", extra={"records": batch.foreign})
    outcome = counter.apply(batch.records)
    if outcome.failed_sequence:
        failed.append(outcome.failed_sequence)
    cascade.apply(batch.records)  # safe to repeat, like the counts: a retried batch does it again
    if events is not None:
        failed += publish(batch.records, events)
    count_records(
        applied=outcome.applied, repeated=outcome.skipped, failed=bool(failed), unreadable=len(batch.unreadable)
    )
    if failed:
        resume = earliest(failed)
        logger.warning("Counting stopped at a record; the stream delivers it again", extra={"sequence": resume})
        return {"batchItemFailures": [{"itemIdentifier": resume}]}
    return {"batchItemFailures": []}


def publish(records: list[StreamRecord], events: ConversionEvents) -> list[str]:
    """Publish the batch's changes (all of them, those applied before included: a batch delivered
    again publishes again, so none is lost); the sequence number of the first record whose event
    could not be published, for the stream to deliver it again."""
    now = time.time()
    found = [(record, change_of(record, now)) for record in records]
    changed = [(record, change) for record, change in found if change is not None]
    failed = events.publish([change for _, change in changed])
    if not failed:
        return []
    logger.warning("Conversion events not published; the stream delivers them again", extra={"events": len(failed)})
    return [changed[min(failed)][0].sequence]


def set_aside(unreadable: list[Any], failures: FailuresQueue) -> list[str]:
    """Log and park the records that cannot be read; the sequence numbers of those that could
    not be parked (the stream delivers them again)."""
    for bad in unreadable:
        logger.error(
            "A stream record could not be read",
            extra={"keys": bad.keys, "sequence": bad.sequence, "reason": bad.reason},
        )
    try:
        failures.park([(bad.record, bad.reason) for bad in unreadable])
    except Exception:
        logger.exception("The failures queue did not take the unreadable records")
        return [bad.sequence for bad in unreadable if bad.sequence]
    return []


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    table.deadline.start(context)
    return count_batch(event, counter, cascade, failures, events)
