"""`goals-conversions invoke` reads events as API Gateway delivers them and as people write them
(header names in any case, a query in `rawQueryString` alone), and every API function refuses an
event of another payload format (a REST API's 1.0) before any work, naming format 2.0."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, api_event, invoke, load_event
from functions.list_conversions import app as list_app
from goals_conversions_local.events import as_delivered

pytestmark = pytest.mark.slow  # the CLI runs in a process of its own, with the demo seed

# A REST API's proxy event (payload format 1.0), as `sam local generate-event apigateway aws-proxy` writes one.
REST_EVENT = {
    "resource": "/api/goals-conversions",
    "path": "/api/goals-conversions",
    "httpMethod": "GET",
    "headers": {"Accept": "application/json", "Authorization": "Bearer demo-key", "Host": "abc123.example"},
    "multiValueHeaders": {"Authorization": ["Bearer demo-key"]},
    "queryStringParameters": {"goal_id": "3"},
    "multiValueQueryStringParameters": {"goal_id": ["3"]},
    "pathParameters": None,
    "stageVariables": None,
    "requestContext": {
        "resourcePath": "/api/goals-conversions",
        "httpMethod": "GET",
        "path": "/prod/api/goals-conversions",
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "stage": "prod",
    },
    "body": None,
    "isBase64Encoded": False,
}


def capitalised(event: dict) -> dict:
    """The event with its header names written as people write them: Content-Type, Authorization."""
    written = copy.deepcopy(event)
    written["headers"] = {"-".join(p.capitalize() for p in n.split("-")): v for n, v in event["headers"].items()}
    return written


def run_invoke(tmp_path, function: str, event: dict) -> tuple[dict, str]:
    path = tmp_path / f"{function}.json"
    path.write_text(json.dumps(event))
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}  # the embedded demo
    command = [sys.executable, "-m", "goals_conversions_local.cli", "invoke", function, "--event", str(path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_invoke_reads_capitalised_headers_and_a_raw_query_alone(tmp_path):
    event = capitalised(load_event("list_conversions"))
    event["rawQueryString"] = "goal_id=3&results_per_page=10"
    del event["queryStringParameters"]
    response, _ = run_invoke(tmp_path, "list_conversions", event)
    assert response["statusCode"] == 200, response
    page = json.loads(response["body"])
    assert page["meta"]["total"] == 12 and {c["goal_id"] for c in page["data"]} == {3}  # demo goal 3's
    assert page["links"]["self"].endswith("?goal_id=3&results_per_page=10&page=1")


def test_invoke_reads_a_capitalised_content_type(tmp_path):
    event = capitalised(load_event("create_conversion"))
    event["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
    event["body"], event["isBase64Encoded"] = "goal_id=1&visitor_id=1", False
    response, _ = run_invoke(tmp_path, "create_conversion", event)
    assert response["statusCode"] == 201, response
    assert json.loads(response["body"])["data"]["visitor_id"] == 1


def test_invoke_answers_a_rest_api_event_naming_payload_format_2(tmp_path):
    response, log = run_invoke(tmp_path, "list_conversions", REST_EVENT)
    assert response["statusCode"] == 501
    [error] = json.loads(response["body"])["errors"]
    assert "payload format 2.0" in error["title"] and "1.0" in error["title"]
    assert "KeyError" not in log and "Traceback" not in log


@pytest.mark.parametrize("event", [REST_EVENT, {**REST_EVENT, "version": "1.0"}], ids=["rest-api", "http-api-1.0"])
def test_another_payload_format_is_refused_before_authentication_and_the_rate_limit(make_tenant, event):
    limited = make_tenant(rate_limit=5)
    for headers in ({"Authorization": f"Bearer {limited.api_key}"}, {}):  # a valid key, then none: not a 401
        refused = invoke(list_app, {**event, "headers": headers})
        assert refused.status == 501 and "x-ratelimit-remaining" not in refused.headers
    counted = invoke(list_app, api_event("list_conversions", headers=limited.auth, query={}))
    assert counted.headers["x-ratelimit-remaining"] == "4"  # the refused events did not count


def test_events_become_what_api_gateway_delivers_and_nothing_else_changes():
    written = {
        "version": "2.0",
        "headers": {"Authorization": "Bearer a", "authorization": "Bearer b", "X-Forwarded-Proto": "https"},
        "rawQueryString": "goal_id=1&goal_id=2&page=",
    }
    delivered = as_delivered(written)
    assert delivered["headers"] == {"authorization": "Bearer a,Bearer b", "x-forwarded-proto": "https"}
    assert delivered["queryStringParameters"] == {"goal_id": "1,2", "page": ""}  # as API Gateway joins them
    assert written["headers"]["Authorization"] == "Bearer a"  # the file's event is left as it was
    parsed_only = {"version": "2.0", "headers": {}, "queryStringParameters": {"website_id": "1", "page": "2"}}
    assert as_delivered(parsed_only)["rawQueryString"] == "website_id=1&page=2"
    stream_batch = {"Records": []}
    assert as_delivered(REST_EVENT) is REST_EVENT and as_delivered(stream_batch) is stream_batch
    assert as_delivered(load_event("list_conversions")) == load_event("list_conversions")
