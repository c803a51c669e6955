"""GET /api/goals-conversions/statistics: counts per local interval equal to counting by hand, filters,
other users' ids, parameter errors, and reads that depend on the intervals only."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import FIGURES, api_event, invoke, services_of
from conversions_core.repository import buckets
from functions.conversion_statistics import app as statistics_app

_QUARTER = timedelta(minutes=15)


def stats(tenant, **query):
    return invoke(statistics_app, api_event("conversion_statistics", headers=tenant.auth, query=query))


# -- counting by hand ------------------------------------------------------------------------------


def _bounds(query: dict[str, str]) -> tuple[datetime, datetime]:
    """The range in UTC, as the contract reads it: to the second, both bounds included."""
    tz = ZoneInfo(query.get("timezone", "UTC"))
    start, end = (datetime.fromisoformat(query[name]) for name in ("datetime_start", "datetime_end"))
    return start.replace(tzinfo=tz).astimezone(UTC), end.replace(tzinfo=tz).astimezone(UTC) + timedelta(seconds=1)


def _key(moment: datetime, query: dict[str, str]) -> tuple[str, Any]:
    """The interval a UTC instant is in: its local unit's label (and, for hours, the offset, which
    tells a repeated hour's two intervals apart)."""
    local = moment.astimezone(ZoneInfo(query.get("timezone", "UTC")))
    interval = query.get("interval", "day")
    unit = local.replace(minute=0, second=0)
    if interval != "hour":
        unit = unit.replace(hour=0) if interval == "day" else unit.replace(hour=0, day=1)
    return f"{unit:%Y-%m-%d %H:%M:%S}", local.utcoffset() if interval == "hour" else None


def _walk(query: dict[str, str]) -> tuple[list[tuple[str, Any]], list[datetime]]:
    """The intervals of the range in order, and the UTC instants where one ends and the next
    starts: found by stepping a quarter-hour at a time (the zones tested move on quarter-hours)."""
    start, end = _bounds(query)
    probe = start.replace(minute=start.minute - start.minute % 15, second=0) + _QUARTER
    probes = [start]
    while probe < end:
        probes.append(probe)
        probe += _QUARTER
    keys, changes = [_key(start, query)], []
    for moment in probes[1:]:
        if _key(moment, query) != keys[-1]:
            keys.append(_key(moment, query))
            changes.append(moment)
    return keys, changes


