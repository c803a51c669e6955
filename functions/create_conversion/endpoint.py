"""POST /api/goals-conversions

The route and what it needs; app.py imports this module on the first request.
"""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.logging import correlation_paths

from conversions_core.http import current_user, documented, handle, logger, new_resolver, ok
from conversions_core.idempotency import IdempotencyKey, OnceOnly
from conversions_core.models import Conversion, ConversionBody, ConversionCreate
from conversions_core.observability import CONVERSIONS_CREATED, count
from conversions_core.wiring import build_services

services = build_services()
once = OnceOnly(services)
app = new_resolver()


def _create(fields: dict[str, Any]) -> dict[str, Any]:
    refs = {name: value for name, value in fields.items() if name != "goal_id"}
    created = services.repository.conversions.create(current_user(app), fields["goal_id"], refs)
    count(CONVERSIONS_CREATED)  # here, not per response: an idempotent replay creates nothing
    return created.model_dump()


@app.post(
    "/api/goals-conversions",
    summary="Record a conversion",
    status_code=201,
    response_description="Created",
    responses=documented(201, "The recorded conversion", ConversionBody),
)
def create_conversion(
    body: Annotated[ConversionCreate, Body()],
    idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
):
    fields = body.model_dump()
    if idempotency_key is None:
        return ok(_create(fields), status=201)
    first = once.run(_create, current_user(app).user_id, idempotency_key, fields)
    return ok(Conversion.model_validate(first).model_dump(), status=201)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    once.register_lambda_context(context)
    return handle(app, event, context, services.gate)
