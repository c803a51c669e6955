"""Logs, EMF metrics and tracing as they leave the handlers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace

from conftest import ROOT, api_event, invoke, services_for, settle, with_conversions
from conversions_core.observability import logger
from functions.create_conversion import app as create_app
from functions.delete_conversion import app as delete_app
from functions.list_conversions import app as list_app
from functions.update_conversion import app as update_app

STREAM_METRICS = {"StreamRecordsCounted", "StreamRecordsRepeated", "StreamBatchesFailed"}


def emf_metrics(stdout: str, stream: bool = False) -> list[dict]:
    """The CloudWatch EMF documents printed during a request: the API's, or (stream=True) the
    counting function's, which runs after each request in the tests (see conftest.invoke)."""
    documents = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            names = {m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
            if bool(names & STREAM_METRICS) == stream:
                documents.append(document)
    return documents


def counted(stdout: str, stream: bool = False) -> dict[str, float]:
    totals: dict[str, float] = {}
    for document in emf_metrics(stdout, stream):
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "GoalConversions"
        for metric in directive["Metrics"]:
            value = document[metric["Name"]]
            totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(value if isinstance(value, list) else [value])
    return totals


def test_create_update_delete_each_emit_one_business_metric_under_the_namespace(tenant, capsys):
    created = invoke(create_app, api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id}))
    conversion_id = created.json["data"]["id"]
    assert counted(capsys.readouterr().out) == {"ConversionsCreated": 1}

    form = {"goal_id": tenant.second_goal_id}
    invoke(update_app, api_event("update_conversion", headers=tenant.auth, conversion_id=conversion_id, form=form))
    assert counted(capsys.readouterr().out) == {"ConversionsUpdated": 1}

    deleted = invoke(delete_app, api_event("delete_conversion", headers=tenant.auth, conversion_id=conversion_id))
    assert deleted.status == 204
    assert counted(capsys.readouterr().out) == {"ConversionsDeleted": 1}


def test_the_counting_function_counts_the_records_it_applies(tenant, capsys):
    settle()
    capsys.readouterr()
    invoke(create_app, api_event("create_conversion", headers=tenant.auth, form={"goal_id": tenant.goal_id}))
    assert counted(capsys.readouterr().out, stream=True) == {"StreamRecordsCounted": 1, "StreamRecordsRepeated": 0}


def test_an_idempotent_replay_is_not_counted_as_a_second_creation(tenant, capsys):
    headers = {**tenant.auth, "Idempotency-Key": f"replay-{tenant.user_id}"}
    first = invoke(create_app, api_event("create_conversion", headers=headers, form={"goal_id": tenant.goal_id}))
    again = invoke(create_app, api_event("create_conversion", headers=headers, form={"goal_id": tenant.goal_id}))
    assert first.json == again.json
    assert counted(capsys.readouterr().out) == {"ConversionsCreated": 1}


def test_validation_errors_and_rate_limited_requests_are_counted(make_tenant, capsys):
    tenant = make_tenant(rate_limit=1)
    bad = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={"results_per_page": 7}))
    assert bad.status == 400
    assert counted(capsys.readouterr().out) == {"ValidationErrors": 1}
    limited = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={}))
    assert limited.status == 429
    assert counted(capsys.readouterr().out) == {"RateLimitedRequests": 1}


def test_a_plain_read_emits_no_metric_document(tenant, capsys):
    listed = invoke(list_app, api_event("list_conversions", headers=tenant.auth, query={}))
    assert listed.status == 200
    assert emf_metrics(capsys.readouterr().out) == []


def test_logs_are_json_with_the_request_id_as_correlation_id_and_no_api_key(tenant, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    broken = with_conversions(list_app, SimpleNamespace(list=explode))
    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    event = api_event("list_conversions", headers=tenant.auth, query={})
    with services_for(list_app, broken):
        result = invoke(list_app, event)
    assert result.status == 500
    output = stream.getvalue()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' not in line]
    (record,) = [r for r in records if r.get("message") == "Unhandled error"]
    assert record["level"] == "ERROR"
    assert record["correlation_id"] == event["requestContext"]["requestId"]
    assert record["service"] == "goals-conversions"
    assert tenant.api_key not in output
    assert "Bearer" not in output
    assert "boom" not in result.text


def test_tracer_is_not_built_outside_lambda_so_nothing_imports_the_xray_sdk():
    code = (
        "import sys, functions.list_conversions.app as app\n"
        "from conversions_core import observability\n"
        "print(observability.tracer is None, 'aws_xray_sdk' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LAMBDA_TASK_ROOT",)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "layers" / "conversions_core")])
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_in_lambda_the_tracer_traces_each_request_and_its_dynamodb_calls(tenant, tables, tmp_path):
    """With Lambda's environment, the X-Ray SDK sends subsegments to the daemon address: catch them."""
    code = f"""
import json, socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(1)
import os
os.environ["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:%d" % sock.getsockname()[1]
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "layers" / "conversions_core")!r}]
import functions.get_conversion.app as app
from conversions_core import observability
assert observability.tracer is not None
event = json.loads(open({str(ROOT / "events" / "get_conversion.json")!r}).read())
event["headers"] = {{"authorization": "Bearer {tenant.api_key}", "host": "example.test"}}
event["pathParameters"] = {{"conversion_id": "999999999"}}
event["rawPath"] = "/api/goals-conversions/999999999"

class LambdaContext:
    function_name = "GetConversionFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:GetConversionFunction"
    aws_request_id = "trace-test"

response = app.lambda_handler(event, LambdaContext())
names = []
try:
    while True:
        data = sock.recv(65536).decode()
        names.append(json.loads(data.split("\\n", 1)[1])["name"])
except socket.timeout:
    pass
print(json.dumps({{"status": response["statusCode"], "names": names}}))
"""
    env = {**os.environ, **tables}
    env.update(
        LAMBDA_TASK_ROOT=str(tmp_path),
        POWERTOOLS_TRACE_DISABLED="false",
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        AWS_LAMBDA_FUNCTION_NAME="GetConversionFunction",
        POWERTOOLS_METRICS_DISABLED="true",
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 404
    assert "## GET /api/goals-conversions/{conversion_id}" in result["names"]
    assert "dynamodb" in result["names"]  # botocore patched: each DynamoDB call is a subsegment
