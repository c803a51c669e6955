"""The goals API: create, get, list, update and delete, through the handlers."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import api_event, goal_event, invoke
from functions.create_conversion import app as create_conversion_app
from functions.create_goal import app as create_app
from functions.delete_goal import app as delete_app
from functions.get_conversion import app as get_conversion_app
from functions.get_goal import app as get_app
from functions.list_goals import app as list_app
from functions.update_conversion import app as update_conversion_app
from functions.update_goal import app as update_app


def create(tenant, **kwargs):
    fields = kwargs.pop("fields", None)
    if fields is not None:
        kwargs["form"] = fields
    return invoke(create_app, api_event("create_goal", headers=tenant.auth, **kwargs))


def made(tenant, **fields):
    result = create(tenant, json_body={"website_id": tenant.website_id, **fields})
    assert result.status == 201, result
    return result.json["data"]


def get(tenant, goal_id):
    return invoke(get_app, goal_event("get_goal", tenant, goal_id))


def update(tenant, goal_id, **kwargs):
    return invoke(update_app, goal_event("update_goal", tenant, goal_id, **kwargs))


def delete(tenant, goal_id):
    return invoke(delete_app, goal_event("delete_goal", tenant, goal_id))


def listed(tenant, **query):
    return invoke(list_app, api_event("list_goals", headers=tenant.auth, query=query))


def assert_400(result, parameter, words=""):
    assert result.status == 400, result
    errors = {e["source"]["parameter"]: e["title"] for e in result.json["errors"] if "source" in e}
    assert parameter in errors, result.json
    assert words in errors[parameter], errors[parameter]


# -- create -----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["json", "form", "multipart"])
def test_each_body_format_creates_the_same_goal(tenant, encoding):
    fields = {
        "website_id": tenant.website_id,
        "type": "scroll",
        "name": "Read",
        "path": "blog",
        "scroll_percentage": 75,
    }
    if encoding == "json":
        result = create(tenant, json_body=fields)
    elif encoding == "form":
        result = create(tenant, fields={k: str(v) for k, v in fields.items()})
    else:
        body = "".join(f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items())
        result = create(tenant, raw_body=(body + "--B--\r\n").encode(), content_type="multipart/form-data; boundary=B")
    assert result.status == 201, result
    goal = result.json["data"]
    assert {k: goal[k] for k in ("website_id", "type", "name", "scroll_percentage")} == {
        "website_id": tenant.website_id,
        "type": "scroll",
        "name": "Read",
        "scroll_percentage": 75,
    }
    assert goal["path"] == "/blog"  # the leading / is added
    assert goal["user_id"] == tenant.user_id and goal["is_enabled"] is True and goal["last_datetime"] is None
    assert re.fullmatch(r"[a-z0-9]{16}", goal["key"]) and len(goal["datetime"]) == 19
    assert get(tenant, goal["id"]).json["data"] == goal


def test_a_custom_goal_keeps_its_key_or_gets_one_and_has_no_path(tenant):
    keyed = made(tenant, type="custom", name="Signup form", key="signup-form")
    assert keyed["key"] == "signup-form" and keyed["path"] is None and keyed["scroll_percentage"] is None
    generated = made(tenant, type="custom", name="Other")
    assert re.fullmatch(r"[a-z0-9]{16}", generated["key"])


def test_a_key_is_one_goals_on_its_website(tenant):
    made(tenant, type="custom", name="A", key="dup")
    taken = create(tenant, json_body={"website_id": tenant.website_id, "type": "custom", "name": "B", "key": "dup"})
    assert taken.status == 409
    assert taken.json["errors"][0]["source"] == {"parameter": "key"}
    other_site = {"website_id": tenant.lightweight_website_id, "type": "custom", "name": "B", "key": "dup"}
    assert create(tenant, json_body=other_site).status == 201


@pytest.mark.parametrize(
    "fields, parameter, words",
    [
        ({"type": "custom", "name": "x"}, "website_id", "required"),
        ({"website_id": "W", "type": "custom", "name": "x"}, "website_id", "positive integer"),
        ({"type": "click", "name": "x"}, "type", "pageview, custom, scroll"),
        ({"type": "custom"}, "name", "required"),
        ({"type": "custom", "name": ""}, "name", "1 to 32"),
        ({"type": "custom", "name": "x" * 33}, "name", "1 to 32"),
        ({"type": "custom", "name": "x", "path": "/a"}, "path", "only for pageview and scroll"),
        ({"type": "pageview", "name": "x"}, "path", "required for pageview"),
        ({"type": "pageview", "name": "x", "path": "p" * 2048}, "path", "1 to 2048"),  # 2,049 with its leading /
        ({"type": "pageview", "name": "x", "path": "/a", "key": "k"}, "key", "generated"),
        ({"type": "custom", "name": "x", "key": "Not A Slug"}, "key", "slug"),
        ({"type": "scroll", "name": "x", "path": "/a"}, "scroll_percentage", "required for scroll"),
        ({"type": "scroll", "name": "x", "path": "/a", "scroll_percentage": 101}, "scroll_percentage", "1 to 100"),
        (
            {"type": "pageview", "name": "x", "path": "/a", "scroll_percentage": 5},
            "scroll_percentage",
            "only for scroll",
        ),
        ({"type": "custom", "name": "x", "is_enabled": "yes"}, "is_enabled", "true or false"),
    ],
)
def test_bad_fields_are_400s_naming_them(tenant, fields, parameter, words):
    body = fields if parameter == "website_id" else {"website_id": tenant.website_id, **fields}
    result = create(tenant, fields={k: str(v) for k, v in body.items()})
    assert_400(result, parameter, words)


def test_json_values_follow_the_json_rules(tenant):
    base = {"website_id": tenant.website_id, "type": "custom", "name": "x"}
    assert_400(create(tenant, json_body={**base, "is_enabled": "true"}), "is_enabled")
    assert_400(create(tenant, json_body={**base, "website_id": str(tenant.website_id)}), "website_id")
    assert create(tenant, json_body={**base, "is_enabled": False}).json["data"]["is_enabled"] is False


@pytest.mark.parametrize(
    ("text", "enabled"),
    [("True", True), ("FALSE", False), ("tRuE", True), ("false", False), ("1", True), ("0", False)],
)
def test_form_booleans_are_read_in_any_letter_case(tenant, text, enabled):
    """Python's clients send str(True), "True"; the contract takes any letter case."""
    base = {"website_id": str(tenant.website_id), "type": "custom", "name": "x"}
    assert create(tenant, fields={**base, "is_enabled": text}).json["data"]["is_enabled"] is enabled
    assert update(tenant, tenant.goal_id, form={"is_enabled": text}).json["data"]["is_enabled"] is enabled


