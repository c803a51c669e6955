"""The changes feed (GET /api/goals-conversions/changes), through API Gateway events into its
handler, with writes made through the other handlers and settled by the stream: walks with every
limit, filters, empty pages, goal moves and deletions, a call racing the stream, cursors edited
or another user's, limits, and retention by a test clock."""

from __future__ import annotations

import base64
import copy
import dataclasses
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tables import scan

from conftest import (
    PUMPS,
    LambdaContext,
    Result,
    Tenant,
    api_event,
    goal_event,
    invoke,
    services_for,
    services_of,
    settle,
)
from conversions_core import conversion_service
from conversions_core.auth import hash_api_key
from conversions_core.feed import FILTER_READS, Cursor, encode_cursor
from conversions_core.repository.changes import GRACE_SECONDS
from functions.create_conversion import app as create_app
from functions.delete_conversion import app as delete_app
from functions.delete_goal import app as delete_goal_app
from functions.list_changes import app as changes_app
from functions.update_conversion import app as update_app
from functions.update_goal import app as update_goal_app
from goals_conversions_local.embedded import expire_items

DAY = 86400


def feed(tenant: Tenant, **query: Any) -> Result:
    return invoke(changes_app, api_event("list_changes", headers=tenant.auth, query=query))


def walk(tenant: Tenant, limit: int | None = None, cursor: str | None = None, **filters: Any):
    """Every change after `cursor`, following next_cursor until has_more is false; (changes,
    the last cursor, the pages' sizes)."""
    changes, sizes = [], []
    while True:
        query = {**filters, **({"limit": limit} if limit else {}), **({"cursor": cursor} if cursor else {})}
        page = feed(tenant, **query)
        assert page.status == 200, page
        assert set(page.json) == {"data", "meta"} and set(page.json["meta"]) == {"next_cursor", "has_more"}
        changes += page.json["data"]
        sizes.append(len(page.json["data"]))
        assert len(page.json["data"]) <= (limit or 100)
        cursor = page.json["meta"]["next_cursor"]
        if not page.json["meta"]["has_more"]:
            return changes, cursor, sizes


def create(tenant: Tenant, goal_id: int | None = None, **fields: Any) -> dict[str, Any]:
    body = {"goal_id": goal_id or tenant.goal_id, **fields}
    result = invoke(create_app, api_event("create_conversion", headers=tenant.auth, json_body=body))
    assert result.status == 201, result
    return result.json["data"]


def update(tenant: Tenant, conversion_id: int, **fields: Any) -> dict[str, Any]:
    event = api_event("update_conversion", headers=tenant.auth, conversion_id=conversion_id, json_body=fields)
    result = invoke(update_app, event)
    assert result.status == 200, result
    return result.json["data"]


def delete(tenant: Tenant, conversion_id: int) -> None:
    result = invoke(delete_app, api_event("delete_conversion", headers=tenant.auth, conversion_id=conversion_id))
    assert result.status == 204, result


def history(tenant: Tenant) -> list[tuple[str, dict[str, Any]]]:
    """Creates, updates (references, goal, website) and deletes; the changes they make, in order."""
    made: list[tuple[str, dict[str, Any]]] = []
    first = create(tenant, visitor_id=tenant.visitor_id, value="19.9", currency="EUR")
    made.append(("created", first))
    second = create(tenant, tenant.second_goal_id)
    made.append(("created", second))
    made.append(("updated", update(tenant, first["id"], visitor_id=tenant.other_visitor_id)))
    made.append(("updated", update(tenant, second["id"], goal_id=tenant.goal_id)))
    update(tenant, second["id"])  # changes nothing the API returns: no change
    moved = update(tenant, first["id"], goal_id=tenant.lightweight_goal_id, visitor_id=None)
    made.append(("updated", moved))
    third = create(tenant, tenant.second_goal_id)
    made.append(("created", third))
    delete(tenant, first["id"])
    made.append(("deleted", moved))
    made.append(("updated", update(tenant, third["id"], goal_id=tenant.goal_id)))
    delete(tenant, third["id"])
    made.append(("deleted", {**third, "goal_id": tenant.goal_id}))
    return made


