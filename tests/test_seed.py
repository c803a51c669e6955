"""Seed files: validated as a whole; a seed that breaks a rule writes nothing."""

import json
from datetime import UTC, datetime

import pytest

from conftest import ROOT, api_event, import_id, invoke, new_id, settle
from conversions_core.auth import hash_api_key
from conversions_core.seed import SeedError, load_seed
from functions.create_conversion import app as create_app
from functions.get_conversion import app as get_app
from functions.list_conversions import app as list_app


def test_the_demo_seed_loads_and_serves_the_contracts_example(repository):
    """The demo seed is valid as a whole, and its first conversion is the contract's example."""
    load_seed(repository, json.loads((ROOT / "seeds" / "demo.json").read_text()))
    settle()
    demo = {"Authorization": "Bearer demo-key"}
    fetched = invoke(get_app, api_event("get_conversion", headers=demo, conversion_id=1))
    assert fetched.json == {
        "data": {
            "id": 1,
            "goal_id": 1,
            "website_id": 1,
            "user_id": 1,
            "visitor_id": 1,
            "session_id": 1,
            "event_id": 1,
            "datetime": "2026-05-17 03:07:56",
            "value": None,
            "currency": None,
        }
    }
    listed = invoke(list_app, api_event("list_conversions", headers=demo, query={"website_id": 1}))
    assert listed.status == 200 and listed.json["meta"]["total"] > 0


def refusal(repository, seed):
    """The problems of a seed that is refused as a whole."""
    with pytest.raises(SeedError) as refused:
        load_seed(repository, seed)
    return refused.value.problems


def _fresh_ids(count):
    return [new_id() for _ in range(count)]


def test_a_seed_with_several_problems_lists_them_all_and_writes_nothing(repository):
    user, website, goal, visitor = _fresh_ids(4)
    first, second = import_id("2026-06-01 00:00:00"), import_id("2026-06-02 00:00:00")
    seed = {
        "users": [{"user_id": user, "api_key": f"k-{user}", "status": "active"}],
        "websites": [
            {"website_id": website, "user_id": user, "host": "x.example", "tracking_mode": "lightweight"},
            {"website_id": website, "user_id": user, "host": "dup.example", "tracking_mode": "normal"},
        ],
        "goals": [{"goal_id": goal, "website_id": website, "type": "custom", "name": "G"}],
        "visitors": [{"visitor_id": visitor, "website_id": 424242424}],
        "conversions": [
            {"id": first, "goal_id": goal, "visitor_id": visitor, "datetime": "2026-06-01 00:00:00"},
            {"id": second, "goal_id": 535353535, "datetime": "2026-06-02 00:00:00"},
        ],
    }
    problems = refusal(repository, seed)
    text = "\n".join(problems)
    assert "appears twice" in text
    assert "website 424242424 does not exist" in text
    assert "goal 535353535 does not exist" in text
    assert len(problems) >= 4
    assert repository.accounts.entity("USER", user) is None
    assert repository.accounts.entity("GOAL", goal) is None
    assert repository.importer.existing_conversion_ids([first, second]) == set()


@pytest.mark.parametrize(
    "bad_record, words",
    [
        ({"users": [{"user_id": 0, "api_key": "k"}]}, "users.0.user_id"),
        ({"users": [{"user_id": 5, "api_key": "k", "status": "paused"}]}, "users.0.status"),
        ({"websites": [{"website_id": 5, "user_id": 5, "tracking_mode": "heavy"}]}, "websites.0.tracking_mode"),
        ({"goals": [{"goal_id": 5, "website_id": 5, "type": "click"}]}, "goals.0.type"),
        ({"conversions": [{"id": 5, "goal_id": 5, "datetime": "2026-06-01T00:00:00"}]}, "conversions.0.datetime"),
        ({"tables": []}, "tables"),
    ],
)
def test_records_that_break_the_shape_are_refused(repository, bad_record, words):
    problems = refusal(repository, bad_record)
    assert any(p.startswith(words) for p in problems), problems


def test_conversions_whose_ids_do_not_grow_with_datetime_are_refused_by_name(tenant):
    later, earlier = import_id("2026-06-02 00:00:00"), import_id("2026-06-01 00:00:00")
    rows = [
        {"id": earlier, "goal_id": tenant.goal_id, "datetime": "2026-06-02 00:00:00"},
        {"id": later, "goal_id": tenant.goal_id, "datetime": "2026-06-01 00:00:00"},
    ]
    [problem] = refusal(tenant.repository, {"conversions": rows})
    assert f"(id {later})" in problem and "ids must grow with datetime" in problem


