"""DELETE /api/goals-conversions/{conversion_id}: delete a conversion (204, no body)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends

from conversions_core.http import CurrentUser, entry_point, new_app
from conversions_core.models import PARAMETER_RULES, ConversionIdPath
from conversions_core.observability import CONVERSIONS_DELETED, count
from conversions_core.services import Services

services = Services.from_env()
app = new_app(PARAMETER_RULES)


def get_services() -> Services:
    return services


@app.delete(
    "/api/goals-conversions/<conversion_id>",
    summary="Delete a conversion",
    operation_id="deleteConversion",
    tags=["Conversions"],
    status_code=204,
    responses={204: {"description": "Deleted; no body"}},
)
def delete_conversion(
    conversion_id: ConversionIdPath, user: CurrentUser, services: Annotated[Services, Depends(get_services)]
):
    services.repository.conversions.delete(user, conversion_id)
    count(CONVERSIONS_DELETED)
    return Response(204, None, "")


lambda_handler = entry_point(app, get_services)
