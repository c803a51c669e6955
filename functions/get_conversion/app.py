"""GET /api/goals-conversions/{conversion_id}: one of the caller's conversions."""

from conversions_core.http import AppServices, CurrentUser, entry_point, new_app
from conversions_core.models import PARAMETER_RULES, Conversion, ConversionBody
from conversions_core.params import ConversionIdPath

app = new_app(PARAMETER_RULES, "conversions")


@app.get(
    "/api/goals-conversions/<conversion_id>",
    summary="Get one conversion",
    operation_id="getConversion",
    tags=["Conversions"],
    response_description="The conversion",
)
def get_conversion(conversion_id: ConversionIdPath, user: CurrentUser, services: AppServices) -> ConversionBody:
    return ConversionBody(data=Conversion.from_stored(services.repository.conversions.get(user, conversion_id)))


lambda_handler = entry_point(app)
