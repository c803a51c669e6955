"""The data table's stream: counts kept exactly once (conversions_core.repository.counting), and
what a goal's move or deletion does to its conversions (conversions_core.repository.cascade)."""

from typing import Any

from conversions_core.observability import count_records, logger
from conversions_core.repository.cascade import Cascade
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table, dynamodb_client
from conversions_core.settings import Settings

settings = Settings.from_env()
table = Table(dynamodb_client(settings.dynamodb_timeout_seconds), settings.data_table_name)
counter, cascade = Counter(table), Cascade(table)


def count_batch(event: dict[str, Any], counter: Counter, cascade: Cascade) -> dict[str, Any]:
    """Apply a batch; a partial batch response names the record to resume from."""
    records = event.get("Records") or []
    outcome = counter.apply(records)
    cascade.apply(records)  # safe to repeat, like the counts: a retried batch does it again
    count_records(applied=outcome.applied, repeated=outcome.skipped, failed=bool(outcome.failed_sequence))
    if outcome.failed_sequence:
        logger.warning(
            "Counting stopped at a record; the stream delivers it again", extra={"sequence": outcome.failed_sequence}
        )
        return {"batchItemFailures": [{"itemIdentifier": outcome.failed_sequence}]}
    return {"batchItemFailures": []}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return count_batch(event, counter, cascade)
