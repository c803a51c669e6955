"""DELETE /api/goals/{goal_id}: delete a goal (204); its conversions go in the background."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends

from conversions_core.goals import GOAL_RULES, GoalIdPath
from conversions_core.http import CurrentUser, entry_point, new_app
from conversions_core.observability import GOALS_DELETED, count
from conversions_core.services import Services

services = Services.from_env()
app = new_app(GOAL_RULES)


def get_services() -> Services:
    return services


@app.delete(
    "/api/goals/<goal_id>",
    summary="Delete a goal and, in the background, its conversions",
    operation_id="deleteGoal",
    tags=["Goals"],
    status_code=204,
    responses={204: {"description": "Deleted; no body"}},
)
def delete_goal(goal_id: GoalIdPath, user: CurrentUser, services: Annotated[Services, Depends(get_services)]):
    services.repository.goals.delete(user, goal_id)
    count(GOALS_DELETED)
    return Response(204, None, "")


lambda_handler = entry_point(app, get_services)
