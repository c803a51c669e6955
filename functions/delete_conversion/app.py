"""DELETE /api/goals-conversions/{conversion_id}: delete a conversion (204, no body)."""

from aws_lambda_powertools.event_handler import Response

from conversions_core.http import AppServices, CurrentUser, entry_point, new_app
from conversions_core.models import PARAMETER_RULES
from conversions_core.observability import CONVERSIONS_DELETED, count
from conversions_core.params import ConversionIdPath

app = new_app(PARAMETER_RULES, "conversions")


# No return annotation: Powertools would take it for the response's model.
@app.delete(
    "/api/goals-conversions/<conversion_id>",
    summary="Delete a conversion",
    operation_id="deleteConversion",
    tags=["Conversions"],
    status_code=204,
    responses={204: {"description": "Deleted; no body"}},
)
def delete_conversion(conversion_id: ConversionIdPath, user: CurrentUser, services: AppServices):  # type: ignore[no-untyped-def]
    services.repository.conversions.delete(user, conversion_id)
    count(CONVERSIONS_DELETED)
    return Response(204, None, "")


lambda_handler = entry_point(app)