@pytest.mark.parametrize("text", ["yes", "T", "10", "truе", " true", "ｔｒｕｅ"])  # the 5th ends in a Cyrillic е
def test_other_form_booleans_are_400s(tenant, text):
    assert_400(
        create(
            tenant, fields={"website_id": str(tenant.website_id), "type": "custom", "name": "x", "is_enabled": text}
        ),
        "is_enabled",
        "any letter case",
    )


def test_a_goal_lives_on_one_of_the_callers_websites(tenant, other_tenant):
    result = create(tenant, json_body={"website_id": other_tenant.website_id, "type": "custom", "name": "x"})
    assert result.status == 404 and result.json["errors"][0]["source"] == {"parameter": "website_id"}


# -- get, tenancy -----------------------------------------------------------------------------


def test_another_users_goal_is_a_404_on_every_endpoint(tenant, other_tenant):
    theirs = made(other_tenant, type="custom", name="Theirs")["id"]
    missing = 999_999_999
    for goal_id in (theirs, missing):
        assert get(tenant, goal_id).status == 404
        assert update(tenant, goal_id, json_body={"name": "Mine"}).status == 404
        assert delete(tenant, goal_id).status == 404
    assert get(tenant, theirs).json == get(tenant, missing).json
    assert get(other_tenant, theirs).json["data"]["name"] == "Theirs"
    for bad in ("abc", "0", "1_0", "1.0"):
        assert get(tenant, bad).status == 404


# -- list -------------------------------------------------------------------------------------


