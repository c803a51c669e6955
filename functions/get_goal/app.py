"""GET /api/goals/{goal_id}: one of the caller's goals."""

from typing import Annotated

from aws_lambda_powertools.event_handler.depends import Depends

from conversions_core.goals import GOAL_RULES, GoalBody, GoalIdPath
from conversions_core.http import CurrentUser, entry_point, new_app
from conversions_core.services import Services

services = Services.from_env()
app = new_app(GOAL_RULES)


def get_services() -> Services:
    return services


@app.get("/api/goals/<goal_id>", summary="Get one goal", operation_id="getGoal", tags=["Goals"])
def get_goal(goal_id: GoalIdPath, user: CurrentUser, services: Annotated[Services, Depends(get_services)]) -> GoalBody:
    return GoalBody(data=services.repository.goals.get(user, goal_id))


lambda_handler = entry_point(app, get_services)
