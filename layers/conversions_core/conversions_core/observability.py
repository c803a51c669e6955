"""Logs, metrics and traces: Powertools, configured by the environment template.yaml sets.

- `logger`: JSON logs at POWERTOOLS_LOG_LEVEL; handlers inject the API Gateway request id as
  correlation_id. Events are never logged (they carry the Authorization header).
- `metrics`: CloudWatch EMF under POWERTOOLS_METRICS_NAMESPACE, flushed once per request.
- `tracer`: Powertools Tracer, built only where it traces (in Lambda, POWERTOOLS_TRACE_DISABLED
  not true). Building one imports the X-Ray SDK (~0.2-0.3 s) even when tracing is off, so
  locally and in tests it is None and nothing pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()

CONVERSIONS_CREATED = "ConversionsCreated"
CONVERSIONS_UPDATED = "ConversionsUpdated"
CONVERSIONS_DELETED = "ConversionsDeleted"
GOALS_CREATED = "GoalsCreated"
GOALS_UPDATED = "GoalsUpdated"
GOALS_DELETED = "GoalsDeleted"
VALIDATION_ERRORS = "ValidationErrors"
RATE_LIMITED_REQUESTS = "RateLimitedRequests"
SERVER_ERRORS = "ServerErrors"
STREAM_RECORDS_COUNTED = "StreamRecordsCounted"
STREAM_RECORDS_REPEATED = "StreamRecordsRepeated"
STREAM_BATCHES_FAILED = "StreamBatchesFailed"
STREAM_RECORDS_UNREADABLE = "StreamRecordsUnreadable"

# Responses counted from their status alone, wherever in the request they were decided.
_STATUS_METRICS = {
    400: VALIDATION_ERRORS,
    429: RATE_LIMITED_REQUESTS,
    500: SERVER_ERRORS,
    501: SERVER_ERRORS,  # an event of another payload format: the deployment is misconfigured
    503: SERVER_ERRORS,
}


def tracing_enabled() -> bool:
    in_lambda = bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL")
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true", "yes", "on")
    return in_lambda and not disabled


def _build_tracer() -> Any:
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(patch_modules=["botocore"])  # DynamoDB calls as subsegments; nothing else to patch


tracer = _build_tracer()


def count(name: str) -> None:
    """Count one business event (a conversion created, ...) in this request's metrics."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


@contextmanager
def observe(route: str) -> Iterator[dict[str, Any]]:
    """Around one request: a trace subsegment named after the route, then its metrics flushed.

    The caller stores the response's status code in the yielded dict.
    """
    outcome: dict[str, Any] = {}
    try:
        if tracer is None:
            yield outcome
        else:
            with tracer.provider.in_subsegment(f"## {route}") as subsegment:
                yield outcome
                subsegment.put_annotation("status", outcome.get("status", 0))
    finally:
        status_metric = _STATUS_METRICS.get(outcome.get("status", 0))
        if status_metric:
            count(status_metric)
        if metrics.metric_set:
            metrics.flush_metrics()  # one EMF line on stdout, unless POWERTOOLS_METRICS_DISABLED
            metrics.clear_metrics()


def count_records(applied: int, repeated: int, failed: bool, unreadable: int = 0) -> None:
    """The counting function's batch: records applied, records seen again (already applied),
    records set aside because they could not be read."""
    metrics.add_metric(name=STREAM_RECORDS_COUNTED, unit=MetricUnit.Count, value=applied)
    metrics.add_metric(name=STREAM_RECORDS_REPEATED, unit=MetricUnit.Count, value=repeated)
    if unreadable:
        metrics.add_metric(name=STREAM_RECORDS_UNREADABLE, unit=MetricUnit.Count, value=unreadable)
    if failed:
        metrics.add_metric(name=STREAM_BATCHES_FAILED, unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    metrics.clear_metrics()
