"""GET /api/goals-conversions

The route and what it needs; app.py imports this module on the first request.
"""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths

from conversions_core.errors import invalid
from conversions_core.http import current_user, documented, handle, list_response, logger, new_resolver
from conversions_core.models import (
    ConversionListBody,
    DatetimeField,
    ListRequest,
    OrderBy,
    OrderType,
    PageNumber,
    QueryDatetime,
    QueryId,
    ResultsPerPage,
)
from conversions_core.wiring import build_services

services = build_services()
app = new_resolver()


@app.get(
    "/api/goals-conversions",
    summary="List conversions",
    responses=documented(200, "A page of conversions", ConversionListBody),
)
def list_conversions(
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
        goal_id, website_id, datetime_start, datetime_end, order_type == "ASC", page, results_per_page
    )
    result = services.repository.conversions.list(current_user(app), request)
    return list_response(app, result, page, results_per_page, services.settings.public_base_url)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(app, event, context, services.gate)
