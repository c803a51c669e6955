"""POST /api/goals-conversions: bodies, rules, references, idempotency."""

import json

import pytest

from conftest import ROOT, api_event, invoke, load_event
from conversions_core.seed import load_seed
from functions.create_conversion import app as create_app
from functions.get_conversion import app as get_app
from functions.list_conversions import app as list_app


def create(tenant, **kwargs):
    return invoke(
        create_app, api_event("create_conversion", headers={**tenant.auth, **kwargs.pop("headers", {})}, **kwargs)
    )


def total(tenant, **query):
    return invoke(list_app, api_event("list_conversions", headers=tenant.auth, query=query)).json["meta"]["total"]


def multipart(fields, boundary="XyZ123"):
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


def test_the_event_file_creates_a_conversion_as_it_is(repository):
    """events/create_conversion.json, unchanged: the demo key, a base64 multipart body."""
    load_seed(repository, json.loads((ROOT / "seeds" / "demo.json").read_text()))
    event = load_event("create_conversion")
    assert event["isBase64Encoded"] is True
    result = invoke(create_app, event)
    assert result.status == 201, result
    data = result.json["data"]
    assert {k: data[k] for k in ("goal_id", "website_id", "user_id", "visitor_id")} == {
        "goal_id": 1,
        "website_id": 1,
        "user_id": 1,
        "visitor_id": 1,
    }
    assert data["session_id"] is None and data["event_id"] is None
    assert len(data["datetime"]) == 19


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded", "json"])
def test_every_body_format_records_the_same_conversion(tenant, encoding):
    fields = {
        "goal_id": tenant.goal_id,
        "visitor_id": tenant.visitor_id,
        "session_id": tenant.session_id,
        "event_id": tenant.event_id,
    }
    if encoding == "multipart":
        body, content_type = multipart(fields)
        result = create(tenant, raw_body=body, content_type=content_type)
    elif encoding == "urlencoded":
        result = create(tenant, form=fields)
    else:
        result = create(tenant, json_body=fields)
    assert result.status == 201
    data = result.json["data"]
    assert {k: data[k] for k in fields} == fields
    fetched = invoke(get_app, api_event("get_conversion", headers=tenant.auth, conversion_id=data["id"]))
    assert fetched.json["data"] == data


def test_created_conversions_are_listed_and_counted(tenant):
    ids = [create(tenant, form={"goal_id": tenant.goal_id}).json["data"]["id"] for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    listed = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={"order_type": "ASC"}))
    assert [c["id"] for c in listed.json["data"]] == ids
    assert total(tenant) == 3 and total(tenant, goal_id=tenant.goal_id) == 3
    assert total(tenant, website_id=tenant.website_id) == 3


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "image/png"])
def test_an_unsupported_content_type_is_a_415(tenant, content_type):
    result = create(tenant, raw_body="goal_id=1", content_type=content_type)
    assert result.status == 415
    assert result.json["errors"][0]["status"] == 415
    assert total(tenant) == 0


def test_goal_id_is_required(tenant):
    result = create(tenant, form={"visitor_id": tenant.visitor_id})
    assert result.status == 400
    assert result.json["errors"] == [
        {"title": "goal_id is required", "status": 400, "source": {"parameter": "goal_id"}}
    ]


@pytest.mark.parametrize("value", ["abc", "1.5", "0", "-4", "", "99999999999999999999999"])
def test_goal_id_must_be_a_positive_integer(tenant, value):
    result = create(tenant, form={"goal_id": value})
    assert result.status == 400
    assert result.json["errors"][0]["source"] == {"parameter": "goal_id"}


@pytest.mark.parametrize("field", ["visitor_id", "session_id", "event_id"])
def test_reference_ids_must_be_integers(tenant, field):
    result = create(tenant, form={"goal_id": tenant.goal_id, field: "x"})
    assert result.status == 400
    assert result.json["errors"][0]["source"] == {"parameter": field}


def test_malformed_json_is_a_400(tenant):
    result = create(tenant, raw_body='{"goal_id": ', content_type="application/json")
    assert result.status == 400
    assert total(tenant) == 0


def test_another_users_goal_is_a_404_like_a_missing_one(tenant, other_tenant):
    theirs = create(tenant, form={"goal_id": other_tenant.goal_id})
    missing = create(tenant, form={"goal_id": 999999999})
    assert theirs.status == missing.status == 404
    assert theirs.json == missing.json
    assert theirs.json["errors"][0]["source"] == {"parameter": "goal_id"}
    assert total(other_tenant) == 0


