"""GET /api/goals-conversions: filters, ordering, paging, meta, links and parameter errors."""

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import api_event, invoke
from conversions_core.values import RESULTS_PER_PAGE
from functions.list_conversions import app as list_app


def list_(tenant, **query):
    return invoke(list_app, api_event("list_conversions", headers=tenant.auth, query=query))


def ids(result):
    return [c["id"] for c in result.json["data"]]


def seeded(tenant, count, start_day=1, per_day=1, goal_for=None):
    """Import `count` conversions from June 2026 on, `per_day` a day at 10:00, 11:00, ..."""
    rows = []
    for n in range(count):
        when = datetime(2026, 6, start_day, 10) + timedelta(days=n // per_day, hours=n % per_day)
        goal = goal_for(n) if goal_for else tenant.goal_id
        rows.append({"goal_id": goal, "datetime": when.strftime("%Y-%m-%d %H:%M:%S")})
    return tenant.import_conversions(rows)


def test_default_list_is_newest_first_25_per_page_with_meta(tenant):
    created = seeded(tenant, 30)
    result = list_(tenant)
    assert result.status == 200
    assert ids(result) == sorted(created, reverse=True)[:25]
    assert result.json["meta"] == {"page": 1, "results_per_page": 25, "total": 30, "total_pages": 2}


def test_conversion_fields_are_all_present(tenant):
    [conversion_id] = tenant.import_conversions(
        [{"goal_id": tenant.goal_id, "visitor_id": tenant.visitor_id, "datetime": "2026-06-01 00:00:01"}]
    )
    [item] = list_(tenant).json["data"]
    assert item == {
        "id": conversion_id,
        "goal_id": tenant.goal_id,
        "website_id": tenant.website_id,
        "user_id": tenant.user_id,
        "visitor_id": tenant.visitor_id,
        "session_id": None,
        "event_id": None,
        "datetime": "2026-06-01 00:00:01",
        "value": None,
        "currency": None,
    }


@pytest.mark.parametrize("order_by", ["conversion_id", "datetime"])
@pytest.mark.parametrize("order_type", ["ASC", "DESC"])
def test_both_orders_in_both_directions(tenant, order_by, order_type):
    created = seeded(tenant, 12, per_day=3)
    result = list_(tenant, order_by=order_by, order_type=order_type)
    assert ids(result) == sorted(created, reverse=order_type == "DESC")
    datetimes = [c["datetime"] for c in result.json["data"]]
    assert datetimes == sorted(datetimes, reverse=order_type == "DESC")


def test_ties_in_datetime_are_broken_by_id_in_the_same_direction(tenant):
    same_second = [{"goal_id": tenant.goal_id, "datetime": "2026-06-03 12:00:00"} for _ in range(4)]
    created = tenant.import_conversions(same_second)
    assert ids(list_(tenant, order_by="datetime", order_type="ASC")) == created
    assert ids(list_(tenant, order_by="datetime", order_type="DESC")) == created[::-1]


def test_goal_filter(tenant):
    created = seeded(tenant, 10, goal_for=lambda n: tenant.goal_id if n % 2 else tenant.second_goal_id)
    result = list_(tenant, goal_id=tenant.goal_id, order_type="ASC")
    assert ids(result) == created[1::2]
    assert result.json["meta"]["total"] == 5


def test_website_filter(tenant):
    on_normal = seeded(tenant, 3)
    on_lightweight = tenant.import_conversions(
        [{"goal_id": tenant.lightweight_goal_id, "datetime": "2026-06-20 00:00:00"} for _ in range(2)]
    )
    assert ids(list_(tenant, website_id=tenant.website_id, order_type="ASC")) == on_normal
    assert ids(list_(tenant, website_id=tenant.lightweight_website_id, order_type="ASC")) == on_lightweight
    assert list_(tenant).json["meta"]["total"] == 5


def test_goal_and_website_filters_combine_with_and(tenant):
    created = seeded(tenant, 4)
    both = list_(tenant, goal_id=tenant.goal_id, website_id=tenant.website_id, order_type="ASC")
    assert ids(both) == created
    mismatched = list_(tenant, goal_id=tenant.goal_id, website_id=tenant.lightweight_website_id)
    assert mismatched.status == 200
    assert mismatched.json["data"] == [] and mismatched.json["meta"]["total"] == 0


def test_another_users_ids_as_filters_give_an_empty_list(tenant, other_tenant):
    seeded(other_tenant, 3)
    seeded(tenant, 2)
    theirs = other_tenant.website_id
    queries = [
        {"goal_id": other_tenant.goal_id},
        {"website_id": theirs},  # their conversions are read, and dropped for their owner
        {"website_id": theirs, "page": 2, "results_per_page": 10},
        {"website_id": theirs, "datetime_start": "2021-01-01 00:00:30"},  # a part-minute counted on items
        {"goal_id": 987654321},
    ]
    for query in queries:
        result = list_(tenant, **query)
        assert result.status == 200
        assert result.json["data"] == []
        assert result.json["meta"]["total"] == 0 and result.json["meta"]["total_pages"] == 0
        assert result.json["links"]["last"] is None


def test_a_user_sees_only_their_own_conversions(tenant, other_tenant):
    mine = seeded(tenant, 3)
    seeded(other_tenant, 4)
    result = list_(tenant, order_type="ASC")
    assert ids(result) == mine
    assert {c["user_id"] for c in result.json["data"]} == {tenant.user_id}


@pytest.mark.parametrize(
    "start, end",
    [
        ("2026-06-03 10:00:00", "2026-06-05 10:00:00"),
        ("2026-06-03T10:00", "2026-06-05T10:00"),
        ("2026-06-03T10:00:00", "2026-06-05T10:00:00"),
    ],
)
def test_datetime_bounds_are_inclusive_in_every_accepted_format(tenant, start, end):
    created = seeded(tenant, 7)  # one a day, June 1..7 at 10:00:00
    result = list_(tenant, datetime_field="datetime", datetime_start=start, datetime_end=end, order_type="ASC")
    assert ids(result) == created[2:5]
    assert result.json["meta"]["total"] == 3


def test_datetime_field_may_be_omitted_and_bounds_used_alone(tenant):
    created = seeded(tenant, 5)
    assert ids(list_(tenant, datetime_start="2026-06-04 10:00:00", order_type="ASC")) == created[3:]
    assert ids(list_(tenant, datetime_end="2026-06-02 10:00:00", order_type="ASC")) == created[:2]


def test_bounds_inside_a_day_count_exactly(tenant):
    created = seeded(tenant, 12, per_day=4)  # June 1..3, 10:00..13:00
    result = list_(tenant, datetime_start="2026-06-01 11:30:00", datetime_end="2026-06-03 11:00:00", order_type="ASC")
    assert ids(result) == created[2:10]
    assert result.json["meta"]["total"] == 8
    same_day = list_(tenant, datetime_start="2026-06-02 10:30:00", datetime_end="2026-06-02 12:00:00")
    assert same_day.json["meta"]["total"] == 2


def test_start_after_end_is_a_400_naming_datetime_start(tenant):
    result = list_(tenant, datetime_start="2026-06-05 00:00:00", datetime_end="2026-06-04 00:00:00")
    assert result.status == 400
    assert result.json["errors"][0]["source"] == {"parameter": "datetime_start"}


@pytest.mark.parametrize("per_page", RESULTS_PER_PAGE)
def test_every_allowed_results_per_page(tenant, per_page):
    created = seeded(tenant, 12, per_day=4)
    result = list_(tenant, results_per_page=per_page)
    assert result.status == 200
    assert len(result.json["data"]) == min(per_page, 12)
    assert result.json["meta"]["results_per_page"] == per_page
    assert result.json["meta"]["total_pages"] == -(-12 // per_page)
    assert ids(result) == sorted(created, reverse=True)[:per_page]


@pytest.mark.parametrize(
    "parameter, value, words",
    [
        ("results_per_page", "7", "results_per_page must be one of 10, 25, 50, 100, 250, 500, 1000"),
        ("results_per_page", "ten", "results_per_page must be one of"),
        ("page", "0", "page must be"),
        ("page", "-1", "page must be"),
        ("page", "x", "page must be"),
        ("goal_id", "0", "goal_id must be a positive integer"),
        ("goal_id", "abc", "goal_id must be a positive integer"),
        ("website_id", "-3", "website_id must be a positive integer"),
        ("website_id", "1.5", "website_id must be a positive integer"),
        ("order_by", "name", "order_by must be one of conversion_id, datetime"),
        ("order_type", "sideways", "order_type must be ASC or DESC"),
        ("datetime_field", "created_at", "datetime_field must be datetime"),
        ("datetime_start", "yesterday", "datetime_start must be"),
        ("datetime_start", "2026-13-01 00:00:00", "datetime_start must be"),
        ("datetime_end", "2026-06-01", "datetime_end must be"),
    ],
)
def test_each_bad_parameter_is_a_400_naming_it(tenant, parameter, value, words):
    result = list_(tenant, **{parameter: value})
    assert result.status == 400
    assert result.headers["content-type"] == "application/json"
    [error] = result.json["errors"]
    assert error["status"] == 400
    assert error["source"] == {"parameter": parameter}
    assert error["title"].startswith(words)


def test_several_bad_parameters_are_listed_together(tenant):
    result = list_(tenant, page="0", order_type="up", results_per_page="3")
    assert result.status == 400
    assert {e["source"]["parameter"] for e in result.json["errors"]} == {"page", "order_type", "results_per_page"}


def test_unknown_parameters_are_ignored(tenant):
    seeded(tenant, 2)
    result = list_(tenant, colour="blue")
    assert result.status == 200 and result.json["meta"]["total"] == 2


def test_links_on_a_middle_page_carry_the_query(tenant):
    seeded(tenant, 35)
    result = list_(tenant, goal_id=tenant.goal_id, order_type="ASC", results_per_page=10, page=2)
    links = result.json["links"]
    base = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/goals-conversions"
    for name, page in {"first": 1, "last": 4, "next": 3, "prev": 1, "self": 2}.items():
        url = urlsplit(links[name])
        assert f"{url.scheme}://{url.netloc}{url.path}" == base
        assert parse_qs(url.query) == {
            "goal_id": [str(tenant.goal_id)],
            "order_type": ["ASC"],
            "results_per_page": ["10"],
            "page": [str(page)],
        }


def test_links_on_the_first_and_last_pages(tenant):
    seeded(tenant, 15)
    first = list_(tenant, results_per_page=10).json["links"]
    assert first["prev"] is None and first["next"].endswith("page=2")
    last = list_(tenant, results_per_page=10, page=2).json["links"]
    assert last["next"] is None and last["prev"].endswith("page=1") and last["last"].endswith("page=2")


def test_following_next_visits_every_conversion_exactly_once(tenant):
    created = seeded(tenant, 57, per_day=5)
    seen, query, pages = [], {"results_per_page": 10, "order_type": "DESC"}, 0
    while True:
        result = list_(tenant, **query)
        seen += ids(result)
        pages += 1
        next_link = result.json["links"]["next"]
        if next_link is None:
            break
        query = {k: v[0] for k, v in parse_qs(urlsplit(next_link).query).items()}
    assert pages == 6
    assert seen == sorted(created, reverse=True)


def test_a_page_past_the_last_is_empty_with_the_true_meta(tenant):
    seeded(tenant, 3)
    result = list_(tenant, page=9)
    assert result.status == 200
    assert result.json["data"] == []
    assert result.json["meta"] == {"page": 9, "results_per_page": 25, "total": 3, "total_pages": 1}
    assert result.json["links"]["next"] is None
    assert result.json["links"]["prev"].endswith("page=8")


def test_an_empty_list_has_no_last_page(tenant):
    result = list_(tenant)
    assert result.json["meta"] == {"page": 1, "results_per_page": 25, "total": 0, "total_pages": 0}
    assert result.json["links"]["last"] is None
    assert result.json["links"]["first"].endswith("page=1")


def test_deep_pages_across_many_days_in_both_directions(tenant):
    created = seeded(tenant, 40, per_day=3)
    for order_type, expected in (("ASC", created), ("DESC", created[::-1])):
        for page in range(1, 6):
            result = list_(tenant, order_type=order_type, results_per_page=10, page=page)
            assert ids(result) == expected[(page - 1) * 10 : page * 10]
