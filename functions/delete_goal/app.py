"""DELETE /api/goals/{goal_id}: delete a goal (204); its conversions go in the background."""

from aws_lambda_powertools.event_handler import Response

from conversions_core.goals import GOAL_RULES
from conversions_core.http import AppServices, CurrentUser, entry_point, new_app
from conversions_core.observability import GOALS_DELETED, count
from conversions_core.params import GoalIdPath

app = new_app(GOAL_RULES, "goals")


# No return annotation: Powertools would take it for the response's model.
@app.delete(
    "/api/goals/<goal_id>",
    summary="Delete a goal and, in the background, its conversions",
    operation_id="deleteGoal",
    tags=["Goals"],
    status_code=204,
    responses={204: {"description": "Deleted; no body"}},
)
def delete_goal(goal_id: GoalIdPath, user: CurrentUser, services: AppServices):  # type: ignore[no-untyped-def]
    services.repository.goals.delete(user, goal_id)
    count(GOALS_DELETED)
    return Response(204, None, "")


lambda_handler = entry_point(app)