def expected(rows: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    start, end = _bounds(query)
    counted = Counter()
    sums: dict[Any, dict[str, Decimal]] = defaultdict(dict)
    for row in rows:
        moment = datetime.fromisoformat(row["datetime"]).replace(tzinfo=UTC)
        if start <= moment < end:
            key = _key(moment, query)
            counted[key] += 1
            if row.get("value") is not None:
                currency = row["currency"]
                sums[key][currency] = sums[key].get(currency, Decimal(0)) + Decimal(row["value"])
    keys, _ = _walk(query)
    return [
        {"datetime": label, "conversions": counted[(label, offset)], "values": written(sums[(label, offset)])}
        for label, offset in keys
    ]


def whole_range(data: list[dict[str, Any]]) -> dict[str, str]:
    """meta.values by hand: the intervals' sums added up."""
    sums: dict[str, Decimal] = {}
    for point in data:
        for currency, amount in point["values"].items():
            sums[currency] = sums.get(currency, Decimal(0)) + Decimal(amount)
    return written(sums)


DIGITS = {"EUR": 2, "JPY": 0, "KWD": 3, "CLF": 4}


def written(sums: dict[str, Decimal]) -> dict[str, str]:
    """Sums as the contract writes them: each with its currency's digits, by hand."""
    return {currency: f"{amount:.{DIGITS[currency]}f}" for currency, amount in sorted(sums.items())}


# What the conversions of the oracle tests are worth, in turn (none, a thousand small values...).
WORTHS = [
    {},
    {"value": "0.10", "currency": "EUR"},
    {"value": "19.99", "currency": "EUR"},
    {"value": "1200", "currency": "JPY"},
    {"value": "1.250", "currency": "KWD"},
    {"value": "0.0001", "currency": "CLF"},
    {"value": "0.00", "currency": "EUR"},
]


def conversions_around(tenant, query: dict[str, str], count: int = 120) -> list[dict[str, Any]]:
    """Conversions of the tenant's three goals (two websites): `count` at random seconds from a day
    before the range to a day after, and some on each side of its first boundaries and bounds."""
    start, end = _bounds(query)
    draw = random.Random(f"{sorted(query.items())}")
    moments = [start - timedelta(days=1) + (end - start + timedelta(days=2)) * draw.random() for _ in range(count)]
    _, changes = _walk(query)
    for edge in [start, end, *changes[:25], *changes[-5:]]:
        moments += [edge - timedelta(seconds=1), edge, edge + timedelta(seconds=59)]
    goals = (tenant.goal_id, tenant.second_goal_id, tenant.lightweight_goal_id)
    rows = [
        {"goal_id": goals[n % 3], "datetime": f"{moment:%Y-%m-%d %H:%M:%S}", **WORTHS[n % len(WORTHS)]}
        for n, moment in enumerate(moments)
    ]
    tenant.import_conversions(rows)
    return rows


CASES = [
    ("hour", "UTC", "2026-06-01 10:17:45", "2026-06-03 08:05:00"),
    ("day", "Asia/Kolkata", "2026-06-01 09:15:30", "2026-06-03 18:44:10"),
    ("day", "UTC", "2026-06-01 00:00:00", "2026-06-30 23:59:59"),
    ("month", "UTC", "2025-11-15 00:00:00", "2026-03-10 12:00:00"),
    ("day", "America/New_York", "2026-03-05 00:00:00", "2026-03-12 23:59:59"),
    ("day", "Asia/Kolkata", "2026-06-01 00:00:00", "2026-06-30 23:59:59"),
    ("hour", "Asia/Kolkata", "2026-06-01 20:10:00", "2026-06-02 04:59:00"),
    ("month", "Asia/Kolkata", "2026-01-01 00:00:00", "2026-04-30 23:59:59"),
    ("hour", "Asia/Kathmandu", "2026-06-01 21:00:00", "2026-06-02 03:29:00"),
    ("day", "Europe/Paris", "2026-03-25 06:30:00", "2026-04-02 23:59:59"),
    ("day", "Europe/Paris", "2026-10-20T00:00", "2026-10-31T23:59"),
    ("hour", "Europe/Paris", "2026-03-28 22:00:00", "2026-03-29 05:59:59"),
    ("hour", "Europe/Paris", "2026-10-24 22:00:00", "2026-10-25 05:59:59"),
    ("month", "Europe/Paris", "2026-02-01 00:00:00", "2026-10-31 23:59:59"),
]


@pytest.mark.parametrize("interval, timezone, start, end", CASES)
def test_statistics_equal_counting_the_conversions_by_hand(tenant, interval, timezone, start, end):
    query = {"datetime_start": start, "datetime_end": end, "interval": interval, "timezone": timezone}
    rows = conversions_around(tenant, query)
    goal_website = {tenant.goal_id: tenant.website_id, tenant.second_goal_id: tenant.website_id}
    filters = [
        ({}, rows),
        ({"goal_id": tenant.second_goal_id}, [r for r in rows if r["goal_id"] == tenant.second_goal_id]),
        ({"website_id": tenant.website_id}, [r for r in rows if r["goal_id"] in goal_website]),
        ({"website_id": tenant.lightweight_website_id}, [r for r in rows if r["goal_id"] not in goal_website]),
    ]
    for extra, matching in filters:
        result = stats(tenant, **query, **extra)
        assert result.status == 200, result
        data = expected(matching, query)
        assert result.json["data"] == data, extra
        assert result.json["meta"] == {
            "total": sum(d["conversions"] for d in data),
            "values": whole_range(data),
            "interval": interval,
            "timezone": timezone,
        }
        assert result.json["meta"]["total"] > 0


def test_the_days_around_a_change_of_time_count_23_and_25_hours(tenant):
    # One conversion in each UTC hour for 49 hours from the start of Paris's 25 October, which holds 25.
    start = datetime(2026, 10, 24, 22)
    tenant.import_conversions(
        [{"goal_id": tenant.goal_id, "datetime": f"{start + timedelta(hours=n):%Y-%m-%d %H:%M:%S}"} for n in range(49)]
    )
    result = stats(
        tenant, datetime_start="2026-10-25 00:00:00", datetime_end="2026-10-26 23:59:59", timezone="Europe/Paris"
    )
    assert result.json["data"] == [
        {"datetime": "2026-10-25 00:00:00", "conversions": 25, "values": {}},
        {"datetime": "2026-10-26 00:00:00", "conversions": 24, "values": {}},
    ]
    hours = stats(tenant, datetime_start="2026-10-25 00:00:00", datetime_end="2026-10-25 23:59:59",
                  timezone="Europe/Paris", interval="hour")  # fmt: skip
    labels = [d["datetime"][11:13] for d in hours.json["data"]]
    assert labels == [f"{h:02d}" for h in (0, 1, 2, 2, *range(3, 24))]
    assert {d["conversions"] for d in hours.json["data"]} == {1}


def test_defaults_are_day_intervals_in_utc(tenant):
    tenant.import_conversions([{"goal_id": tenant.goal_id, "datetime": "2026-06-02 23:59:59"}])
    result = stats(tenant, datetime_start="2026-06-01T00:00", datetime_end="2026-06-03T00:00")
    assert result.json == {
        "data": [
            {"datetime": "2026-06-01 00:00:00", "conversions": 0, "values": {}},
            {"datetime": "2026-06-02 00:00:00", "conversions": 1, "values": {}},
            {"datetime": "2026-06-03 00:00:00", "conversions": 0, "values": {}},
        ],
        "meta": {"total": 1, "values": {}, "interval": "day", "timezone": "UTC"},
    }


def test_another_users_goal_or_website_gives_every_interval_with_zeros(tenant, other_tenant):
    other_tenant.import_conversions([{"goal_id": other_tenant.goal_id, "datetime": "2026-06-02 10:00:00"}])
    tenant.import_conversions([{"goal_id": tenant.goal_id, "datetime": "2026-06-02 10:00:00"}])
    zeros = [{"datetime": f"2026-06-0{d} 00:00:00", "conversions": 0, "values": {}} for d in (1, 2, 3)]
    for query in (
        {"goal_id": other_tenant.goal_id},
        {"website_id": other_tenant.website_id},
        {"goal_id": 987654321},
        {"goal_id": tenant.goal_id, "website_id": tenant.lightweight_website_id},  # a goal of another website
    ):
        result = stats(tenant, datetime_start="2026-06-01 00:00:00", datetime_end="2026-06-03 23:59:59", **query)
        assert result.status == 200
        meta = {"total": 0, "values": {}, "interval": "day", "timezone": "UTC"}
        assert result.json == {"data": zeros, "meta": meta}
        # Bounds inside a minute are counted on the conversions themselves: still none of theirs.
        for start, end in (
            ("2026-06-02 09:59:30", "2026-06-02 10:00:30"),
            ("2026-06-02 10:00:00", "2026-06-02 10:00:00"),
        ):
            result = stats(tenant, datetime_start=start, datetime_end=end, **query)
            assert result.status == 200 and result.json["meta"]["total"] == 0, (query, start, result)


def test_the_sample_event_answers(tenant):
    result = invoke(statistics_app, api_event("conversion_statistics", headers=tenant.auth))
    assert result.status == 200  # website 1 is not the tenant's: thirty days of zeros
    assert len(result.json["data"]) == 30 and result.json["meta"]["timezone"] == "Europe/Paris"


BOUNDS = {"datetime_start": "2026-06-01 00:00:00", "datetime_end": "2026-06-30 23:59:59"}


@pytest.mark.parametrize(
    "query, parameter, title",
    [
        ({"datetime_end": "2026-06-30 23:59:59"}, "datetime_start", "datetime_start is required"),
        ({"datetime_start": "2026-06-01 00:00:00"}, "datetime_end", "datetime_end is required"),
        ({**BOUNDS, "datetime_start": "2026-06-31 00:00:00"}, "datetime_start", "datetime_start must be a datetime"),
        ({**BOUNDS, "datetime_end": "2026-06-30 24:00:00"}, "datetime_end", "datetime_end must be a datetime"),
        ({**BOUNDS, "datetime_end": "2026-06-30"}, "datetime_end", "datetime_end must be a datetime"),
        ({**BOUNDS, "datetime_start": "2026-07-01 00:00:00"}, "datetime_start", "must not be after datetime_end"),
        ({**BOUNDS, "interval": "week"}, "interval", "interval must be one of hour, day, month"),
        ({**BOUNDS, "interval": "HOUR"}, "interval", "interval must be one of hour, day, month"),
        ({**BOUNDS, "timezone": "Mars/Olympus_Mons"}, "timezone", "timezone must be an IANA time zone name"),
        ({**BOUNDS, "timezone": ""}, "timezone", "timezone must be an IANA time zone name"),
        ({**BOUNDS, "timezone": "+05:30"}, "timezone", "timezone must be an IANA time zone name"),
        ({**BOUNDS, "timezone": "../../etc/passwd"}, "timezone", "timezone must be an IANA time zone name"),
        ({**BOUNDS, "timezone": "localtime"}, "timezone", "timezone must be an IANA time zone name"),
        (
            {"datetime_start": "2025-01-01 00:00:00", "datetime_end": "2026-01-02 00:01:00", "interval": "hour"},
            "datetime_end",
            "at most 366 days",
        ),
        ({**BOUNDS, "goal_id": "1_0"}, "goal_id", "goal_id must be a positive integer"),
        ({**BOUNDS, "goal_id": "+1"}, "goal_id", "goal_id must be a positive integer"),
        ({**BOUNDS, "website_id": "٣"}, "website_id", "website_id must be a positive integer"),
        ({**BOUNDS, "website_id": "0"}, "website_id", "website_id must be a positive integer"),
    ],
)
def test_each_bad_parameter_is_a_400_naming_it(tenant, query, parameter, title):
    result = stats(tenant, **query)
    assert result.status == 400
    [error] = result.json["errors"]
    assert error["status"] == 400 and error["source"] == {"parameter": parameter}
    assert title in error["title"]


def test_a_year_of_hours_is_answered_and_a_minute_more_is_refused(tenant):
    tenant.import_conversions([{"goal_id": tenant.goal_id, "datetime": "2024-06-01 12:00:00"}])
    query = {"datetime_start": "2024-01-01 00:00:00", "interval": "hour", "timezone": "Asia/Kathmandu"}
    assert stats(tenant, **query, datetime_end="2025-01-01 00:01:00").status == 400
    result = stats(tenant, **query, datetime_end="2025-01-01 00:00:00")  # 366 days, 2024 being a leap year
    assert result.status == 200 and len(result.json["data"]) == 366 * 24 + 1
    assert result.json["meta"]["total"] == 1


# -- what a request reads ------------------------------------------------------------------------------


class Reads:
    """The DynamoDB calls of the handler's client: what each asks for (user ids left out) and how
    many items come back."""

    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []
        self.returned = 0

    def request(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "Query":
            values = params["ExpressionAttributeValues"]
            pk = values[":pk"]["S"].split("#")[0]
            self.asked.append(("Query", params.get("IndexName"), pk, values[":low"]["S"], values[":high"]["S"]))
        elif model.name == "BatchGetItem":
            keys = [k for table in params["RequestItems"].values() for k in table["Keys"]]
            self.asked.append(("BatchGetItem", tuple(sorted(k["pk"]["S"].split("#")[0] + k["sk"]["S"] for k in keys))))
        else:
            self.asked.append((model.name, params["TableName"].removeprefix("TestStatistics")))

    def response(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "Query":
            self.returned += parsed.get("Count", 0)
        elif model.name == "BatchGetItem":
            self.returned += sum(len(items) for items in parsed.get("Responses", {}).values())
        elif model.name == "GetItem":
            self.returned += "Item" in parsed

    @property
    def buckets_asked(self) -> int:
        """Count buckets a request asks for: each key of a BatchGetItem, each unit a Query spans."""
        total = 0
        for call in self.asked:
            if call[0] == "BatchGetItem":
                total += len(call[1])
            elif call[0] == "Query":
                (level, low), (_, high) = buckets.parse_label(call[3]), buckets.parse_label(call[4])
                total += len(buckets.Run(level, low, buckets.following(level, high)).units())
        return total

    @property
    def calls(self) -> Counter:
        return Counter(call[0] for call in self.asked)


@contextmanager
def reads() -> Any:
    events = services_of(statistics_app).client.meta.events
    recorder = Reads()
    events.register("before-parameter-build.dynamodb", recorder.request)
    events.register("after-call.dynamodb", recorder.response)
    try:
        yield recorder
    finally:
        events.unregister("before-parameter-build.dynamodb", recorder.request)
        events.unregister("after-call.dynamodb", recorder.response)


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Paris", "Asia/Kolkata"])
def test_a_request_reads_the_same_whatever_the_number_of_conversions(make_tenant, timezone):
    query = {**BOUNDS, "timezone": timezone}
    few, many = make_tenant(rate_limit=100), make_tenant(rate_limit=100)
    rows = {few: [{"goal_id": few.goal_id, "datetime": "2026-06-15 12:00:00"}]}
    few.import_conversions(rows[few])
    rows[many] = conversions_around(many, query, count=100)
    recorded = {}
    for tenant in (few, many):
        with reads() as recorder:
            result = stats(tenant, **query, website_id=tenant.website_id)
        assert result.status == 200 and result.json["data"] == expected(
            [r for r in rows[tenant] if r["goal_id"] != tenant.lightweight_goal_id], query
        )
        recorded[tenant] = recorder
    assert recorded[few].asked == recorded[many].asked
    assert recorded[many].returned <= recorded[many].buckets_asked + 2  # + the key and the website
    # Count buckets only: never a conversion, never an index.
    assert {call[1:3] for call in recorded[many].asked if call[0] == "Query"} == {(None, "COUNT")}
    assert all(key.startswith("COUNT") for call in recorded[many].asked if call[0] == "BatchGetItem" for key in call[1])
    calls = ", ".join(f"{n} {name}" for name, n in sorted(recorded[many].calls.items()))
    FIGURES.append(
        f"statistics, 30 days by day in {timezone}: {calls}; {recorded[many].buckets_asked} buckets asked, "
        f"{recorded[few].returned} / {recorded[many].returned} items returned with 1 / {len(rows[many])} conversions"
    )