@pytest.fixture(scope="module")
def written(repository) -> tuple[Tenant, list[tuple[str, dict[str, Any]]]]:
    tenant = Tenant(repository)
    return tenant, history(tenant)


def as_made(changes: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(change["change"], change["conversion"]) for change in changes]


def test_a_walk_with_every_limit_returns_every_change_once_in_order(written):
    tenant, made = written
    assert len(made) == 9
    for limit in [*range(1, len(made) + 2), 100, 1000]:
        changes, _, sizes = walk(tenant, limit)
        assert as_made(changes) == made, limit
        assert all(size == limit for size in sizes[:-1]), (limit, sizes)
    default, _, sizes = walk(tenant)
    assert as_made(default) == made and sizes == [9]
    for change in default:
        assert datetime.strptime(change["changed_at"], "%Y-%m-%d %H:%M:%S")


def test_a_cursor_gives_what_was_recorded_since_and_an_empty_page_means_nothing_new(tenant):
    empty = feed(tenant)
    assert empty.status == 200 and empty.json["data"] == [] and empty.json["meta"]["has_more"] is False
    cursor = empty.json["meta"]["next_cursor"]
    again = feed(tenant, cursor=cursor)
    assert again.json["data"] == [] and again.json["meta"]["has_more"] is False
    made = create(tenant)
    news = feed(tenant, cursor=cursor)
    assert as_made(news.json["data"]) == [("created", made)]
    after = feed(tenant, cursor=news.json["meta"]["next_cursor"])
    assert after.json["data"] == [] and after.json["meta"]["has_more"] is False
    assert as_made(feed(tenant, cursor=cursor).json["data"]) == [("created", made)]  # a cursor can be reused


def test_filters_read_the_conversion_after_the_change_or_before_a_deletion(written):
    tenant, made = written
    for name, value in (
        ("website_id", tenant.website_id),
        ("website_id", tenant.lightweight_website_id),
        ("goal_id", tenant.goal_id),
        ("goal_id", tenant.second_goal_id),
        ("goal_id", tenant.lightweight_goal_id),
    ):
        expected = [(kind, conversion) for kind, conversion in made if conversion[name] == value]
        assert expected, (name, value)
        for limit in (1, 2, 3, 100):
            changes, _, _ = walk(tenant, limit, **{name: value})
            assert as_made(changes) == expected, (name, value, limit)
    both = {"website_id": tenant.website_id, "goal_id": tenant.second_goal_id}
    expected = [(k, c) for k, c in made if c["website_id"] == both["website_id"] and c["goal_id"] == both["goal_id"]]
    assert as_made(walk(tenant, 2, **both)[0]) == expected
    assert walk(tenant, 5, website_id=999_999_999)[0] == []  # not the caller's: nothing, no error


