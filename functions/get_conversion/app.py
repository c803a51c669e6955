"""GET /api/goals-conversions/{conversion_id}: one of the caller's conversions."""

from typing import Annotated

from aws_lambda_powertools.event_handler.depends import Depends

from conversions_core.http import CurrentUser, entry_point, new_app
from conversions_core.models import PARAMETER_RULES, ConversionBody, ConversionIdPath
from conversions_core.services import Services

services = Services.from_env()
app = new_app(PARAMETER_RULES)


def get_services() -> Services:
    return services


@app.get(
    "/api/goals-conversions/<conversion_id>",
    summary="Get one conversion",
    operation_id="getConversion",
    tags=["Conversions"],
    response_description="The conversion",
)
def get_conversion(
    conversion_id: ConversionIdPath, user: CurrentUser, services: Annotated[Services, Depends(get_services)]
) -> ConversionBody:
    return ConversionBody(data=services.repository.conversions.get(user, conversion_id))


lambda_handler = entry_point(app, get_services)
