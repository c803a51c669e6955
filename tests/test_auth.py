"""Authentication (Bearer API keys) and the per-key rate limit, on every endpoint."""

import dataclasses
import time
from contextlib import ExitStack

import pytest

from conftest import api_event, invoke, services_for, services_of
from conversions_core.auth import Gate
from conversions_core.repository.dynamo import Table
from conversions_core.repository.ratelimit import RateLimitCounter
from functions.create_conversion import app as create_app
from functions.delete_conversion import app as delete_app
from functions.get_conversion import app as get_app
from functions.list_conversions import app as list_app
from functions.update_conversion import app as update_app

ENDPOINTS = [
    (list_app, "list_conversions", {}),
    (get_app, "get_conversion", {"conversion_id": 1}),
    (create_app, "create_conversion", {"form": {"goal_id": 1}}),
    (update_app, "update_conversion", {"conversion_id": 1, "form": {"goal_id": 1}}),
    (delete_app, "delete_conversion", {"conversion_id": 1}),
]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic ZGVtbzpkZW1v", "Token demo-key", "demo-key", "Bearer", "Bearer ", "Bearer unknown-key"],
)
@pytest.mark.parametrize("handler, event, extra", ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_requests_without_a_valid_bearer_key_are_401(tenant, handler, event, extra, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    result = invoke(handler, api_event(event, headers=headers, **extra))
    assert result.status == 401
    assert result.headers["content-type"] == "application/json"
    assert result.json == {
        "errors": [{"title": "A valid API key is required: send 'Authorization: Bearer <api_key>'", "status": 401}]
    }
    assert result.headers["www-authenticate"] == "Bearer"
    assert "x-ratelimit-limit" not in result.headers


def test_a_disabled_user_is_401(make_tenant):
    disabled = make_tenant(status="disabled")
    assert invoke(list_app, api_event("list_conversions", headers=disabled.auth)).status == 401


def test_the_scheme_is_case_insensitive(tenant):
    result = invoke(list_app, api_event("list_conversions", headers={"authorization": f"bearer {tenant.api_key}"}))
    assert result.status == 200


def test_a_401_never_echoes_the_key(tenant):
    result = invoke(list_app, api_event("list_conversions", headers={"Authorization": "Bearer secret-guess-123"}))
    assert "secret-guess-123" not in result.text


@pytest.fixture
def fixed_window():
    """Counts every request in one rate-limit window, whatever the wall clock does meanwhile."""
    now = time.time()
    window_start = now - now % 60 + 30
    with ExitStack() as stack:
        for module in (list_app, get_app, create_app, update_app, delete_app):
            services = services_of(module)
            counter = RateLimitCounter(
                Table(services.client, services.settings.rate_limit_table_name), lambda: window_start
            )
            gate = Gate(services.repository.accounts, counter, services.settings.default_rate_limit_per_minute)
            stack.enter_context(services_for(module, dataclasses.replace(services, gate=gate)))
        yield window_start


def test_rate_limit_headers_count_down_then_429(make_tenant, fixed_window):
    limited = make_tenant(rate_limit=5)
    remaining = []
    for _ in range(5):
        result = invoke(list_app, api_event("list_conversions", headers=limited.auth))
        assert result.status == 200
        assert result.headers["x-ratelimit-limit"] == "5"
        remaining.append(result.headers["x-ratelimit-remaining"])
    assert remaining == ["4", "3", "2", "1", "0"]
    refused = invoke(list_app, api_event("list_conversions", headers=limited.auth))
    assert refused.status == 429
    assert refused.json["errors"][0]["status"] == 429
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == refused.headers["retry-after"] == "30"


def test_the_seconds_to_the_windows_end_round_up():
    """A client that waits Retry-After seconds is in the next window, not a fraction before it."""

    class Table:
        def update(self, key, **kwargs):
            return {"Attributes": {"requests": {"N": "61"}}}

    window_start = 1_800_000_000  # a whole minute
    assert RateLimitCounter(Table(), lambda: window_start + 12.56).hit("key") == (61, 48)
    assert RateLimitCounter(Table(), lambda: window_start + 59.9).hit("key") == (61, 1)
    assert RateLimitCounter(Table(), lambda: window_start).hit("key") == (61, 60)


def test_the_limit_counts_every_endpoint_and_error_responses(make_tenant, fixed_window):
    limited = make_tenant(rate_limit=3)
    missing = invoke(get_app, api_event("get_conversion", headers=limited.auth, conversion_id=999999999))
    assert missing.status == 404 and missing.headers["x-ratelimit-remaining"] == "2"
    bad = invoke(list_app, api_event("list_conversions", headers=limited.auth, query={"page": "0"}))
    assert bad.status == 400 and bad.headers["x-ratelimit-remaining"] == "1"
    created = invoke(
        create_app, api_event("create_conversion", headers=limited.auth, form={"goal_id": limited.goal_id})
    )
    assert created.status == 201 and created.headers["x-ratelimit-remaining"] == "0"
    refused = invoke(
        create_app, api_event("create_conversion", headers=limited.auth, form={"goal_id": limited.goal_id})
    )
    assert refused.status == 429
    listed = invoke(list_app, api_event("list_conversions", headers=limited.auth))
    assert listed.status == 429


def test_a_rate_limit_of_zero_is_unlimited_and_sends_no_headers(make_tenant):
    unlimited = make_tenant(rate_limit=0)
    for _ in range(3):
        result = invoke(list_app, api_event("list_conversions", headers=unlimited.auth))
        assert result.status == 200
        assert "x-ratelimit-limit" not in result.headers


def test_users_without_their_own_limit_get_the_default(make_tenant):
    default = make_tenant(rate_limit=None)
    result = invoke(list_app, api_event("list_conversions", headers=default.auth))
    assert result.headers["x-ratelimit-limit"] == "60"
    assert result.headers["x-ratelimit-remaining"] == "59"


def test_limits_are_per_key(make_tenant, fixed_window):
    first, second = make_tenant(rate_limit=1), make_tenant(rate_limit=1)
    assert invoke(list_app, api_event("list_conversions", headers=first.auth)).status == 200
    assert invoke(list_app, api_event("list_conversions", headers=first.auth)).status == 429
    assert invoke(list_app, api_event("list_conversions", headers=second.auth)).status == 200