@pytest.mark.parametrize("field", ["visitor_id", "session_id", "event_id"])
def test_references_on_a_lightweight_website_are_a_400_before_existence(tenant, field):
    result = create(tenant, form={"goal_id": tenant.lightweight_goal_id, field: 123456789})
    assert result.status == 400
    [error] = result.json["errors"]
    assert error["source"] == {"parameter": field}
    assert "tracking_mode normal" in error["title"]


def test_a_lightweight_goal_converts_without_references(tenant):
    result = create(tenant, form={"goal_id": tenant.lightweight_goal_id})
    assert result.status == 201
    assert result.json["data"]["website_id"] == tenant.lightweight_website_id


@pytest.mark.parametrize("field", ["visitor_id", "session_id", "event_id"])
def test_a_missing_reference_is_a_404_naming_it(tenant, field):
    result = create(tenant, form={"goal_id": tenant.goal_id, field: 987654321})
    assert result.status == 404
    assert result.json["errors"][0]["source"] == {"parameter": field}
    assert total(tenant) == 0


@pytest.mark.parametrize(
    "field, attribute", [("visitor_id", "visitor_id"), ("session_id", "session_id"), ("event_id", "event_id")]
)
def test_another_users_references_are_404(tenant, other_tenant, field, attribute):
    result = create(tenant, form={"goal_id": tenant.goal_id, field: getattr(other_tenant, attribute)})
    assert result.status == 404
    assert result.json["errors"][0]["source"] == {"parameter": field}


def test_a_session_must_belong_to_the_visitor(tenant):
    result = create(
        tenant, form={"goal_id": tenant.goal_id, "visitor_id": tenant.visitor_id, "session_id": tenant.other_session_id}
    )
    assert result.status == 400
    assert result.json["errors"][0]["source"] == {"parameter": "session_id"}
    assert total(tenant) == 0


def test_an_event_must_belong_to_the_session(tenant):
    result = create(
        tenant, form={"goal_id": tenant.goal_id, "session_id": tenant.session_id, "event_id": tenant.other_event_id}
    )
    assert result.status == 400
    assert result.json["errors"][0]["source"] == {"parameter": "event_id"}


def test_consistent_references_are_accepted(tenant):
    result = create(
        tenant,
        json_body={
            "goal_id": tenant.goal_id,
            "visitor_id": tenant.other_visitor_id,
            "session_id": tenant.other_session_id,
            "event_id": tenant.other_event_id,
        },
    )
    assert result.status == 201


def test_an_idempotency_key_makes_a_retry_return_the_first_result(tenant):
    headers = {"Idempotency-Key": f"order-{tenant.user_id}"}
    first = create(tenant, form={"goal_id": tenant.goal_id}, headers=headers)
    second = create(tenant, form={"goal_id": tenant.goal_id}, headers=headers)
    assert first.status == second.status == 201
    assert second.json == first.json
    assert json.loads(second.text) == first.json
    assert total(tenant) == 1


def test_the_same_idempotency_key_with_another_body_is_a_409(tenant):
    headers = {"Idempotency-Key": "reused"}
    create(tenant, form={"goal_id": tenant.goal_id}, headers=headers)
    result = create(tenant, form={"goal_id": tenant.second_goal_id}, headers=headers)
    assert result.status == 409
    assert total(tenant) == 1


def test_idempotency_keys_are_per_user(tenant, other_tenant):
    headers = {"Idempotency-Key": "shared-key"}
    mine = create(tenant, form={"goal_id": tenant.goal_id}, headers=headers)
    theirs = create(other_tenant, form={"goal_id": other_tenant.goal_id}, headers=headers)
    assert mine.status == theirs.status == 201
    assert mine.json["data"]["id"] != theirs.json["data"]["id"]
    assert theirs.json["data"]["user_id"] == other_tenant.user_id


def test_without_an_idempotency_key_each_post_creates(tenant):
    for _ in range(2):
        assert create(tenant, form={"goal_id": tenant.goal_id}).status == 201
    assert total(tenant) == 2


def test_ids_grow_with_datetime_across_creates(tenant):
    data = [create(tenant, form={"goal_id": tenant.goal_id}).json["data"] for _ in range(3)]
    assert [d["id"] for d in data] == sorted(d["id"] for d in data)
    assert [d["datetime"] for d in data] == sorted(d["datetime"] for d in data)