def test_imports_go_before_or_after_what_the_user_has_never_in_between(tenant):
    [may, july] = tenant.import_conversions(
        [{"goal_id": tenant.goal_id, "datetime": d} for d in ("2026-05-01 00:00:00", "2026-07-01 00:00:00")]
    )
    before = {"id": may - 1, "goal_id": tenant.goal_id, "datetime": "2026-04-01 00:00:00"}
    after = {"id": july + 1, "goal_id": tenant.goal_id, "datetime": "2026-07-02 00:00:00"}
    between = {"id": import_id("2026-06-01 00:00:00"), "goal_id": tenant.goal_id, "datetime": "2026-06-01 00:00:00"}
    [problem] = refusal(tenant.repository, {"conversions": [before, between, after]})
    assert f"(id {between['id']})" in problem and "before all of them or after all of them" in problem
    load_seed(tenant.repository, {"conversions": [before, after]})


def test_conversions_in_the_future_taken_ids_or_ids_from_the_future_are_refused(tenant, other_tenant):
    [taken] = other_tenant.import_conversions([{"goal_id": other_tenant.goal_id, "datetime": "2026-05-01 00:00:00"}])
    rows = [
        {"id": taken, "goal_id": tenant.goal_id, "datetime": "2026-05-01 00:00:00"},
        {"id": import_id("2026-05-02 00:00:00"), "goal_id": tenant.goal_id, "datetime": "2999-01-01 00:00:00"},
        {"id": 2**53 - 1, "goal_id": tenant.goal_id, "datetime": "2999-01-02 00:00:00"},
    ]
    problems = refusal(tenant.repository, {"conversions": rows})
    text = "\n".join(problems)
    assert f"id {taken} is already taken" in text
    assert "in the future" in text
    assert "the first id the service can give now" in text


def test_conversion_references_follow_the_create_rules(tenant):
    rows = [
        {
            "id": import_id("2026-06-01 00:00:00"),
            "goal_id": tenant.lightweight_goal_id,
            "visitor_id": tenant.visitor_id,
            "datetime": "2026-06-01 00:00:00",
        },
        {
            "id": import_id("2026-06-01 00:00:01"),
            "goal_id": tenant.goal_id,
            "visitor_id": tenant.visitor_id,
            "session_id": tenant.other_session_id,
            "datetime": "2026-06-01 00:00:01",
        },
    ]
    problems = refusal(tenant.repository, {"conversions": rows})
    text = "\n".join(problems)
    assert "tracking_mode normal" in text and "session_id does not belong to the given visitor_id" in text


def test_imported_conversions_take_the_goals_website_and_user_and_later_creates_get_higher_ids(tenant):
    [imported] = tenant.import_conversions([{"goal_id": tenant.second_goal_id, "datetime": "2026-06-01 00:00:00"}])
    listed = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={})).json["data"]
    assert listed[0]["website_id"] == tenant.website_id and listed[0]["user_id"] == tenant.user_id
    created = invoke(create_app, api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id}))
    assert created.json["data"]["id"] > imported


def test_an_import_never_hands_a_key_a_website_or_a_goal_to_another_user(tenant, other_tenant):
    """Records already in the table keep their user: a seed that names them for another is
    refused as a whole, and the key still opens its own user's data."""
    user = new_id()
    seed = {
        "users": [{"user_id": user, "api_key": tenant.api_key, "status": "active"}],
        "websites": [
            {"website_id": tenant.website_id, "user_id": user, "host": "x.example", "tracking_mode": "normal"}
        ],
        "goals": [{"goal_id": tenant.goal_id, "website_id": other_tenant.website_id, "type": "custom", "name": "G"}],
    }
    problems = refusal(tenant.repository, seed)
    assert problems == [
        f"users[0]: api_key is the key of user {tenant.user_id}",
        f"websites[0]: website {tenant.website_id} belongs to user {tenant.user_id}",
        f"goals[0]: goal {tenant.goal_id} belongs to user {tenant.user_id}",
    ]
    assert tenant.repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key)).user_id == tenant.user_id
    assert tenant.repository.accounts.entity("USER", user) is None


def test_an_import_moves_no_stored_visitor_session_or_event(tenant, other_tenant):
    """The conversions naming a visitor, session or event were checked against where it is: an
    import that would move one (to another website, a session to another visitor, an event to
    another session) is refused as a whole; the same records as stored are accepted."""
    w = tenant.website_id
    moved = {
        "visitors": [{"visitor_id": tenant.visitor_id, "website_id": other_tenant.website_id}],
        "sessions": [{"session_id": tenant.session_id, "website_id": w, "visitor_id": tenant.other_visitor_id}],
        "events": [{"event_id": tenant.event_id, "website_id": w, "session_id": None}],
    }
    problems = refusal(tenant.repository, moved)
    assert problems == [
        f"visitors[0]: visitor {tenant.visitor_id} has website_id {w}; an import does not change it",
        f"sessions[0]: session {tenant.session_id} has visitor_id {tenant.visitor_id}; an import does not change it",
        f"events[0]: event {tenant.event_id} has session_id {tenant.session_id}; an import does not change it",
    ]
    assert tenant.repository.accounts.entity("VISITOR", tenant.visitor_id, consistent=True)["website_id"] == w
    kept = {
        "visitors": [{"visitor_id": tenant.visitor_id, "website_id": w}],
        "sessions": [{"session_id": tenant.session_id, "website_id": w, "visitor_id": tenant.visitor_id}],
        "events": [{"event_id": tenant.event_id, "website_id": w, "session_id": tenant.session_id}],
    }
    assert load_seed(tenant.repository, kept)["events"] == 1


