"""POST /api/goals-conversions: record a conversion (multipart, urlencoded or JSON body)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Header

from conversions_core import conversion_service
from conversions_core.http import AppServices, CurrentUser, entry_point, new_app
from conversions_core.idempotency import IdempotencyKey
from conversions_core.models import (
    PARAMETER_RULES,
    REFERENCE_FIELDS,
    WORTH_FIELDS,
    Conversion,
    ConversionBody,
    ConversionCreate,
)
from conversions_core.observability import CONVERSIONS_CREATED, count

app = new_app(PARAMETER_RULES, "conversions")


@app.post(
    "/api/goals-conversions",
    summary="Record a conversion",
    operation_id="createConversion",
    tags=["Conversions"],
    status_code=201,
    response_description="The recorded conversion",
)
def create_conversion(
    body: Annotated[ConversionCreate, Body()],
    user: CurrentUser,
    services: AppServices,
    idempotency_key: Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")] = None,
) -> ConversionBody:
    fields = body.model_dump()

    def create(sent: dict[str, Any]) -> dict[str, Any]:
        refs = {name: sent.get(name) for name in REFERENCE_FIELDS}
        worth = {name: sent[name] for name in WORTH_FIELDS if sent.get(name) is not None}
        created = conversion_service.create(services.repository, user, sent["goal_id"], refs, worth)
        count(CONVERSIONS_CREATED)  # here, not per response: an idempotent replay creates nothing
        return created.model_dump()

    if idempotency_key is None:
        return ConversionBody(data=Conversion.model_validate(create(fields)))
    services.once.register_lambda_context(app.lambda_context)
    first = services.once.run(create, user.user_id, idempotency_key, fields)
    return ConversionBody(data=Conversion.model_validate(first))


lambda_handler = entry_point(app)