def three_goals(tenant):
    return [
        made(tenant, type="pageview", name="Bravo", path="/checkout/done"),
        made(tenant, type="custom", name="alpha", key="newsletter"),
        {
            **made(
                tenant,
                website_id=tenant.lightweight_website_id,
                type="scroll",
                name="Charlie",
                path="/a",
                scroll_percentage=50,
            )
        },
    ]


def ids(result):
    return [g["id"] for g in result.json["data"]]


def test_the_list_holds_the_callers_goals_newest_first(tenant, other_tenant):
    made(other_tenant, type="custom", name="Not mine")
    mine = [tenant.goal_id, tenant.second_goal_id, tenant.lightweight_goal_id] + [g["id"] for g in three_goals(tenant)]
    result = listed(tenant)
    assert result.status == 200
    assert ids(result) == sorted(mine, reverse=True)
    assert result.json["meta"] == {"page": 1, "results_per_page": 25, "total": 6, "total_pages": 1}


def test_filters_and_search(tenant, other_tenant):
    bravo, alpha, charlie = three_goals(tenant)
    assert set(ids(listed(tenant, website_id=tenant.lightweight_website_id))) == {
        charlie["id"],
        tenant.lightweight_goal_id,
    }
    assert ids(listed(tenant, website_id=other_tenant.website_id)) == []
    assert set(ids(listed(tenant, type="pageview"))) == {bravo["id"], tenant.second_goal_id}
    assert ids(listed(tenant, search="CHECKOUT")) == [bravo["id"]]  # in the path, any case
    assert ids(listed(tenant, search="letter")) == [alpha["id"]]  # in the key
    assert set(ids(listed(tenant, search="ALPHA", type="custom"))) == {alpha["id"]}
    assert listed(tenant, search="nothing-like-it").json["meta"]["total"] == 0


@pytest.mark.parametrize("order_type", ["ASC", "DESC"])
def test_every_order(tenant, order_type):
    three_goals(tenant)
    every = listed(tenant, results_per_page=100).json["data"]
    keys = {
        "goal_id": lambda g: g["id"],
        "datetime": lambda g: (g["datetime"], g["id"]),
        "name": lambda g: (g["name"].casefold(), g["id"]),
        "last_datetime": lambda g: (g["last_datetime"] or "", g["id"]),
    }
    for order_by, key in keys.items():
        result = listed(tenant, order_by=order_by, order_type=order_type, results_per_page=100)
        assert ids(result) == [g["id"] for g in sorted(every, key=key, reverse=order_type == "DESC")], order_by


def test_paging_meta_and_links_keep_the_query(tenant):
    for n in range(12):
        made(tenant, type="custom", name=f"G{n}")
    result = listed(tenant, type="custom", order_by="name", order_type="ASC", results_per_page=10, page=2)
    assert result.json["meta"] == {"page": 2, "results_per_page": 10, "total": 14, "total_pages": 2}
    links = result.json["links"]
    assert links["next"] is None and links["last"] == links["self"]
    query = parse_qs(urlsplit(links["prev"]).query)
    assert query == {
        "type": ["custom"],
        "order_by": ["name"],
        "order_type": ["ASC"],
        "results_per_page": ["10"],
        "page": ["1"],
    }
    assert urlsplit(links["first"]).path == "/api/goals"
    past = listed(tenant, page=99)
    assert past.status == 200 and past.json["data"] == [] and past.json["meta"]["total"] == 15


@pytest.mark.parametrize(
    "parameter, value",
    [
        ("website_id", "1.0"),
        ("type", "click"),
        ("order_by", "id"),
        ("order_type", "up"),
        ("page", "0"),
        ("results_per_page", "7"),
        ("search", "x" * 101),
    ],
)
def test_bad_list_parameters_are_400s_naming_them(tenant, parameter, value):
    assert_400(listed(tenant, **{parameter: value}), parameter)


# -- update -----------------------------------------------------------------------------------


def test_an_update_changes_what_is_sent_and_stamps_last_datetime(tenant):
    goal = made(tenant, type="pageview", name="Old", path="/old")
    result = update(tenant, goal["id"], form={"name": "New", "path": "new"})
    assert result.status == 200
    changed = result.json["data"]
    assert changed["name"] == "New" and changed["path"] == "/new" and changed["last_datetime"] is not None
    assert {k: changed[k] for k in ("type", "key", "datetime", "website_id")} == {
        k: goal[k] for k in ("type", "key", "datetime", "website_id")
    }
    assert get(tenant, goal["id"]).json["data"] == changed


