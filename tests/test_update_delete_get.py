"""GET, POST (update) and DELETE on /api/goals-conversions/{conversion_id}."""

import pytest

from conftest import api_event, invoke
from functions.create_conversion import app as create_app
from functions.delete_conversion import app as delete_app
from functions.get_conversion import app as get_app
from functions.list_conversions import app as list_app
from functions.update_conversion import app as update_app


def create(tenant, **fields):
    result = invoke(
        create_app, api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id, **fields})
    )
    assert result.status == 201, result
    return result.json["data"]


def get(tenant, conversion_id):
    return invoke(get_app, api_event("get_conversion", headers=tenant.auth, conversion_id=conversion_id))


def update(tenant, conversion_id, **kwargs):
    return invoke(
        update_app, api_event("update_conversion", headers=tenant.auth, conversion_id=conversion_id, **kwargs)
    )


def delete(tenant, conversion_id):
    return invoke(delete_app, api_event("delete_conversion", headers=tenant.auth, conversion_id=conversion_id))


def total(tenant, **query):
    return invoke(list_app, api_event("list_conversions", headers=tenant.auth, query=query)).json["meta"]["total"]


# -- get --------------------------------------------------------------------------------------


def test_get_returns_the_conversion(tenant):
    created = create(tenant, visitor_id=tenant.visitor_id)
    result = get(tenant, created["id"])
    assert result.status == 200
    assert result.json == {"data": created}


@pytest.mark.parametrize("conversion_id", ["999999999", "abc", "0", "-5", "1.5", "99999999999999999999999"])
def test_get_of_a_missing_or_impossible_id_is_a_404(tenant, conversion_id):
    result = get(tenant, conversion_id)
    assert result.status == 404
    assert result.json["errors"][0]["status"] == 404


def test_another_users_conversion_is_exactly_like_a_missing_one(tenant, other_tenant):
    theirs = create(other_tenant)
    assert get(tenant, theirs["id"]).raw["body"] == get(tenant, 999999999).raw["body"]
    assert get(tenant, theirs["id"]).status == 404


# -- update -----------------------------------------------------------------------------------


def test_update_moves_a_conversion_to_another_goal_and_counts_follow(tenant):
    created = create(tenant)
    result = update(tenant, created["id"], form={"goal_id": tenant.second_goal_id})
    assert result.status == 200
    assert result.json["data"] == {**created, "goal_id": tenant.second_goal_id}
    assert get(tenant, created["id"]).json["data"]["goal_id"] == tenant.second_goal_id
    assert total(tenant, goal_id=tenant.goal_id) == 0
    assert total(tenant, goal_id=tenant.second_goal_id) == 1
    assert total(tenant) == 1


def test_moving_to_a_goal_on_another_website_moves_the_website_too(tenant):
    created = create(tenant)
    result = update(tenant, created["id"], form={"goal_id": tenant.lightweight_goal_id})
    assert result.status == 200
    data = result.json["data"]
    assert data["website_id"] == tenant.lightweight_website_id
    assert data["id"] == created["id"] and data["datetime"] == created["datetime"]
    assert total(tenant, website_id=tenant.website_id) == 0
    assert total(tenant, website_id=tenant.lightweight_website_id) == 1
    listed = invoke(
        list_app,
        api_event("list_conversions", headers=tenant.auth, query={"website_id": tenant.lightweight_website_id}),
    )
    assert [c["id"] for c in listed.json["data"]] == [created["id"]]


def test_moving_to_a_lightweight_website_with_references_is_refused(tenant):
    created = create(tenant, visitor_id=tenant.visitor_id)
    result = update(tenant, created["id"], form={"goal_id": tenant.lightweight_goal_id})
    assert result.status == 400
    assert result.json["errors"][0]["source"] == {"parameter": "visitor_id"}
    assert get(tenant, created["id"]).json["data"] == created


def test_an_empty_value_clears_a_reference(tenant):
    created = create(tenant, visitor_id=tenant.visitor_id, session_id=tenant.session_id, event_id=tenant.event_id)
    result = update(tenant, created["id"], form={"event_id": ""})
    assert result.status == 200
    assert result.json["data"] == {**created, "event_id": None}


