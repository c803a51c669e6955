"""GET /api/goals-conversions/changes: the caller's changes since a cursor, in the feed's order."""

import time
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from conversions_core.feed import PARAMETER_RULES, ChangeListBody, CursorText, FeedLimit, read_changes
from conversions_core.http import AppServices, CurrentUser, entry_point, get_services, new_app
from conversions_core.values import QueryId

app = new_app(PARAMETER_RULES, "changes")
get_services().cursor_key  # noqa: B018 - the deployment's key is read at init, not in the first request


@app.get(
    "/api/goals-conversions/changes",
    summary="Changes feed",
    description=(
        "Every change to the caller's conversions since `cursor`, each once, in the order the feed"
        " recorded them. Follow `meta.next_cursor`; an empty `data` means nothing new yet."
    ),
    operation_id="listChanges",
    tags=["Conversions"],
    responses={
        200: {"description": "Changes after the cursor", "content": {"application/json": {"model": ChangeListBody}}},
        410: {"description": "The cursor is older than the changes kept: copy the list again"},
    },
)
def list_changes(
    user: CurrentUser,
    services: AppServices,
    cursor: Annotated[CursorText | None, Query()] = None,
    limit: Annotated[FeedLimit, Query()] = 100,
    website_id: Annotated[QueryId | None, Query()] = None,
    goal_id: Annotated[QueryId | None, Query()] = None,
) -> ChangeListBody:
    clock = services.repository.clock
    now = clock().timestamp() if clock else time.time()
    return read_changes(
        services.repository.changes,
        services.cursor_key,
        user.user_id,
        cursor,
        limit,
        website_id,
        goal_id,
        now,
        services.settings.changes_retention_days,
    )


lambda_handler = entry_point(app)