def test_changing_the_type_asks_for_what_the_new_type_needs(tenant):
    goal = made(tenant, type="custom", name="Event", key="evt")
    assert_400(update(tenant, goal["id"], json_body={"type": "scroll"}), "path")
    assert_400(update(tenant, goal["id"], json_body={"type": "scroll", "path": "/p"}), "scroll_percentage")
    scroll = update(tenant, goal["id"], json_body={"type": "scroll", "path": "/p", "scroll_percentage": 40})
    assert scroll.status == 200
    generated = scroll.json["data"]["key"]  # a scroll goal's key is generated; "evt" is free again
    assert re.fullmatch(r"[a-z0-9]{16}", generated), generated
    assert made(tenant, type="custom", name="Taken over", key="evt")["key"] == "evt"
    pageview = update(tenant, goal["id"], json_body={"type": "pageview", "scroll_percentage": None}).json["data"]
    assert pageview["key"] == generated
    back = update(tenant, goal["id"], json_body={"type": "custom"}).json["data"]
    assert back["path"] is None and back["scroll_percentage"] is None and back["key"] == generated
    assert_400(update(tenant, goal["id"], form={"name": ""}), "name")
    assert_400(update(tenant, goal["id"], json_body={"type": None}), "type")


def test_a_key_change_must_be_free_and_frees_the_old_one(tenant):
    first = made(tenant, type="custom", name="First", key="one")
    made(tenant, type="custom", name="Second", key="two")
    taken = update(tenant, first["id"], json_body={"key": "two"})
    assert taken.status == 409 and taken.json["errors"][0]["source"] == {"parameter": "key"}
    assert update(tenant, first["id"], json_body={"key": "uno"}).json["data"]["key"] == "uno"
    assert made(tenant, type="custom", name="Third", key="one")["key"] == "one"


def test_a_disabled_goal_records_no_conversion_until_enabled(tenant):
    def convert():
        return invoke(
            create_conversion_app, api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id})
        )

    assert update(tenant, tenant.goal_id, form={"is_enabled": "0"}).json["data"]["is_enabled"] is False
    refused = convert()
    assert refused.status == 409
    assert refused.json["errors"][0]["title"].startswith("The goal is disabled")
    assert update(tenant, tenant.goal_id, form={"is_enabled": "true"}).json["data"]["is_enabled"] is True
    assert convert().status == 201


def test_a_conversion_is_not_moved_onto_a_disabled_goal(tenant):
    def change(conversion_id, fields):
        event = api_event("update_conversion", headers=tenant.auth, conversion_id=conversion_id, form=fields)
        return invoke(update_conversion_app, event)

    created = invoke(
        create_conversion_app, api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id})
    ).json["data"]
    assert update(tenant, tenant.second_goal_id, form={"is_enabled": "0"}).status == 200
    refused = change(created["id"], {"goal_id": tenant.second_goal_id})
    assert refused.status == 409 and refused.json["errors"][0]["source"] == {"parameter": "goal_id"}
    stored = invoke(get_conversion_app, api_event("get_conversion", headers=tenant.auth, conversion_id=created["id"]))
    assert stored.json["data"] == created
    # A conversion recorded before its goal was disabled can still have its references fixed.
    assert update(tenant, tenant.goal_id, form={"is_enabled": "0"}).status == 200
    fixed = change(created["id"], {"visitor_id": tenant.visitor_id})
    assert fixed.status == 200 and fixed.json["data"]["visitor_id"] == tenant.visitor_id


# -- delete -----------------------------------------------------------------------------------


def test_a_deleted_goal_is_gone_and_frees_its_key(tenant):
    goal = made(tenant, type="custom", name="Gone", key="gone")
    assert delete(tenant, goal["id"]).status == 204
    assert get(tenant, goal["id"]).status == 404
    assert goal["id"] not in ids(listed(tenant))
    assert delete(tenant, goal["id"]).status == 404
    assert made(tenant, type="custom", name="Again", key="gone")["key"] == "gone"
