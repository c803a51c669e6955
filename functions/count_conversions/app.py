"""The data table's stream -> count buckets, exactly once (see conversions_core.repository.counting)."""

from typing import Any

from conversions_core.observability import count_records, logger
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table
from conversions_core.settings import Settings
from conversions_core.wiring import dynamodb_client

settings = Settings.from_env()
counter = Counter(Table(dynamodb_client(settings.dynamodb_timeout_seconds), settings.data_table_name))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    outcome = counter.apply(event.get("Records") or [])
    count_records(applied=outcome.applied, repeated=outcome.skipped, failed=bool(outcome.failed_sequence))
    if outcome.failed_sequence:
        logger.warning(
            "Counting stopped at a record; the stream will deliver it again",
            extra={"sequence": outcome.failed_sequence},
        )
        return {"batchItemFailures": [{"itemIdentifier": outcome.failed_sequence}]}
    return {"batchItemFailures": []}
