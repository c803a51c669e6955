"""What moving or deleting a goal does to its conversions: done in the background by the
stream's consumer, with lists and counts following once the stream is drained."""

from __future__ import annotations

import pytest

from conftest import LambdaContext, Result, api_event, goal_event, invoke, settle
from conversions_core.auth import hash_api_key
from conversions_core.models import ListRequest
from conversions_core.repository import cascade
from conversions_core.repository.keys import job_key
from functions.delete_goal import app as delete_app
from functions.get_conversion import app as get_conversion_app
from functions.list_conversions import app as list_app
from functions.update_goal import app as update_app


def total(tenant, **query):
    return invoke(list_app, api_event("list_conversions", headers=tenant.auth, query=query)).json["meta"]["total"]


def conversions_of(tenant, count, goal_attribute="goal_id", start="2026-03-01 10:00:00"):
    day, hour = start[:10], int(start[11:13])
    rows = [
        {
            "goal_id": getattr(tenant, goal_attribute),
            "visitor_id": tenant.visitor_id,
            "datetime": f"{day} {hour + n // 60:02d}:{n % 60:02d}:00",
        }
        for n in range(count)
    ]
    return tenant.import_conversions(rows)


def test_moving_a_goal_moves_its_conversions_lists_and_counts(tenant):
    moved_ids = conversions_of(tenant, 4)
    kept_ids = conversions_of(tenant, 2, "second_goal_id", "2026-03-02 10:00:00")
    assert total(tenant, website_id=tenant.website_id) == 6
    result = invoke(
        update_app,
        goal_event("update_goal", tenant, tenant.goal_id, form={"website_id": tenant.lightweight_website_id}),
    )
    assert result.status == 200 and result.json["data"]["website_id"] == tenant.lightweight_website_id
    settle()
    assert total(tenant, website_id=tenant.website_id) == 2
    assert total(tenant, website_id=tenant.lightweight_website_id) == 4
    assert total(tenant, goal_id=tenant.goal_id) == 4 and total(tenant) == 6
    on_lightweight = invoke(
        list_app,
        api_event("list_conversions", headers=tenant.auth, query={"website_id": tenant.lightweight_website_id}),
    ).json["data"]
    assert sorted(c["id"] for c in on_lightweight) == sorted(moved_ids)
    for conversion_id in moved_ids:
        data = invoke(get_conversion_app, api_event("get_conversion", headers=tenant.auth, conversion_id=conversion_id))
        data = data.json["data"]
        assert data["website_id"] == tenant.lightweight_website_id
        assert data["visitor_id"] is None  # it belonged to the old website
    for conversion_id in kept_ids:
        data = invoke(get_conversion_app, api_event("get_conversion", headers=tenant.auth, conversion_id=conversion_id))
        assert data.json["data"]["website_id"] == tenant.website_id


def test_deleting_a_goal_answers_at_once_and_its_conversions_go_in_the_background(tenant):
    gone = conversions_of(tenant, 5)
    kept = conversions_of(tenant, 2, "second_goal_id", "2026-03-02 10:00:00")
    response = Result(delete_app.lambda_handler(goal_event("delete_goal", tenant, tenant.goal_id), LambdaContext()))
    assert response.status == 204 and response.text == ""
    # Meanwhile (the stream not yet drained): the goal's own list is empty, the others still hold them.
    user = tenant.repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    conversions = tenant.repository.conversions
    assert conversions.list(user, ListRequest(goal_id=tenant.goal_id)).conversions == []
    assert len(conversions.list(user, ListRequest(results_per_page=10)).conversions) == 7
    settle()
    assert total(tenant) == 2 and total(tenant, website_id=tenant.website_id) == 2
    assert total(tenant, goal_id=tenant.goal_id) == 0
    for conversion_id in gone:
        fetched = invoke(
            get_conversion_app, api_event("get_conversion", headers=tenant.auth, conversion_id=conversion_id)
        )
        assert fetched.status == 404
    listed = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={})).json["data"]
    assert sorted(c["id"] for c in listed) == sorted(kept)


@pytest.mark.parametrize("kind", ["move", "delete"])
def test_a_long_job_goes_on_over_several_invocations(tenant, monkeypatch, kind):
    monkeypatch.setattr(cascade, "PAGE", 4)
    monkeypatch.setattr(cascade, "PAGES_PER_INVOCATION", 2)
    conversions_of(tenant, 23)
    if kind == "move":
        event = goal_event(
            "update_goal", tenant, tenant.goal_id, json_body={"website_id": tenant.lightweight_website_id}
        )
        assert invoke(update_app, event).status == 200
        assert total(tenant, website_id=tenant.lightweight_website_id) == 23
        assert total(tenant, website_id=tenant.website_id) == 0
    else:
        assert invoke(delete_app, goal_event("delete_goal", tenant, tenant.goal_id)).status == 204
        assert total(tenant) == 0
    assert tenant.repository.conversions.table.get(job_key(tenant.goal_id), consistent=True) is None


def test_a_conversion_created_while_its_goal_went_away_follows_it(tenant, monkeypatch):
    user = tenant.repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    goal, website, _ = tenant.repository.accounts.goal_with_references(user, tenant.goal_id, {})
    assert invoke(delete_app, goal_event("delete_goal", tenant, tenant.goal_id)).status == 204
    # A create that read the goal just before it was deleted, and wrote just after.
    monkeypatch.setattr(type(tenant.repository.accounts), "goal_with_references", lambda *_: (goal, website, {}))
    late = tenant.repository.conversions.create(user, tenant.goal_id, {})
    settle()
    monkeypatch.undo()
    fetched = invoke(get_conversion_app, api_event("get_conversion", headers=tenant.auth, conversion_id=late.id))
    assert fetched.status == 404
    assert total(tenant) == 0
