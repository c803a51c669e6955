"""GET /api/goals-conversions/{conversion_id}

The route and what it needs; app.py imports this module on the first request.
"""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from conversions_core.http import current_user, documented, handle, logger, new_resolver, ok
from conversions_core.models import ConversionBody, ConversionIdPath
from conversions_core.wiring import build_services

services = build_services()
app = new_resolver()


@app.get(
    "/api/goals-conversions/<conversion_id>",
    summary="Get one conversion",
    responses=documented(200, "The conversion", ConversionBody),
)
def get_conversion(conversion_id: ConversionIdPath):
    conversion = services.repository.conversions.get(current_user(app), conversion_id)
    return ok(conversion.model_dump())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(app, event, context, services.gate)
