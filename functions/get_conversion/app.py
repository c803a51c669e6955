"""GET /api/goals-conversions/{conversion_id}: the Lambda entry point.

The endpoint (route, validation, DynamoDB client) is in endpoint.py, imported on the first
request so that a cold start imports only this (see conversions_core.deferred).
"""

from typing import Any

from conversions_core.deferred import DeferredEndpoint

endpoint = DeferredEndpoint(__name__, __file__)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return endpoint.handle(event, context)
