"""POST /api/goals-conversions/{conversion_id}: change a conversion's goal or references."""

from typing import Annotated

from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body

from conversions_core.http import CurrentUser, entry_point, new_app
from conversions_core.models import PARAMETER_RULES, ConversionBody, ConversionIdPath, ConversionUpdate
from conversions_core.observability import CONVERSIONS_UPDATED, count
from conversions_core.services import Services

services = Services.from_env()
app = new_app(PARAMETER_RULES)


def get_services() -> Services:
    return services


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
    services: Annotated[Services, Depends(get_services)],
) -> ConversionBody:
    conversion = services.repository.conversions.update(user, conversion_id, body.changes())
    count(CONVERSIONS_UPDATED)
    return ConversionBody(data=conversion)


lambda_handler = entry_point(app, get_services)
