"""GET /api/goals-conversions: a page of the caller's conversions, with filters, order and links."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from conversions_core.errors import invalid
from conversions_core.http import AppServices, CurrentUser, entry_point, list_response, new_app
from conversions_core.models import (
    LIST_PARAMETERS,
    PARAMETER_RULES,
    Conversion,
    ConversionListBody,
    DatetimeField,
    ListRequest,
    OrderBy,
    OrderType,
)
from conversions_core.values import PageNumber, QueryDatetime, QueryId, ResultsPerPage

app = new_app(PARAMETER_RULES, "conversions")


# No return annotation: Powertools would take it for the response's model.
@app.get(
    "/api/goals-conversions",
    summary="List conversions",
    operation_id="listConversions",
    tags=["Conversions"],
    responses={
        200: {"description": "A page of conversions", "content": {"application/json": {"model": ConversionListBody}}}
    },
)
def list_conversions(  # type: ignore[no-untyped-def]
    user: CurrentUser,
    services: AppServices,
    goal_id: Annotated[QueryId | None, Query()] = None,
    website_id: Annotated[QueryId | None, Query()] = None,
    datetime_field: Annotated[DatetimeField | None, Query()] = None,
    datetime_start: Annotated[QueryDatetime | None, Query()] = None,
    datetime_end: Annotated[QueryDatetime | None, Query()] = None,
    order_by: Annotated[OrderBy, Query()] = "conversion_id",
    order_type: Annotated[OrderType, Query()] = "DESC",
    page: Annotated[PageNumber, Query()] = 1,
    results_per_page: Annotated[ResultsPerPage, Query()] = 25,
):
    # order_by needs no branch: ids grow with datetime, so both orders are the same sort key.
    if datetime_start and datetime_end and datetime_start > datetime_end:
        raise invalid("datetime_start", "datetime_start must not be after datetime_end")
    request = ListRequest(
        goal_id=goal_id,
        website_id=website_id,
        start=datetime_start,
        end=datetime_end,
        ascending=order_type == "ASC",
        page=page,
        results_per_page=results_per_page,
    )
    found = services.repository.conversions.list(user, request)
    return list_response(
        app,
        ConversionListBody,
        [Conversion.from_stored(conversion) for conversion in found.conversions],
        found.total,
        page,
        results_per_page,
        LIST_PARAMETERS,
        services.settings.public_base_url,
    )


lambda_handler = entry_point(app)
