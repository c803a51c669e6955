"""meta.total comes from count buckets maintained on write: it must stay exact after every kind of
write, for every filter and for datetime bounds that cut days, hours and minutes.

Tests that import past conversions come before tests that create conversions "now".
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from conftest import Tenant, api_event, invoke
from functions.create_conversion import app as create_app
from functions.delete_conversion import app as delete_app
from functions.list_conversions import app as list_app
from functions.update_conversion import app as update_app

# Conversions around day, hour and minute edges, two in one second; (datetime, goal attribute).
EDGES = [
    ("2026-03-31 22:15:00", "goal_id"),
    ("2026-03-31 23:59:58", "second_goal_id"),
    ("2026-03-31 23:59:59", "lightweight_goal_id"),
    ("2026-04-01 00:00:00", "goal_id"),
    ("2026-04-01 00:00:00", "second_goal_id"),
    ("2026-04-01 00:00:01", "goal_id"),
    ("2026-04-01 00:00:59", "lightweight_goal_id"),
    ("2026-04-01 00:01:00", "goal_id"),
    ("2026-04-01 00:59:59", "second_goal_id"),
    ("2026-04-01 01:00:00", "goal_id"),
    ("2026-04-01 13:37:12", "goal_id"),
    ("2026-04-01 13:37:40", "second_goal_id"),
    ("2026-04-01 23:59:59", "goal_id"),
    ("2026-04-02 00:00:00", "lightweight_goal_id"),
    ("2026-04-03 12:00:00", "goal_id"),
    ("2026-05-01 08:30:30", "second_goal_id"),
]

EDGE_BOUNDS = [
    (None, None),
    ("2026-04-01 00:00:00", "2026-04-01 23:59:59"),  # one whole day
    ("2026-04-01 00:00:01", "2026-04-01 13:37:30"),  # both ends inside minutes
    ("2026-03-31 23:59:59", "2026-04-01 00:00:00"),  # two seconds across midnight
    ("2026-04-01 13:37:12", "2026-04-01 13:37:12"),  # one second
    ("2026-04-01 00:00:30", "2026-04-01 00:59:59"),  # inside one hour
    ("2026-03-31 22:15:01", None),
    (None, "2026-04-01 00:59:58"),
    ("2026-04-01T00:01", "2026-04-03T12:00"),
    ("2026-06-01 00:00:00", None),  # nothing
]


def filters_of(tenant: Tenant) -> list[dict[str, int]]:
    return [
        {},
        {"website_id": tenant.website_id},
        {"website_id": tenant.lightweight_website_id},
        {"goal_id": tenant.goal_id},
        {"goal_id": tenant.second_goal_id},
        {"goal_id": tenant.lightweight_goal_id},
        {"goal_id": tenant.goal_id, "website_id": tenant.website_id},
    ]


def website_of(tenant: Tenant, goal_id: int) -> int:
    return tenant.lightweight_website_id if goal_id == tenant.lightweight_goal_id else tenant.website_id


def normalised(bound: str | None) -> str | None:
    if bound is None or len(bound) == 19:
        return bound.replace("T", " ") if bound else None
    return bound.replace("T", " ") + ":00"


def expected(conversions: list[dict], filters: dict[str, int], start: str | None, end: str | None) -> list[dict]:
    """The matching conversions in ascending order (datetime, then id)."""
    start, end = normalised(start), normalised(end)
    return sorted(
        (
            c
            for c in conversions
            if all(c[name] == value for name, value in filters.items())
            and (start is None or c["datetime"] >= start)
            and (end is None or c["datetime"] <= end)
        ),
        key=lambda c: (c["datetime"], c["id"]),
    )


def list_(tenant: Tenant, **query) -> dict:
    result = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query=query))
    assert result.status == 200, result
    return result.json


def assert_totals(tenant: Tenant, conversions: list[dict], bounds: list[tuple[str | None, str | None]]) -> None:
    """Every filter by every bound: the total, and a page of the right ids (orders alternate)."""
    for n, (filters, (start, end)) in enumerate((f, b) for f in filters_of(tenant) for b in bounds):
        query = {**filters, "results_per_page": 10}
        if start:
            query["datetime_start"] = start
        if end:
            query["datetime_end"] = end
        want = expected(conversions, filters, start, end)
        ascending = n % 2 == 0
        body = list_(tenant, **query, order_type="ASC" if ascending else "DESC")
        assert body["meta"]["total"] == len(want), (filters, start, end)
        ordered = want if ascending else want[::-1]
        assert [c["id"] for c in body["data"]] == [c["id"] for c in ordered[:10]], (filters, start, end)


@pytest.fixture(scope="module")
def edge_tenant(repository) -> tuple[Tenant, list[dict]]:
    tenant = Tenant(repository)
    rows = [{"goal_id": getattr(tenant, goal), "datetime": when} for when, goal in EDGES]
    ids = tenant.import_conversions(rows)
    conversions = [
        {"id": i, "goal_id": r["goal_id"], "website_id": website_of(tenant, r["goal_id"]), "datetime": r["datetime"]}
        for i, r in zip(ids, rows, strict=True)
    ]
    return tenant, conversions


@pytest.mark.parametrize("bound", EDGE_BOUNDS, ids=lambda b: f"{b[0]}..{b[1]}")
def test_imported_totals_are_exact_for_every_filter_and_bound(edge_tenant, bound):
    tenant, conversions = edge_tenant
    assert_totals(tenant, conversions, [bound])


def test_imports_add_to_the_counts_already_there(edge_tenant, repository):
    tenant = Tenant(repository)
    first = tenant.import_conversions([{"goal_id": tenant.goal_id, "datetime": "2026-05-10 10:20:30"}])
    second = tenant.import_conversions(
        [
            {"goal_id": tenant.goal_id, "datetime": "2026-05-10 10:20:30"},
            {"goal_id": tenant.second_goal_id, "datetime": "2026-05-10 10:20:31"},
        ]
    )
    whens = ["2026-05-10 10:20:30", "2026-05-10 10:20:30", "2026-05-10 10:20:31"]
    goals = [tenant.goal_id, tenant.goal_id, tenant.second_goal_id]
    conversions = [
        {"id": i, "goal_id": g, "website_id": tenant.website_id, "datetime": w}
        for i, g, w in zip(first + second, goals, whens, strict=True)
    ]
    assert_totals(
        tenant,
        conversions,
        [(None, None), ("2026-05-10 10:20:30", "2026-05-10 10:20:30"), ("2026-05-10 10:00:00", "2026-05-10 10:59:59")],
    )


@pytest.fixture(scope="module")
def busy_tenant(repository) -> tuple[Tenant, list[dict]]:
    """67 conversions: 30 in one minute, 20 in the rest of its hour, 13 that day, 4 on later days."""
    tenant = Tenant(repository)
    base = datetime(2026, 5, 12, 9, 30)
    moments = [base + timedelta(seconds=s) for s in range(0, 60, 2)]
    moments += [base + timedelta(minutes=m) for m in range(1, 60, 3)]
    moments += [base + timedelta(hours=h) for h in range(1, 14)]
    moments += [base + timedelta(days=d, hours=d) for d in range(1, 5)]
    goals = [tenant.goal_id, tenant.second_goal_id]
    rows = [{"goal_id": goals[n % 2], "datetime": m.strftime("%Y-%m-%d %H:%M:%S")} for n, m in enumerate(moments)]
    ids = tenant.import_conversions(rows)
    return tenant, [
        {"id": i, "goal_id": r["goal_id"], "website_id": tenant.website_id, "datetime": r["datetime"]}
        for i, r in zip(ids, rows, strict=True)
    ]


@pytest.mark.parametrize("order_type", ["ASC", "DESC"])
@pytest.mark.parametrize(
    "bound", [(None, None), ("2026-05-12 09:30:05", "2026-05-14 18:00:00")], ids=["unbounded", "cut-bounds"]
)
def test_every_page_of_a_busy_minute_hour_and_day_is_in_order(busy_tenant, order_type, bound):
    """Deep pages open day and hour buckets into hours and minutes: pages must still tile."""
    tenant, conversions = busy_tenant
    start, end = bound
    for filters in ({}, {"goal_id": tenant.goal_id}):
        want = expected(conversions, filters, start, end)
        if order_type == "DESC":
            want = want[::-1]
        query = {**filters, "order_type": order_type, "results_per_page": 10}
        if start:
            query |= {"datetime_start": start, "datetime_end": end}
        seen = []
        for page in range(1, len(want) // 10 + 2):
            body = list_(tenant, **query, page=page)
            assert body["meta"]["total"] == len(want)
            seen += [c["id"] for c in body["data"]]
        assert seen == [c["id"] for c in want]


def create(tenant: Tenant, **form) -> dict:
    result = invoke(create_app, api_event("create_conversion", headers=tenant.auth, form=form))
    assert result.status == 201, result
    return result.json["data"]


def update(tenant: Tenant, conversion_id: int, **form) -> dict:
    event = api_event("update_conversion", headers=tenant.auth, conversion_id=conversion_id, form=form)
    result = invoke(update_app, event)
    assert result.status == 200, result
    return result.json["data"]


def bounds_around(moments: list[str]) -> list[tuple[str | None, str | None]]:
    """Bounds that cut the day, hour and minute of each moment, and ones just past it."""
    bounds: list[tuple[str | None, str | None]] = [(None, None)]
    for when in moments:
        at = datetime.strptime(when, "%Y-%m-%d %H:%M:%S")
        before, after = (
            (at - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S"),
            (at + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S"),
        )
        bounds += [
            (when, when),
            (f"{when[:10]} 00:00:00", when),
            (f"{when[:13]}:00:00", before),
            (after, f"{when[:10]} 23:59:59"),
            (f"{when[:16]}:00", None),
        ]
    return list(dict.fromkeys(bounds))


def test_totals_stay_exact_through_create_update_and_delete(repository):
    tenant = Tenant(repository)
    past = tenant.import_conversions([{"goal_id": tenant.goal_id, "datetime": "2026-05-20 12:00:00"}])
    conversions = [
        {"id": past[0], "goal_id": tenant.goal_id, "website_id": tenant.website_id, "datetime": "2026-05-20 12:00:00"}
    ]

    def record(data: dict) -> None:
        conversions[:] = [c for c in conversions if c["id"] != data["id"]]
        conversions.append({name: data[name] for name in ("id", "goal_id", "website_id", "datetime")})

    first = create(tenant, goal_id=tenant.goal_id, visitor_id=tenant.visitor_id)
    second = create(tenant, goal_id=tenant.second_goal_id)
    third = create(tenant, goal_id=tenant.goal_id)
    for data in (first, second, third):
        record(data)
    bounds = bounds_around(sorted({first["datetime"], third["datetime"]}))
    # After each write every filter over a day, an hour and a minute cut at the conversions;
    # every bound after the first writes and the last.
    some = [bounds[0], *bounds[2:4]]
    assert_totals(tenant, conversions, bounds)

    record(update(tenant, first["id"], session_id=tenant.session_id))  # references only
    assert_totals(tenant, conversions, some)

    record(update(tenant, first["id"], goal_id=tenant.second_goal_id))  # another goal, same website
    assert_totals(tenant, conversions, some)

    # another website: its references must go
    moved = update(tenant, third["id"], goal_id=tenant.lightweight_goal_id, visitor_id="", session_id="", event_id="")
    assert moved["website_id"] == tenant.lightweight_website_id
    record(moved)
    assert_totals(tenant, conversions, some)

    record(update(tenant, third["id"], goal_id=tenant.goal_id))  # and back
    assert_totals(tenant, conversions, some)

    for data in (second, third):
        deleted = invoke(delete_app, api_event("delete_conversion", headers=tenant.auth, conversion_id=data["id"]))
        assert deleted.status == 204
        conversions[:] = [c for c in conversions if c["id"] != data["id"]]
        assert_totals(tenant, conversions, some)
    assert_totals(tenant, conversions, bounds)
