"""What a conversion was worth: the contract's Value section, through the handlers, in every body
encoding; sums per currency checked against an oracle after every kind of change."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from test_create import multipart

from conftest import ISSUED_KEYS, api_event, goal_event, import_id, invoke, new_id, settle
from conversions_core import currencies
from functions.conversion_statistics import app as statistics_app
from functions.create_conversion import app as create_app
from functions.create_goal import app as create_goal_app
from functions.delete_conversion import app as delete_app
from functions.delete_goal import app as delete_goal_app
from functions.get_conversion import app as get_app
from functions.get_goal import app as get_goal_app
from functions.list_conversions import app as list_app
from functions.list_goals import app as list_goals_app
from functions.update_conversion import app as update_app
from functions.update_goal import app as update_goal_app

ENCODINGS = ["multipart", "urlencoded", "json"]

# (value as sent, currency, the value returned) for a 201; (value, currency, parameter named) for a 400.
ACCEPTED = [
    ("19.9", "EUR", "19.90"),
    ("19", "EUR", "19.00"),
    ("19.", "EUR", "19.00"),
    ("0", "EUR", "0.00"),
    ("0.00", "USD", "0.00"),
    ("007.50", "EUR", "7.50"),
    ("999999999999.99", "EUR", "999999999999.99"),
    ("1200", "JPY", "1200"),
    ("0", "JPY", "0"),
    ("1.250", "KWD", "1.250"),
    ("1.2", "BHD", "1.200"),
    ("0.0001", "CLF", "0.0001"),
    ("12.5", "UYW", "12.5000"),
]
REFUSED = [
    ("1200.5", "JPY", "value"),
    ("1200.0", "JPY", "value"),
    ("19.999", "EUR", "value"),
    ("1.2500", "KWD", "value"),
    ("0.00001", "CLF", "value"),
    ("1000000000000", "EUR", "value"),
    ("-1", "EUR", "value"),
    ("+1", "EUR", "value"),
    (" 1", "EUR", "value"),
    ("1 ", "EUR", "value"),
    ("1,50", "EUR", "value"),
    ("1_0", "EUR", "value"),
    ("1e2", "EUR", "value"),
    (".5", "EUR", "value"),
    ("1.2.3", "EUR", "value"),
    ("0x10", "EUR", "value"),
    ("NaN", "EUR", "value"),
    ("Infinity", "EUR", "value"),
    ("١٢", "EUR", "value"),
    ("12", "eur", "currency"),
    ("12", "EURO", "currency"),
    ("12", "XAU", "currency"),
    ("12", "XXX", "currency"),
    ("12", "ABC", "currency"),
    ("12", "€", "currency"),
]


def create(tenant, fields: dict[str, Any], encoding: str = "json"):
    if encoding == "multipart":
        body, content_type = multipart(fields)
        event = api_event("create_conversion", headers=tenant.auth, raw_body=body, content_type=content_type)
    elif encoding == "urlencoded":
        event = api_event("create_conversion", headers=tenant.auth, form=fields)
    else:
        event = api_event("create_conversion", headers=tenant.auth, json_body=fields)
    return invoke(create_app, event)


def create_raw_json(tenant, text: str):
    return invoke(
        create_app, api_event("create_conversion", headers=tenant.auth, raw_body=text, content_type="application/json")
    )


def update(tenant, conversion_id: int, fields: dict[str, Any], encoding: str = "json"):
    if encoding == "urlencoded":
        event = api_event("update_conversion", headers=tenant.auth, conversion_id=conversion_id, form=fields)
    else:
        event = api_event("update_conversion", headers=tenant.auth, conversion_id=conversion_id, json_body=fields)
    return invoke(update_app, event)


def refused_naming(result, parameter: str) -> bool:
    return result.status == 400 and [e["source"]["parameter"] for e in result.json["errors"]] == [parameter]


def worth(result) -> tuple[Any, Any]:
    return result.json["data"]["value"], result.json["data"]["currency"]


def goal_with_default(tenant, value: str | None, currency: str | None) -> int:
    fields = {"website_id": tenant.website_id, "type": "custom", "name": "Order"}
    fields.update({k: v for k, v in (("value", value), ("currency", currency)) if v is not None})
    created = invoke(create_goal_app, api_event("create_goal", headers=tenant.auth, json_body=fields))
    assert created.status == 201, created
    return created.json["data"]["id"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_digit_count_is_accepted_and_written_with_the_currency_digits(tenant, encoding):
    for value, currency, written in ACCEPTED:
        result = create(tenant, {"goal_id": tenant.goal_id, "value": value, "currency": currency}, encoding)
        assert result.status == 201, (value, currency, result)
        assert worth(result) == (written, currency)
        fetched = invoke(
            get_app, api_event("get_conversion", headers=tenant.auth, conversion_id=result.json["data"]["id"])
        )
        assert worth(fetched) == (written, currency)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_invalid_value_or_currency_is_a_400_naming_it_and_writes_nothing(tenant, encoding):
    for value, currency, parameter in REFUSED:
        result = create(tenant, {"goal_id": tenant.goal_id, "value": value, "currency": currency}, encoding)
        assert refused_naming(result, parameter), (value, currency, result)
    listed = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={}))
    assert listed.json["data"] == []


def test_json_numbers_are_read_as_written_never_through_a_float(tenant):
    cases = {
        '{"goal_id": %d, "value": 19.9, "currency": "EUR"}': ("19.90", "EUR"),
        '{"goal_id": %d, "value": 0.1, "currency": "EUR"}': ("0.10", "EUR"),
        '{"goal_id": %d, "value": 999999999999.99, "currency": "EUR"}': ("999999999999.99", "EUR"),
        '{"goal_id": %d, "value": 1200, "currency": "JPY"}': ("1200", "JPY"),
        '{"goal_id": %d, "value": null}': (None, None),
    }
    for text, expected in cases.items():
        result = create_raw_json(tenant, text % tenant.goal_id)
        assert result.status == 201 and worth(result) == expected, (text, result)
    for number in ("1e2", "1.5E1", "-1", "-0.0", "true", "[1]", '{"v": 1}', "19.999", "1e400"):
        text = '{"goal_id": GOAL, "value": NUMBER, "currency": "EUR"}'
        result = create_raw_json(tenant, text.replace("GOAL", str(tenant.goal_id)).replace("NUMBER", number))
        assert refused_naming(result, "value"), (number, result)
    # A number with a point is a value's only: any other field still refuses it by name.
    assert refused_naming(create_raw_json(tenant, '{"goal_id": 1.5}'), "goal_id")
    currency_number = '{"goal_id": GOAL, "currency": 1.5}'.replace("GOAL", str(tenant.goal_id))
    assert refused_naming(create_raw_json(tenant, currency_number), "currency")


def test_a_create_takes_the_goals_default_or_its_currency(tenant):
    goal = goal_with_default(tenant, "5", "EUR")
    assert worth(create(tenant, {"goal_id": goal})) == ("5.00", "EUR")
    assert worth(create(tenant, {"goal_id": goal, "value": "7.5"})) == ("7.50", "EUR")
    assert worth(create(tenant, {"goal_id": goal, "value": "7", "currency": "JPY"})) == ("7", "JPY")
    assert refused_naming(create(tenant, {"goal_id": goal, "currency": "USD"}), "value")
    assert refused_naming(create(tenant, {"goal_id": goal, "value": "7.555"}), "value")  # EUR's digits
    # A goal without a default: no value, and a value alone has no currency to take.
    assert worth(create(tenant, {"goal_id": tenant.goal_id})) == (None, None)
    assert refused_naming(create(tenant, {"goal_id": tenant.goal_id, "value": "7"}), "currency")
    assert refused_naming(create(tenant, {"goal_id": tenant.goal_id, "currency": "EUR"}), "value")


def test_a_goals_default_follows_the_value_rules_and_changes_no_recorded_conversion(tenant):
    goal = goal_with_default(tenant, "19.9", "EUR")
    fetched_goal = invoke(get_goal_app, goal_event("get_goal", tenant, goal)).json["data"]
    assert (fetched_goal["value"], fetched_goal["currency"]) == ("19.90", "EUR")
    listed_goals = invoke(list_goals_app, api_event("list_goals", headers=tenant.auth, query={})).json["data"]
    assert [(g["value"], g["currency"]) for g in listed_goals if g["id"] == goal] == [("19.90", "EUR")]
    recorded = create(tenant, {"goal_id": goal}).json["data"]
    for fields, parameter in (
        ({"value": "5"}, "currency"),
        ({"currency": "EUR"}, "value"),
        ({"value": "1.234", "currency": "EUR"}, "value"),
    ):
        body = {"website_id": tenant.website_id, "type": "custom", "name": "Bad", **fields}
        refused = invoke(create_goal_app, api_event("create_goal", headers=tenant.auth, json_body=body))
        assert refused_naming(refused, parameter), (fields, refused)
    changed = invoke(
        update_goal_app, goal_event("update_goal", tenant, goal, json_body={"currency": "JPY", "value": "3000"})
    )
    assert changed.status == 200 and (changed.json["data"]["value"], changed.json["data"]["currency"]) == (
        "3000",
        "JPY",
    )
    too_fine = invoke(
        update_goal_app, goal_event("update_goal", tenant, goal, json_body={"currency": "EUR", "value": "0.001"})
    )
    assert refused_naming(too_fine, "value")
    cleared = invoke(update_goal_app, goal_event("update_goal", tenant, goal, form={"value": ""}))
    assert (cleared.json["data"]["value"], cleared.json["data"]["currency"]) == (None, None)
    fetched = invoke(get_app, api_event("get_conversion", headers=tenant.auth, conversion_id=recorded["id"]))
    assert worth(fetched) == ("19.90", "EUR")


@pytest.mark.parametrize("encoding", ["urlencoded", "json"])
def test_an_update_sets_changes_or_clears_the_value(tenant, encoding):
    conversion = create(tenant, {"goal_id": tenant.goal_id}).json["data"]["id"]
    assert refused_naming(update(tenant, conversion, {"currency": "EUR"}, encoding), "value")  # nothing to price
    assert refused_naming(update(tenant, conversion, {"value": "3"}, encoding), "currency")  # no goal currency
    assert worth(update(tenant, conversion, {"value": "19", "currency": "EUR"}, encoding)) == ("19.00", "EUR")
    assert worth(update(tenant, conversion, {"value": "21.5"}, encoding)) == ("21.50", "EUR")
    assert refused_naming(update(tenant, conversion, {"currency": "JPY"}, encoding), "currency")  # 21.50 has no yen
    assert worth(update(tenant, conversion, {"value": "21"}, encoding)) == ("21.00", "EUR")
    assert worth(update(tenant, conversion, {"currency": "JPY"}, encoding)) == ("21", "JPY")
    assert worth(update(tenant, conversion, {"currency": "KWD"}, encoding)) == ("21.000", "KWD")
    assert refused_naming(update(tenant, conversion, {"value": "1.5", "currency": "JPY"}, encoding), "value")
    clear_currency = {"currency": ""} if encoding == "urlencoded" else {"currency": None}
    assert refused_naming(update(tenant, conversion, clear_currency, encoding), "currency")
    clear = {"value": ""} if encoding == "urlencoded" else {"value": None}
    assert worth(update(tenant, conversion, clear, encoding)) == (None, None)
    assert worth(update(tenant, conversion, {"visitor_id": tenant.visitor_id}, encoding)) == (None, None)


def test_moving_a_conversion_to_another_goal_keeps_its_value(tenant):
    goal = goal_with_default(tenant, "1", "USD")
    conversion = create(tenant, {"goal_id": tenant.goal_id, "value": "2.50", "currency": "EUR"}).json["data"]["id"]
    assert worth(update(tenant, conversion, {"goal_id": goal})) == ("2.50", "EUR")


def test_the_currency_table_is_iso_4217_list_one_as_published():
    """layers/.../currencies.py is what scripts/currencies.py generates from the pinned package."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "currencies.py"
    spec = importlib.util.spec_from_file_location("generate_currencies", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert Path(currencies.__file__).read_text() == module.source(), "run scripts/currencies.py"
    assert {currencies.MINOR_UNITS[c] for c in ("JPY", "EUR", "KWD", "CLF")} == {0, 2, 3, 4}


# -- sums against an oracle --------------------------------------------------------------------------


def statistics(tenant, **query):
    query = {"datetime_start": "2026-05-01 00:00:00", "datetime_end": "2026-05-03 23:59:59", **query}
    result = invoke(statistics_app, api_event("conversion_statistics", headers=tenant.auth, query=query))
    assert result.status == 200, result
    return result.json


def every_conversion(tenant) -> list[dict[str, Any]]:
    query = {"results_per_page": 1000, "order_type": "ASC"}
    rows, page = [], 1
    while True:
        listed = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={**query, "page": page}))
        rows += listed.json["data"]
        if not listed.json["links"]["next"]:
            return rows
        page += 1


