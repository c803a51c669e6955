"""The alarms and the dashboard in template.yaml: every function watched for errors and throttles,
the API for 5xx and latency, the counting function for lag and its failures queue for depth; the
actions go to an optional SNS topic; the dashboard shows every alarm; the operations page explains
each one."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from conftest import ROOT, TEMPLATE

pytestmark = pytest.mark.no_database

ALARMS = {name: r["Properties"] for name, r in TEMPLATE.resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def watching(namespace: str, metric: str, dimension: str, value: Any) -> list[str]:
    """The alarms on one metric (alone or inside their metric math) of the given dimension value."""
    found = []
    for name, alarm in ALARMS.items():
        metrics = [{"Namespace": alarm.get("Namespace"), "MetricName": alarm.get("MetricName"), **alarm}]
        metrics += [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m]
        for m in metrics:
            dimensions = {d["Name"]: d["Value"] for d in m.get("Dimensions", [])}
            if (m["Namespace"], m["MetricName"]) == (namespace, metric) and dimensions.get(dimension) == value:
                found.append(name)
    return found


def test_every_function_has_its_errors_and_its_throttles_alarm():
    functions = TEMPLATE.functions()
    assert len(functions) >= 12
    for spec in functions:
        for metric in ("Errors", "Throttles"):
            alarms = watching("AWS/Lambda", metric, "FunctionName", {"Ref": spec.name})
            assert len(alarms) == 1, f"{spec.name} has {len(alarms)} {metric} alarms"
            alarm = ALARMS[alarms[0]]
            assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_the_api_is_watched_for_5xx_answers_and_latency():
    assert watching("AWS/ApiGateway", "5xx", "ApiId", {"Ref": "HttpApi"}) == ["ApiServerErrorsAlarm"]
    assert watching("AWS/ApiGateway", "Latency", "ApiId", {"Ref": "HttpApi"}) == ["ApiLatencyAlarm"]
    assert ALARMS["ApiLatencyAlarm"]["Threshold"] == {"Ref": "ApiLatencyAlarmMilliseconds"}


def test_the_counting_function_is_watched_for_lag_and_its_failures_queue_for_depth():
    [stream_function] = TEMPLATE.stream_functions()
    assert watching("AWS/Lambda", "IteratorAge", "FunctionName", {"Ref": stream_function.name})
    for queue in TEMPLATE.queues():
        name = {"Fn::GetAtt": [queue, "QueueName"]}
        [alarm] = watching("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name)
        assert ALARMS[alarm]["Threshold"] == 1  # any message is counts missing


def test_alarms_notify_the_optional_topic_when_they_go_off_and_when_they_recover():
    assert TEMPLATE.parameters["AlarmTopicArn"]["Default"] == ""
    assert TEMPLATE.document["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    actions = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for name, alarm in ALARMS.items():
        assert alarm["AlarmActions"] == actions and alarm["OKActions"] == actions, name
        assert alarm["TreatMissingData"] == "notBreaching", name  # no traffic is not an incident


def test_the_dashboard_shows_every_alarm_and_every_function():
    body = TEMPLATE.resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    substituted = set(re.findall(r"\$\{([^}]+)\}", body))
    for name in substituted:
        assert name.split(".")[0] in TEMPLATE.resources or name.startswith("AWS::"), name
    widgets = json.loads(re.sub(r"\$\{([^}]+)\}", r"\1", body))["widgets"]
    [panel] = [w for w in widgets if w["type"] == "alarm"]
    assert sorted(panel["properties"]["alarms"]) == sorted(f"{name}.Arn" for name in ALARMS)
    assert {spec.name for spec in TEMPLATE.functions()} <= substituted
    assert {"HttpApi", "CountingFailuresQueue.QueueName"} <= substituted


def test_the_operations_page_says_what_each_alarm_means_and_what_to_do():
    page = (ROOT / "docs" / "operations.md").read_text()
    section = page.split("\n## Alarms", 1)[1].split("\n## ", 1)[0]
    per_function = {
        f"{spec.name.removesuffix('Function')}{metric}Alarm": f"`<Function>{metric}Alarm`"
        for spec in TEMPLATE.functions()
        for metric in ("Errors", "Throttles")
    }
    for name, alarm in ALARMS.items():
        assert "docs/operations.md#alarms" in alarm["AlarmDescription"], name
        assert per_function.get(name, f"`{name}`") in section, name
