"""GET /api/goals/{goal_id}: one of the caller's goals."""

from conversions_core import goal_service
from conversions_core.goals import GOAL_RULES, GoalBody
from conversions_core.http import AppServices, CurrentUser, entry_point, new_app
from conversions_core.params import GoalIdPath

app = new_app(GOAL_RULES, "goals")


@app.get("/api/goals/<goal_id>", summary="Get one goal", operation_id="getGoal", tags=["Goals"])
def get_goal(goal_id: GoalIdPath, user: CurrentUser, services: AppServices) -> GoalBody:
    return GoalBody(data=goal_service.get(services.repository, user, goal_id))


lambda_handler = entry_point(app)