def test_a_filtered_call_reads_a_bounded_number_of_changes_and_moves_past_the_others(written):
    """The cost depends on `limit`: when nothing matches the filter, a call reads at most
    FILTER_READS * limit + 1 entries, answers has_more, and its cursor is past them."""
    tenant, made = written
    read: list[int] = []
    events = services_of(changes_app).client.meta.events

    def count(parsed: dict[str, Any], **_: Any) -> None:
        read.append(parsed.get("Count", 0))

    events.register("after-call.dynamodb.Query", count)
    try:
        calls, cursor = 0, None
        while True:
            query = {"limit": 1, "website_id": 999_999_999, **({"cursor": cursor} if cursor else {})}
            page = feed(tenant, **query).json
            calls += 1
            assert page["data"] == []
            cursor = page["meta"]["next_cursor"]
            if not page["meta"]["has_more"]:
                break
    finally:
        events.unregister("after-call.dynamodb.Query", count)
    assert max(read) <= FILTER_READS + 1 and sum(read) == len(made)
    assert calls == -(-len(made) // (FILTER_READS + 1))
    assert feed(tenant, cursor=cursor).json["data"] == []  # the cursor is past all of them


def test_a_goals_move_and_deletion_appear_as_changes_of_each_conversion(tenant):
    start = feed(tenant).json["meta"]["next_cursor"]
    ids = [create(tenant)["id"] for _ in range(3)]
    event = goal_event("update_goal", tenant, tenant.goal_id, json_body={"website_id": tenant.lightweight_website_id})
    assert invoke(update_goal_app, event).status == 200
    settle()  # the stream moves the goal's conversions, and their own records feed the feed
    assert invoke(delete_goal_app, goal_event("delete_goal", tenant, tenant.goal_id)).status == 204
    settle()
    changes, _, _ = walk(tenant, 2, cursor=start)
    assert [c["change"] for c in changes] == ["created"] * 3 + ["updated"] * 3 + ["deleted"] * 3
    for kind in ("updated", "deleted"):
        of_kind = [c["conversion"] for c in changes if c["change"] == kind]
        assert sorted(c["id"] for c in of_kind) == sorted(ids)
        assert all(c["website_id"] == tenant.lightweight_website_id and c["visitor_id"] is None for c in of_kind)


def test_a_feed_call_racing_the_stream_sees_every_change_once_in_order(repository, tenant):
    """A writer (with the stream settling as it goes) and a reader polling with its cursor, at
    the same time: the reader's changes, once the writes settle, are every change, in order."""
    user = repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    done: list[tuple[str, int]] = []
    finished = threading.Event()

    def write() -> None:
        try:
            for round_ in range(8):
                made = conversion_service.create(repository, user, tenant.goal_id, {})
                done.append(("created", made.id))
                if round_ % 2:
                    conversion_service.update(repository, user, made.id, {"visitor_id": tenant.visitor_id})
                    done.append(("updated", made.id))
                if round_ % 3 == 0:
                    repository.conversions.delete(user, made.id)
                    done.append(("deleted", made.id))
                for pump in PUMPS:
                    pump.drain()
        finally:
            finished.set()

    seen: list[tuple[str, int]] = []
    cursor = feed(tenant).json["meta"]["next_cursor"]
    writer = threading.Thread(target=write)
    writer.start()
    while True:
        was_finished = finished.is_set()
        event = api_event("list_changes", headers=tenant.auth, query={"cursor": cursor, "limit": 2})
        page = Result(changes_app.lambda_handler(event, LambdaContext()))
        assert page.status == 200, page
        seen += [(c["change"], c["conversion"]["id"]) for c in page.json["data"]]
        cursor = page.json["meta"]["next_cursor"]
        if was_finished and not page.json["meta"]["has_more"]:
            settle()
            if not feed(tenant, cursor=cursor).json["data"]:
                break
    writer.join()
    assert len(done) == 8 + 4 + 3
    assert seen == done


@contextmanager
def clock_at(moment: datetime):
    """The feed's handler with a test clock."""
    services = services_of(changes_app)
    repository = copy.copy(services.repository)
    repository.clock = lambda: moment
    with services_for(changes_app, dataclasses.replace(services, repository=repository)):
        yield


def test_a_cursor_past_the_retention_is_410_and_an_idle_reader_keeps_its_cursor_fresh(tenant, tables):
    now = datetime.now(UTC)
    create(tenant)
    first = feed(tenant)
    cursor = first.json["meta"]["next_cursor"]
    with clock_at(now + timedelta(days=6, hours=23)):
        idle = feed(tenant, cursor=cursor)
        assert idle.status == 200 and idle.json["data"] == []
        fresh = idle.json["meta"]["next_cursor"]
    with clock_at(now + timedelta(days=7, minutes=1)):
        gone = feed(tenant, cursor=cursor)
        assert gone.status == 410, gone
        [error] = gone.json["errors"]
        assert "copy the list again" in error["title"].lower() and error["source"] == {"parameter": "cursor"}
        assert feed(tenant, cursor=fresh).status == 200  # refreshed by the idle read
    assert feed(tenant, cursor=cursor).status == 200
    # DynamoDB's TTL removes an entry only after the retention and the grace: never one a cursor
    # that is still answered may need.
    entries = [i for i in scan_feed(tables, tenant)]
    assert entries and all(i["expires_at"] >= now.timestamp() + 7 * DAY + GRACE_SECONDS - 5 for i in entries)
    expire_items(tables["DATA_TABLE_NAME"], now=now.timestamp() + 7 * DAY + GRACE_SECONDS + 60)
    assert scan_feed(tables, tenant) == [] or all(i["sk"] == "HEAD" for i in scan_feed(tables, tenant))
    assert feed(tenant).json["data"] == []  # from the oldest change kept: none


def scan_feed(tables: dict[str, str], tenant: Tenant) -> list[dict[str, Any]]:
    import boto3

    items = scan(boto3.client("dynamodb"), tables["DATA_TABLE_NAME"])
    return [i for i in items if i["pk"] == f"CHANGES#{tenant.user_id}" and i["sk"] != "HEAD"]


def test_an_edited_malformed_or_foreign_cursor_is_400_naming_cursor(tenant, other_tenant):
    create(tenant)
    cursor = feed(tenant).json["meta"]["next_cursor"]
    theirs = feed(other_tenant).json["meta"]["next_cursor"]
    payload, mac = cursor.split(".")
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    user, sequence, since = decoded.split(".")[1:]
    rewound = base64.urlsafe_b64encode(f"c1.{user}.0.{since}".encode()).decode().rstrip("=")
    other_user = base64.urlsafe_b64encode(f"c1.{other_tenant.user_id}.{sequence}.{since}".encode())
    forged = encode_cursor(b"not the deployment's key", Cursor(tenant.user_id, 0, int(since)))
    for bad in (
        theirs,  # another user's, genuinely signed
        f"{rewound}.{mac}",  # the sequence edited
        f"{other_user.decode().rstrip('=')}.{mac}",  # the user edited
        cursor[:-1] + ("A" if cursor[-1] != "A" else "B"),  # the signature edited
        forged,  # signed with another key
        "",
        "x",
        "not a cursor",
        cursor + "." + mac,
        "%00" + cursor,
        "A" * 5000,
    ):
        result = feed(tenant, cursor=bad)
        assert result.status == 400, (bad, result)
        assert [e["source"] for e in result.json["errors"]] == [{"parameter": "cursor"}], result
    assert feed(tenant, cursor=cursor).status == 200


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "1.0", "+5", "1_0", "", "ten", "٣", "99999999999999999999"])
def test_a_limit_outside_1_to_1000_is_400_naming_limit(tenant, limit):
    result = feed(tenant, limit=limit)
    assert result.status == 400, result
    assert result.json["errors"][0]["source"] == {"parameter": "limit"}


def test_filters_must_be_positive_integers(tenant):
    for name in ("website_id", "goal_id"):
        result = feed(tenant, **{name: "1.0"})
        assert result.status == 400 and result.json["errors"][0]["source"] == {"parameter": name}


def test_the_feed_needs_an_api_key(tenant):
    result = invoke(changes_app, api_event("list_changes", headers={}))
    assert result.status == 401


def test_the_local_server_serves_the_feed_from_the_template_routes(local_api, tenant):
    import requests

    made = create(tenant)
    for path in ("/api/goals-conversions/changes", "/api/goals-conversions/changes/"):
        response = requests.get(f"{local_api}{path}", params={"limit": 1}, headers=tenant.auth, timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json"
        assert as_made(response.json()["data"]) == [("created", made)]
    refused = requests.get(f"{local_api}/api/goals-conversions/changes", params={"cursor": "x"}, headers=tenant.auth)
    assert refused.status_code == 400 and refused.json()["errors"][0]["source"] == {"parameter": "cursor"}
