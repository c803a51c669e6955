"""DELETE /api/goals-conversions/{conversion_id}

The route and what it needs; app.py imports this module on the first request.
"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from conversions_core.http import current_user, documented, handle, logger, new_resolver, no_content
from conversions_core.models import ConversionIdPath
from conversions_core.observability import CONVERSIONS_DELETED, count
from conversions_core.wiring import build_services

services = build_services()
app = new_resolver()


@app.delete(
    "/api/goals-conversions/<conversion_id>",
    summary="Delete a conversion",
    status_code=204,
    response_description="Deleted",
    responses=documented(204, "Deleted; no body"),
)
def delete_conversion(conversion_id: ConversionIdPath):
    services.repository.conversions.delete(current_user(app), conversion_id)
    count(CONVERSIONS_DELETED)
    return no_content()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(app, event, context, services.gate)
