"""GET /api/goals-conversions/statistics: the caller's conversions counted per local interval."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from conversions_core.http import AppServices, CurrentUser, entry_point, new_app
from conversions_core.statistics import (
    PARAMETER_RULES,
    GroupBy,
    Interval,
    StatisticsBody,
    TimeZoneName,
    breakdown_body,
    local_intervals,
    range_bounds,
    statistics_body,
    statistics_request,
)
from conversions_core.values import QueryDatetime, QueryId

app = new_app(PARAMETER_RULES, "statistics")


@app.get(
    "/api/goals-conversions/statistics",
    summary="Conversions per interval",
    operation_id="conversionStatistics",
    tags=["Conversions"],
    response_description="Every interval of the range, in order, zeros included",
)
def conversion_statistics(
    user: CurrentUser,
    services: AppServices,
    datetime_start: Annotated[QueryDatetime, Query()],
    datetime_end: Annotated[QueryDatetime, Query()],
    goal_id: Annotated[QueryId | None, Query()] = None,
    website_id: Annotated[QueryId | None, Query()] = None,
    interval: Annotated[Interval, Query()] = "day",
    timezone: Annotated[TimeZoneName, Query()] = "UTC",
    group_by: Annotated[GroupBy | None, Query()] = None,
) -> StatisticsBody:
    request = statistics_request(datetime_start, datetime_end, interval, timezone, group_by)
    if group_by is not None:
        low, high = range_bounds(request)
        return breakdown_body(services.repository, user, request, goal_id, website_id, low, high)
    intervals, end = local_intervals(request)
    boundaries = [start for _, start in intervals] + [end]
    tallies = services.repository.statistics.tallies(user, goal_id, website_id, boundaries)
    return statistics_body(request, [label for label, _ in intervals], tallies)


lambda_handler = entry_point(app)
