"""Pagination links (conversions_core.links): pure functions, no database."""

import pytest

from conversions_core.links import PageLinks, base_url, valid_host

pytestmark = pytest.mark.no_database


@pytest.mark.parametrize(
    "host",
    ["api.example.com", "localhost", "127.0.0.1", "127.0.0.1:3000", "a-b.c:65535", "[::1]", "[2001:db8::1]:8443"],
)
def test_valid_hosts(host):
    assert valid_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "",
        None,
        "127.0.0.1@evil.example",
        "evil.example/x",
        "good.example:99999",
        "good.example:",
        "-bad.example",
        "ex ample.com",
        "javascript:alert(1)",
        "a" * 300,
        "host\r\nX: y",
        "[::1",
    ],
)
def test_invalid_hosts(host):
    assert not valid_host(host)


def test_public_base_url_wins_over_the_request():
    assert base_url("https://api.example.com/v1/", "http", "other.example", "own.example") == (
        "https://api.example.com/v1"
    )


@pytest.mark.parametrize(
    "proto, host, expected",
    [
        ("http", "api.example.com:8080", "http://api.example.com:8080"),
        ("HTTPS", "api.example.com", "https://api.example.com"),
        ("https, http", "api.example.com", "https://api.example.com"),
        ("javascript", "api.example.com", "https://api.example.com"),
        (None, "127.0.0.1@evil.example", "https://own.example"),
        ("http", None, "http://own.example"),
    ],
)
def test_scheme_and_host_are_taken_only_when_valid(proto, host, expected):
    assert base_url(None, proto, host, "own.example") == expected


def test_with_no_valid_host_at_all_the_links_point_at_localhost():
    assert base_url(None, "https", "bad host", "also bad") == "https://localhost"


def test_page_links_in_the_middle_carry_the_kept_parameters():
    links = PageLinks("https://x/api/goals-conversions", {"goal_id": "5", "order_type": "ASC"}, 2, 10, 35).as_dict()
    assert links == {
        "first": "https://x/api/goals-conversions?goal_id=5&order_type=ASC&page=1",
        "last": "https://x/api/goals-conversions?goal_id=5&order_type=ASC&page=4",
        "next": "https://x/api/goals-conversions?goal_id=5&order_type=ASC&page=3",
        "prev": "https://x/api/goals-conversions?goal_id=5&order_type=ASC&page=1",
        "self": "https://x/api/goals-conversions?goal_id=5&order_type=ASC&page=2",
    }


def test_an_empty_list_has_no_last_and_no_next():
    links = PageLinks("https://x/a", {}, 1, 25, 0)
    assert links.total_pages == 0
    assert links.as_dict() == {
        "first": "https://x/a?page=1",
        "last": None,
        "next": None,
        "prev": None,
        "self": "https://x/a?page=1",
    }


def test_a_page_past_the_last_links_back_and_not_forward():
    links = PageLinks("https://x/a", {}, 10**40, 25, 30).as_dict()
    assert links["next"] is None and links["last"] == "https://x/a?page=2"
    assert links["self"] == f"https://x/a?page={10**40}"


def test_values_are_percent_encoded():
    links = PageLinks("https://x/a", {"datetime_start": "2026-01-01 00:00:00"}, 1, 25, 1).as_dict()
    assert links["self"] == "https://x/a?datetime_start=2026-01-01%2000%3A00%3A00&page=1"
