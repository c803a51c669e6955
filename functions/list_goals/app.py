"""GET /api/goals: a page of the caller's goals, with filters, search, order and links."""

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import Field

from conversions_core import goal_service
from conversions_core.goals import (
    GOAL_LIST_PARAMETERS,
    GOAL_RULES,
    GoalListBody,
    GoalListRequest,
    GoalOrderBy,
    GoalType,
)
from conversions_core.http import AppServices, CurrentUser, entry_point, list_response, new_app
from conversions_core.values import PageNumber, QueryId, ResultsPerPage

app = new_app(GOAL_RULES, "goals")
Search = Annotated[str, Field(max_length=100)]


# No return annotation: Powertools would take it for the response's model.
@app.get(
    "/api/goals",
    summary="List goals",
    operation_id="listGoals",
    tags=["Goals"],
    responses={200: {"description": "A page of goals", "content": {"application/json": {"model": GoalListBody}}}},
)
def list_goals(  # type: ignore[no-untyped-def]
    user: CurrentUser,
    services: AppServices,
    website_id: Annotated[QueryId | None, Query()] = None,
    type: Annotated[GoalType | None, Query()] = None,  # noqa: A002 - the contract's name
    search: Annotated[Search | None, Query()] = None,
    order_by: Annotated[GoalOrderBy, Query()] = "goal_id",
    order_type: Annotated[Literal["ASC", "DESC"], Query()] = "DESC",
    page: Annotated[PageNumber, Query()] = 1,
    results_per_page: Annotated[ResultsPerPage, Query()] = 25,
):
    request = GoalListRequest(
        website_id=website_id,
        type=type,
        search=search,
        order_by=order_by,
        ascending=order_type == "ASC",
        page=page,
        results_per_page=results_per_page,
    )
    goals, total = goal_service.list_goals(services.repository, user, request)
    return list_response(
        app, GoalListBody, goals, total, page, results_per_page, GOAL_LIST_PARAMETERS, services.settings.public_base_url
    )


lambda_handler = entry_point(app)
