"""POST /api/goals/{goal_id}: change a goal; moving it to another website moves its conversions."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from conversions_core import goal_service
from conversions_core.goals import GOAL_RULES, GoalBody, GoalUpdate
from conversions_core.http import AppServices, CurrentUser, entry_point, new_app
from conversions_core.observability import GOALS_UPDATED, count
from conversions_core.params import GoalIdPath

app = new_app(GOAL_RULES, "goals")


@app.post("/api/goals/<goal_id>", summary="Update a goal", operation_id="updateGoal", tags=["Goals"])
def update_goal(
    goal_id: GoalIdPath,
    body: Annotated[GoalUpdate, Body()],
    user: CurrentUser,
    services: AppServices,
) -> GoalBody:
    goal = goal_service.update(services.repository, user, goal_id, body.changes())
    count(GOALS_UPDATED)
    return GoalBody(data=goal)


lambda_handler = entry_point(app)
