"""Browsers (CORS): the origins of a deploy parameter (none by default) on the HTTP API, and the same
list as `serve --cors-origin`; preflights and requests from an allowed and a disallowed origin."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, TEMPLATE, local_server
from goals_conversions_local.cors import Cors, origins_option

ALLOWED, OTHER = "https://app.example", "https://elsewhere.example"


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.startswith("access-control-")}


def listed(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",")}


@pytest.fixture(scope="module")
def browser_api(tables):
    with local_server(tables, cors_origins=origins_option([f"{ALLOWED},http://localhost:5173"])) as (url, _):
        yield url


def preflight(url: str, origin: str) -> tuple[int, dict[str, str]]:
    return call(
        f"{url}/api/goals-conversions",
        "OPTIONS",
        {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
        },
    )


def test_a_preflight_from_an_allowed_origin_allows_the_apis_methods_and_headers(browser_api):
    status, headers = preflight(browser_api, ALLOWED)
    assert status == 204
    assert headers["access-control-allow-origin"] == ALLOWED and headers["vary"] == "Origin"
    assert listed(headers["access-control-allow-methods"]) >= {"get", "post", "delete"}
    assert listed(headers["access-control-allow-headers"]) >= {"authorization", "content-type", "idempotency-key"}
    assert headers["access-control-max-age"] == "600"


def test_a_preflight_from_another_origin_gets_no_cors_headers(browser_api):
    status, headers = preflight(browser_api, OTHER)
    assert status == 204 and cors_headers(headers) == {}


def test_requests_from_an_allowed_origin_may_read_the_answer_and_its_rate_limit(browser_api, make_tenant):
    limited = make_tenant(rate_limit=50)
    status, headers = call(f"{browser_api}/api/goals-conversions", headers={**limited.auth, "Origin": ALLOWED})
    assert status == 200 and headers["x-ratelimit-remaining"] == "49"
    assert headers["access-control-allow-origin"] == ALLOWED
    exposed = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"}
    assert listed(headers["access-control-expose-headers"]) >= exposed
    status, headers = call(f"{browser_api}/api/goals-conversions", headers={"Origin": ALLOWED})  # errors too
    assert status == 401 and headers["access-control-allow-origin"] == ALLOWED


def test_requests_from_another_origin_get_no_cors_headers(browser_api, tenant):
    status, headers = call(f"{browser_api}/api/goals-conversions", headers={**tenant.auth, "Origin": OTHER})
    assert status == 200 and cors_headers(headers) == {}
    status, headers = call(f"{browser_api}/api/goals-conversions", headers=tenant.auth)  # not a browser
    assert status == 200 and cors_headers(headers) == {}


def test_without_origins_the_local_api_answers_no_cors(local_api, tenant):
    status, headers = preflight(local_api, ALLOWED)
    assert status == 405 and cors_headers(headers) == {}  # no OPTIONS route, as deployed with none
    status, headers = call(f"{local_api}/api/goals-conversions", headers={**tenant.auth, "Origin": ALLOWED})
    assert status == 200 and cors_headers(headers) == {}


def test_any_origin_with_a_star():
    cors = Cors.from_template(TEMPLATE, ("*",))
    assert cors.allowed(OTHER) == "*" and cors.allowed(None) is None
    assert Cors.from_template(TEMPLATE, ()) is None


def test_origins_are_given_one_by_one_or_as_a_comma_list():
    assert origins_option([f"{ALLOWED}, http://localhost:5173", OTHER]) == (ALLOWED, "http://localhost:5173", OTHER)
    assert origins_option(None) == ()


def test_the_template_configures_cors_from_a_parameter_with_no_origin_by_default():
    parameter = TEMPLATE.parameters["CorsAllowedOrigins"]
    assert parameter["Default"] == ""
    api = TEMPLATE.resources["HttpApi"]["Properties"]["CorsConfiguration"]["Fn::If"]
    assert api[0] == "HasCorsOrigins" and api[2] == {"Ref": "AWS::NoValue"}
    assert api[1]["AllowOrigins"] == {"Fn::Split": [",", {"Ref": "CorsAllowedOrigins"}]}
    config = TEMPLATE.cors_configuration()
    assert {h.lower() for h in config["AllowHeaders"]} >= {"authorization", "content-type", "idempotency-key"}
    exposed = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"}
    assert {h.lower() for h in config["ExposeHeaders"]} >= exposed
    assert "AllowCredentials" not in config  # the key is a header, not a cookie


@pytest.mark.slow
def test_serve_takes_the_origins_as_an_option():
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}
    command = [sys.executable, "-m", "goals_conversions_local.cli", "serve", "--port", "0", "--cors-origin", ALLOWED]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("Listening on http://127.0.0.1:")
        base = line.removeprefix("Listening on ")
        status, headers = preflight(base, ALLOWED)
        assert status == 204 and headers["access-control-allow-origin"] == ALLOWED
        status, headers = preflight(base, OTHER)
        assert status == 204 and cors_headers(headers) == {}
    finally:
        process.terminate()
        process.wait(timeout=10)
