"""POST /api/goals-conversions/{conversion_id}: change a conversion's goal or references."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from conversions_core import conversion_service
from conversions_core.http import AppServices, CurrentUser, entry_point, new_app
from conversions_core.models import PARAMETER_RULES, ConversionBody, ConversionUpdate
from conversions_core.observability import CONVERSIONS_UPDATED, count
from conversions_core.params import ConversionIdPath

app = new_app(PARAMETER_RULES, "conversions")


@app.post(
    "/api/goals-conversions/<conversion_id>",
    summary="Update a conversion",
    operation_id="updateConversion",
    tags=["Conversions"],
    response_description="The updated conversion",
)
def update_conversion(
    conversion_id: ConversionIdPath,
    body: Annotated[ConversionUpdate, Body()],
    user: CurrentUser,
    services: AppServices,
) -> ConversionBody:
    conversion = conversion_service.update(services.repository, user, conversion_id, body.changes())
    count(CONVERSIONS_UPDATED)
    return ConversionBody(data=conversion)


lambda_handler = entry_point(app)