def test_a_conversion_id_twice_in_a_seed_is_a_listed_problem(tenant):
    row = {"id": import_id("2026-05-03 00:00:00"), "goal_id": tenant.goal_id, "datetime": "2026-05-03 00:00:00"}
    problems = refusal(tenant.repository, {"conversions": [row, row]})
    assert problems == [f"conversions[1] (id {row['id']}): id {row['id']} is already taken"]


def test_a_user_imported_again_with_another_key_loses_the_old_one(repository):
    user = new_id()
    old, new = f"old-{user}", f"new-{user}"
    load_seed(repository, {"users": [{"user_id": user, "api_key": old, "status": "active"}]})
    assert repository.accounts.user_by_key_hash(hash_api_key(old)).user_id == user
    load_seed(repository, {"users": [{"user_id": user, "api_key": new, "status": "active"}]})
    assert repository.accounts.user_by_key_hash(hash_api_key(old), consistent=True) is None
    assert repository.accounts.user_by_key_hash(hash_api_key(new), consistent=True).user_id == user
    load_seed(repository, {"users": [{"user_id": user, "api_key": new, "status": "disabled"}]})
    assert repository.accounts.user_by_key_hash(hash_api_key(new), consistent=True).status == "disabled"


def test_a_goal_without_a_datetime_is_created_no_later_than_its_first_conversion(repository):
    user, website, converted, unconverted, dated = _fresh_ids(5)
    now = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
    goals = [
        {"goal_id": goal, "website_id": website, "type": "custom", "name": "G"} for goal in (converted, unconverted)
    ]
    conversions = [
        {"id": import_id(moment), "goal_id": converted, "datetime": moment}
        for moment in ("2026-06-01 00:00:00", "2026-05-03 04:05:06")[::-1]
    ]
    seed = {
        "users": [{"user_id": user, "api_key": f"k-{user}"}],
        "websites": [{"website_id": website, "user_id": user}],
        "goals": [*goals, {**goals[0], "goal_id": dated, "key": "dated", "datetime": "2026-07-01 00:00:00"}],
        "conversions": conversions,
    }
    load_seed(repository, seed, now=now)
    created = {goal: repository.accounts.entity("GOAL", goal)["datetime"] for goal in (converted, unconverted, dated)}
    assert created == {
        converted: "2026-05-03 04:05:06",
        unconverted: "2026-11-01 12:00:00",
        dated: "2026-07-01 00:00:00",
    }


def test_a_stored_goal_imported_again_without_a_datetime_keeps_the_earliest_it_knows(tenant):
    """Its stored datetime, or its first stored conversion's when that is earlier (a goal an
    earlier import dated at the import's moment, after its own conversions)."""
    tenant.import_conversions([{"goal_id": tenant.goal_id, "datetime": "2026-04-02 03:04:05"}])
    assert tenant.repository.accounts.entity("GOAL", tenant.goal_id)["datetime"] > "2026-04-02 03:04:05"
    goal = {
        "goal_id": tenant.goal_id,
        "website_id": tenant.website_id,
        "type": "custom",
        "name": "Signup",
        "key": "signup",
    }
    load_seed(tenant.repository, {"goals": [goal]})
    assert tenant.repository.accounts.entity("GOAL", tenant.goal_id)["datetime"] == "2026-04-02 03:04:05"
    stored = tenant.repository.accounts.entity("GOAL", tenant.second_goal_id)
    again = {
        "goal_id": tenant.second_goal_id,
        "website_id": tenant.website_id,
        "type": "pageview",
        "name": "Buy",
        "path": "/ok",
    }
    load_seed(tenant.repository, {"goals": [again]})
    assert tenant.repository.accounts.entity("GOAL", tenant.second_goal_id)["datetime"] == stored["datetime"]


def test_a_goal_dated_in_the_future_is_refused_like_a_conversion(tenant):
    goal = {"goal_id": new_id(), "website_id": tenant.website_id, "type": "custom", "name": "Later"}
    problems = refusal(
        tenant.repository,
        {
            "goals": [
                {**goal, "datetime": "2999-01-01 00:00:00"},
                {**goal, "goal_id": new_id(), "last_datetime": "2999-01-02 00:00:00"},
            ]
        },
    )
    assert problems == [
        "goals[0]: datetime 2999-01-01 00:00:00 is in the future",
        "goals[1]: last_datetime 2999-01-02 00:00:00 is in the future",
    ]