def test_json_null_clears_and_absent_fields_stay(tenant):
    created = create(tenant, visitor_id=tenant.visitor_id, session_id=tenant.session_id)
    result = update(tenant, created["id"], json_body={"session_id": None})
    assert result.json["data"] == {**created, "session_id": None}


def test_update_sets_references_with_the_create_rules(tenant):
    created = create(tenant)
    ok = update(tenant, created["id"], form={"visitor_id": tenant.visitor_id, "session_id": tenant.session_id})
    assert ok.status == 200 and ok.json["data"]["session_id"] == tenant.session_id
    wrong = update(tenant, created["id"], form={"session_id": tenant.other_session_id})
    assert wrong.status == 400 and wrong.json["errors"][0]["source"] == {"parameter": "session_id"}
    missing = update(tenant, created["id"], form={"event_id": 987654321})
    assert missing.status == 404 and missing.json["errors"][0]["source"] == {"parameter": "event_id"}


@pytest.mark.parametrize("attribute", ["website_id", "type", "name", "path", "key", "is_enabled"])
def test_goal_attributes_are_a_400_that_says_to_change_them_on_the_goal(tenant, attribute):
    created = create(tenant)
    result = update(tenant, created["id"], form={attribute: "1"})
    assert result.status == 400
    [error] = result.json["errors"]
    assert error["source"] == {"parameter": attribute}
    assert "goal" in error["title"]
    assert get(tenant, created["id"]).json["data"] == created


def test_the_upstream_update_example_names_both_attributes(tenant):
    created = create(tenant)
    result = update(tenant, created["id"], form={"name": "Example", "is_enabled": "0"})
    assert result.status == 400
    assert {e["source"]["parameter"] for e in result.json["errors"]} == {"name", "is_enabled"}


def test_goal_id_cannot_be_cleared(tenant):
    created = create(tenant)
    result = update(tenant, created["id"], json_body={"goal_id": None})
    assert result.status == 400
    assert result.json["errors"][0]["source"] == {"parameter": "goal_id"}


def test_update_to_another_users_goal_is_a_404(tenant, other_tenant):
    created = create(tenant)
    result = update(tenant, created["id"], form={"goal_id": other_tenant.goal_id})
    assert result.status == 404
    assert result.json["errors"][0]["source"] == {"parameter": "goal_id"}


def test_update_of_another_users_conversion_is_a_404(tenant, other_tenant):
    theirs = create(other_tenant)
    result = update(tenant, theirs["id"], form={"goal_id": tenant.goal_id})
    assert result.status == 404
    assert result.raw["body"] == update(tenant, 999999999, form={"goal_id": tenant.goal_id}).raw["body"]
    assert get(other_tenant, theirs["id"]).json["data"] == theirs


def test_an_empty_update_changes_nothing(tenant):
    created = create(tenant)
    result = update(tenant, created["id"], form={})
    assert result.status == 200 and result.json["data"] == created


def test_update_with_an_unsupported_content_type_is_a_415(tenant):
    created = create(tenant)
    assert update(tenant, created["id"], raw_body="goal_id=1", content_type="text/csv").status == 415


# -- delete -----------------------------------------------------------------------------------


def test_delete_is_a_204_with_no_body_and_the_conversion_is_gone_everywhere(tenant):
    kept, deleted = create(tenant), create(tenant)
    result = delete(tenant, deleted["id"])
    assert result.status == 204
    assert result.text == ""
    assert get(tenant, deleted["id"]).status == 404
    listed = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={}))
    assert [c["id"] for c in listed.json["data"]] == [kept["id"]]
    assert total(tenant) == total(tenant, goal_id=tenant.goal_id) == total(tenant, website_id=tenant.website_id) == 1
    day = kept["datetime"][:10]
    assert total(tenant, datetime_start=f"{day} 00:00:00", datetime_end=f"{day} 23:59:59") == 1


def test_deleting_twice_is_a_404(tenant):
    created = create(tenant)
    assert delete(tenant, created["id"]).status == 204
    assert delete(tenant, created["id"]).status == 404


def test_delete_of_another_users_conversion_is_a_404_and_keeps_it(tenant, other_tenant):
    theirs = create(other_tenant)
    result = delete(tenant, theirs["id"])
    assert result.status == 404
    assert result.raw["body"] == delete(tenant, 999999999).raw["body"]
    assert get(other_tenant, theirs["id"]).status == 200
    assert total(other_tenant) == 1
