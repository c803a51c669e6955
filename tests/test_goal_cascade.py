"""What moving or deleting a goal does to its conversions: done in the background by the
stream's consumer, with lists and counts following once the stream is drained."""

from __future__ import annotations

import json

import pytest

from conftest import LambdaContext, Result, api_event, goal_event, invoke, new_id, settle
from conversions_core import conversion_service
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
    late = conversion_service.create(tenant.repository, user, tenant.goal_id, {})
    settle()
    monkeypatch.undo()
    fetched = invoke(get_conversion_app, api_event("get_conversion", headers=tenant.auth, conversion_id=late.id))
    assert fetched.status == 404
    assert total(tenant) == 0


# -- interleavings: a goal changed again while its first job is half done ------------------------


def half_done_job(tenant, monkeypatch, meanwhile=None) -> cascade.Cascade:
    """The first invocation of a goal's job, run by hand: one page of 4 conversions handled, then
    a JOB# item saying where to go on (its stream record not yet delivered). `meanwhile` runs
    between the two, as a request would while the invocation is under way: the JOB# item's
    record then comes after that request's in the stream."""
    monkeypatch.setattr(cascade, "PAGE", 4)
    monkeypatch.setattr(cascade, "PAGES_PER_INVOCATION", 1)
    worker = cascade.Cascade(tenant.repository.conversions.table)
    if meanwhile is not None:
        put = worker.table.put
        monkeypatch.setattr(worker.table, "put", lambda item, **kw: meanwhile() or put(item, **kw))
    assert worker.follow(tenant.goal_id) == 4
    monkeypatch.undo()
    assert worker.table.get(job_key(tenant.goal_id), consistent=True) is not None
    return worker


def where_they_are(tenant, conversion_ids):
    """(status, website) of each conversion, through the API."""
    found = []
    for conversion_id in conversion_ids:
        result = invoke(
            get_conversion_app, api_event("get_conversion", headers=tenant.auth, conversion_id=conversion_id)
        )
        found.append((result.status, result.json["data"]["website_id"] if result.status == 200 else None))
    return found


def third_website(tenant) -> int:
    from conversions_core.seed import load_seed

    website_id = new_id()
    website = {"website_id": website_id, "user_id": tenant.user_id, "host": "c.example", "tracking_mode": "normal"}
    load_seed(tenant.repository, {"websites": [website]})
    return website_id


def unsettled(module, event) -> Result:
    """A request whose stream records are not yet delivered."""
    return Result(module.lambda_handler(event, LambdaContext()))


def move_goal(tenant, website_id):
    event = goal_event("update_goal", tenant, tenant.goal_id, json_body={"website_id": website_id})
    assert unsettled(update_app, event).status == 200


def delete_goal(tenant):
    assert unsettled(delete_app, goal_event("delete_goal", tenant, tenant.goal_id)).status == 204


def test_a_goal_moved_twice_while_its_first_job_runs_ends_where_the_goal_is(tenant, monkeypatch):
    moved = conversions_of(tenant, 13)
    kept = conversions_of(tenant, 2, "second_goal_id", "2026-03-02 10:00:00")
    last = third_website(tenant)
    move_goal(tenant, tenant.lightweight_website_id)
    half_done_job(tenant, monkeypatch, meanwhile=lambda: move_goal(tenant, last))
    settle()
    assert where_they_are(tenant, moved) == [(200, last)] * 13
    assert where_they_are(tenant, kept) == [(200, tenant.website_id)] * 2
    assert total(tenant, website_id=last) == 13 and total(tenant, website_id=tenant.lightweight_website_id) == 0
    assert total(tenant, website_id=tenant.website_id) == 2 and total(tenant) == 15
    assert tenant.repository.conversions.table.get(job_key(tenant.goal_id), consistent=True) is None


def test_a_goal_moved_then_deleted_while_its_job_runs_loses_every_conversion(tenant, monkeypatch):
    gone = conversions_of(tenant, 13)
    move_goal(tenant, tenant.lightweight_website_id)
    half_done_job(tenant, monkeypatch, meanwhile=lambda: delete_goal(tenant))
    settle()
    assert where_they_are(tenant, gone) == [(404, None)] * 13
    assert total(tenant) == 0 and total(tenant, website_id=tenant.lightweight_website_id) == 0


def test_a_conversion_created_as_its_goal_goes_during_the_deletion_is_deleted_too(tenant, monkeypatch):
    gone = conversions_of(tenant, 13)
    user = tenant.repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    goal, website, _ = tenant.repository.accounts.goal_with_references(user, tenant.goal_id, {})
    delete_goal(tenant)
    half_done_job(tenant, monkeypatch)
    with monkeypatch.context() as patch:  # a create that read the goal just before it went
        patch.setattr(type(tenant.repository.accounts), "goal_with_references", lambda *_: (goal, website, {}))
        late = conversion_service.create(tenant.repository, user, tenant.goal_id, {})
    settle()
    assert where_they_are(tenant, [*gone, late.id]) == [(404, None)] * 14
    assert total(tenant) == 0


def test_a_conversion_moved_onto_a_goal_that_moves_follows_it(tenant, monkeypatch):
    conversions_of(tenant, 9)
    [other] = conversions_of(tenant, 1, "second_goal_id", "2026-03-02 10:00:00")
    user = tenant.repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    move_goal(tenant, tenant.lightweight_website_id)
    half_done_job(tenant, monkeypatch)
    # A request that read the goal on its old website moves a conversion onto it after the job passed.
    goal, website, _ = tenant.repository.accounts.goal_with_references(user, tenant.second_goal_id, {})
    goal = {**goal, "goal_id": tenant.goal_id}
    with monkeypatch.context() as patch:
        patch.setattr(type(tenant.repository.accounts), "goal_with_references", lambda *_: (goal, website, {}))
        conversion_service.update(tenant.repository, user, other, {"goal_id": tenant.goal_id, "visitor_id": None})
    settle()
    assert where_they_are(tenant, [other]) == [(200, tenant.lightweight_website_id)]
    assert total(tenant, website_id=tenant.lightweight_website_id) == 10
    assert total(tenant, website_id=tenant.website_id) == 0


def test_a_job_goes_on_from_where_it_stopped(tenant, monkeypatch):
    """Each invocation reads the goal index from the JOB# item's position, not from the start."""
    conversions_of(tenant, 12)
    move_goal(tenant, tenant.lightweight_website_id)
    worker = half_done_job(tenant, monkeypatch)
    pages = []
    original = cascade.Cascade._page
    monkeypatch.setattr(cascade.Cascade, "_page", lambda self, *args: pages.append(args[1]) or original(self, *args))
    monkeypatch.setattr(cascade, "PAGES_PER_INVOCATION", 1)
    job = worker.table.get(job_key(tenant.goal_id), consistent=True)
    worker.follow(tenant.goal_id, json.loads(job["after"]), job["round"])
    assert pages == [json.loads(job["after"])]