DIGITS = {"EUR": 2, "JPY": 0, "KWD": 3, "USD": 2}


def summed(rows: list[dict[str, Any]]) -> dict[str, str]:
    sums: dict[str, Decimal] = {}
    for row in rows:
        if row["value"] is not None:
            sums[row["currency"]] = sums.get(row["currency"], Decimal(0)) + Decimal(row["value"])
    return {currency: f"{amount:.{DIGITS[currency]}f}" for currency, amount in sorted(sums.items())}


def oracle_days(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    days = ["2026-05-01", "2026-05-02", "2026-05-03"]
    return [
        {
            "datetime": f"{day} 00:00:00",
            "conversions": sum(row["datetime"].startswith(day) for row in rows),
            "values": summed([row for row in rows if row["datetime"].startswith(day)]),
        }
        for day in days
    ]


def oracle_groups(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row[f"{by}_id"]].append(row)
    result = []
    for group_id, members in groups.items():
        row = (
            {"goal_id": group_id, "website_id": members[0]["website_id"]} if by == "goal" else {"website_id": group_id}
        )
        result.append({**row, "conversions": len(members), "values": summed(members)})
    return sorted(result, key=lambda r: (-r["conversions"], r[f"{by}_id"]))


def assert_statistics_match_the_conversions(tenant) -> None:
    settle()
    rows = every_conversion(tenant)
    answer = statistics(tenant)
    assert answer["data"] == oracle_days(rows)
    assert answer["meta"]["values"] == summed(rows) and answer["meta"]["total"] == len(rows)
    for by in ("goal", "website"):
        grouped = statistics(tenant, group_by=by)
        assert grouped["data"] == oracle_groups(rows, by), by
        assert grouped["meta"]["values"] == summed(rows)
    website_rows = [row for row in rows if row["website_id"] == tenant.website_id]
    by_goal_on_website = statistics(tenant, group_by="goal", website_id=tenant.website_id)
    assert by_goal_on_website["data"] == oracle_groups(website_rows, "goal")


def test_sums_stay_exact_through_creates_updates_deletes_and_goal_moves(tenant):
    # A thousand 0.10 (a float sum would give 99.99999999999859), and mixed currencies at part-minutes.
    rows = [
        {
            "goal_id": tenant.goal_id,
            "datetime": f"2026-05-01 10:{n // 60 % 60:02d}:{n % 60:02d}",
            "value": "0.10",
            "currency": "EUR",
        }
        for n in range(1000)
    ]
    rows += [
        {"goal_id": tenant.second_goal_id, "datetime": "2026-05-02 08:00:00", "value": "1200", "currency": "JPY"}
    ] * 3
    rows += [
        {"goal_id": tenant.lightweight_goal_id, "datetime": "2026-05-02 09:00:00", "value": "1.250", "currency": "KWD"}
    ] * 2
    rows += [
        {"goal_id": tenant.lightweight_goal_id, "datetime": "2026-05-03 09:00:00", "value": "0.00", "currency": "USD"}
    ]
    rows += [{"goal_id": tenant.second_goal_id, "datetime": "2026-05-03 23:59:59"}]
    ids = tenant.import_conversions(rows)
    assert statistics(tenant)["meta"]["values"] == {"EUR": "100.00", "JPY": "3600", "KWD": "2.500", "USD": "0.00"}
    assert_statistics_match_the_conversions(tenant)

    # Updates that change the value, the currency, the goal (and website), and clear a value.
    assert update(tenant, ids[0], {"value": "0.15"}).status == 200
    assert update(tenant, ids[1], {"value": "3", "currency": "JPY"}).status == 200
    assert update(tenant, ids[2], {"goal_id": tenant.lightweight_goal_id}).status == 200
    assert update(tenant, ids[1000], {"value": ""}).status == 200
    assert update(tenant, ids[-1], {"value": "9.99", "currency": "USD"}).status == 200
    for conversion_id in ids[10:20]:
        assert (
            invoke(delete_app, api_event("delete_conversion", headers=tenant.auth, conversion_id=conversion_id)).status
            == 204
        )
    assert_statistics_match_the_conversions(tenant)

    # The second goal moves to the other website; then the lightweight goal is deleted.
    moved = invoke(
        update_goal_app,
        goal_event(
            "update_goal", tenant, tenant.second_goal_id, json_body={"website_id": tenant.lightweight_website_id}
        ),
    )
    assert moved.status == 200, moved
    settle()
    assert_statistics_match_the_conversions(tenant)
    assert invoke(delete_goal_app, goal_event("delete_goal", tenant, tenant.lightweight_goal_id)).status == 204
    settle()
    assert_statistics_match_the_conversions(tenant)
    assert [row["goal_id"] for row in statistics(tenant, group_by="goal")["data"]] == [
        tenant.goal_id,
        tenant.second_goal_id,
    ]


def test_a_breakdown_names_only_the_callers_existing_goals_and_websites(tenant, other_tenant):
    tenant.import_conversions(
        [{"goal_id": tenant.goal_id, "datetime": "2026-05-02 10:00:00", "value": "1", "currency": "EUR"}]
    )
    other_tenant.import_conversions([{"goal_id": other_tenant.goal_id, "datetime": "2026-05-02 10:00:00"}] * 3)
    assert statistics(tenant, group_by="goal")["data"] == [
        {"goal_id": tenant.goal_id, "website_id": tenant.website_id, "conversions": 1, "values": {"EUR": "1.00"}}
    ]
    assert statistics(tenant, group_by="website")["data"] == [
        {"website_id": tenant.website_id, "conversions": 1, "values": {"EUR": "1.00"}}
    ]
    for query in (
        {"goal_id": other_tenant.goal_id},
        {"website_id": other_tenant.website_id},
        {"goal_id": tenant.second_goal_id},
    ):
        for by in ("goal", "website"):
            answer = statistics(tenant, group_by=by, **query)
            assert answer["data"] == [] and answer["meta"]["total"] == 0 and answer["meta"]["values"] == {}
    only_goal = statistics(tenant, group_by="website", goal_id=tenant.goal_id)["data"]
    assert only_goal == [{"website_id": tenant.website_id, "conversions": 1, "values": {"EUR": "1.00"}}]
    # The interval is ignored: an hourly breakdown of years is one row, not a 400.
    years = statistics(
        tenant,
        group_by="goal",
        interval="hour",
        datetime_start="2020-01-01 00:00:00",
        datetime_end="2026-12-01 00:00:00",
    )
    assert [row["conversions"] for row in years["data"]] == [1]
    refused = invoke(
        statistics_app,
        api_event(
            "conversion_statistics",
            headers=tenant.auth,
            query={
                "datetime_start": "2026-05-01 00:00:00",
                "datetime_end": "2026-05-02 00:00:00",
                "group_by": "visitor",
            },
        ),
    )
    assert refused_naming(refused, "group_by")


def test_a_seed_carries_values_by_the_same_rule_and_a_conversion_without_one_takes_none(repository):
    from conversions_core.seed import SeedError, load_seed

    user, website, goal = new_id(), new_id(), new_id()
    key = f"seed-value-key-{user}"
    ISSUED_KEYS.append(key)
    base = {
        "users": [{"user_id": user, "api_key": key, "status": "active"}],
        "websites": [{"website_id": website, "user_id": user}],
        "goals": [{"goal_id": goal, "website_id": website, "name": "Buy", "value": "9.9", "currency": "EUR"}],
    }
    first, second = import_id("2026-05-01 10:00:00"), import_id("2026-05-01 10:00:01")
    for conversion, problem in (
        ({"value": "1.999", "currency": "EUR"}, "value may have at most 2 digits after the point for EUR"),
        ({"value": "5"}, "currency is required with value"),
        ({"currency": "EUR"}, "value is required with currency"),
        ({"value": "5", "currency": "eur"}, "currency"),
    ):
        row = {"id": first, "goal_id": goal, "datetime": "2026-05-01 10:00:00", **conversion}
        with pytest.raises(SeedError) as refused:
            load_seed(repository, {**base, "conversions": [row]})
        assert any(problem in line for line in refused.value.problems), refused.value.problems
    rows = [
        {"id": first, "goal_id": goal, "datetime": "2026-05-01 10:00:00", "value": "19.9", "currency": "EUR"},
        {"id": second, "goal_id": goal, "datetime": "2026-05-01 10:00:01"},
    ]
    load_seed(repository, {**base, "conversions": rows})
    settle()
    headers = {"Authorization": f"Bearer {key}"}
    got = [invoke(get_app, api_event("get_conversion", headers=headers, conversion_id=n)) for n in (first, second)]
    assert [worth(result) for result in got] == [("19.90", "EUR"), (None, None)]
