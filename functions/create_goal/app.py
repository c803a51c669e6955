"""POST /api/goals: define a goal on one of the caller's websites (multipart, urlencoded or JSON)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from conversions_core import goal_service
from conversions_core.goals import GOAL_RULES, GoalBody, GoalCreate
from conversions_core.http import AppServices, CurrentUser, entry_point, new_app
from conversions_core.observability import GOALS_CREATED, count

app = new_app(GOAL_RULES, "goals")


@app.post("/api/goals", summary="Create a goal", operation_id="createGoal", tags=["Goals"], status_code=201)
def create_goal(body: Annotated[GoalCreate, Body()], user: CurrentUser, services: AppServices) -> GoalBody:
    goal = goal_service.create(services.repository, user, body.model_dump(), body.model_fields_set)
    count(GOALS_CREATED)
    return GoalBody(data=goal)


lambda_handler = entry_point(app)
