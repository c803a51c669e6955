"""POST /api/goals-conversions/{conversion_id}

The route and what it needs; app.py imports this module on the first request.
"""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.logging import correlation_paths

from conversions_core.http import current_user, documented, handle, logger, new_resolver, ok
from conversions_core.models import ConversionBody, ConversionIdPath, ConversionUpdate
from conversions_core.observability import CONVERSIONS_UPDATED, count
from conversions_core.wiring import build_services

services = build_services()
app = new_resolver()


@app.post(
    "/api/goals-conversions/<conversion_id>",
    summary="Update a conversion",
    responses=documented(200, "The updated conversion", ConversionBody),
)
def update_conversion(conversion_id: ConversionIdPath, body: Annotated[ConversionUpdate, Body()]):
    conversion = services.repository.conversions.update(current_user(app), conversion_id, body.changes())
    count(CONVERSIONS_UPDATED)
    return ok(conversion.model_dump())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(app, event, context, services.gate)
