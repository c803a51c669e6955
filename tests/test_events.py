"""Conversion events on EventBridge: their shape against the schema committed with the docs, a
local run's events printed by `serve --events`, PutEvents in calls of 10 with the failed entries
sent again, and a batch answered from the first record whose event could not be published (at
least once), its counts and feed entries still applied once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import boto3
import jsonschema
import pytest
import requests
from tables import audit, audit_feed, own_tables

from conftest import ROOT, TEMPLATE, Tenant
from conversions_core import conversion_service
from conversions_core.auth import hash_api_key
from conversions_core.failures import FailuresQueue
from conversions_core.models import Conversion
from conversions_core.publishing import ConversionEvents
from conversions_core.repository import Repository
from conversions_core.repository.cascade import Cascade
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table
from functions.count_conversions.app import count_batch
from goals_conversions_local.embedded import deliver_events_to_queue, received_events, stop_delivering_events
from goals_conversions_local.streams import StreamPump

SCHEMA = json.loads((ROOT / "docs" / "events" / "conversion-event.schema.json").read_text())
BIN = Path(sys.executable).parent
ENVIRONMENT = own_tables(boto3.client("dynamodb"), "Events")
TABLE = ENVIRONMENT["DATA_TABLE_NAME"]
BUS = TEMPLATE.event_buses()[0]


@pytest.fixture(scope="module")
def repository() -> Repository:
    return Repository.build(boto3.client("dynamodb"), TABLE)


def captured(pump: StreamPump) -> list[dict[str, Any]]:
    batches: list[dict[str, Any]] = []
    pump.invoke = lambda event: batches.append(event) or {"batchItemFailures": []}
    pump.drain()
    return batches


def history(repository: Repository, tenant: Tenant) -> list[tuple[str, Conversion]]:
    """A create (with a value), a move, a reference change and a delete; (detail-type, conversion)
    of each."""
    user = repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    worth = {"value": "19.9", "currency": "EUR"}
    made = conversion_service.create(repository, user, tenant.goal_id, {"visitor_id": tenant.visitor_id}, worth)
    assert (made.value, made.currency) == ("19.90", "EUR")
    moved = conversion_service.update(repository, user, made.id, {"goal_id": tenant.second_goal_id})
    cleared = conversion_service.update(repository, user, made.id, {"visitor_id": None})
    repository.conversions.delete(user, made.id)
    return [
        ("Conversion Created", made),
        ("Conversion Updated", moved),
        ("Conversion Updated", cleared),
        ("Conversion Deleted", cleared),
    ]


def of_user(events: list[dict[str, Any]], user_id: int) -> list[dict[str, Any]]:
    return [event for event in events if event["detail"]["user_id"] == user_id]


def test_the_committed_schema_describes_the_conversion_the_api_returns():
    detail = SCHEMA["$defs"]["Conversion"]
    assert set(detail["properties"]) == set(detail["required"]) == set(Conversion.model_fields)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.fixture
def events_queue():
    """The local queue a rule on the bus sends every conversion event to, while the test runs."""
    yield deliver_events_to_queue(TEMPLATE)
    stop_delivering_events(TEMPLATE)


def test_each_change_is_one_event_of_the_schemas_shape_on_the_bus(repository, events_queue):
    """Through moto's EventBridge: the events a rule's target receives (the local queue)."""
    tenant = Tenant(repository)
    pump = StreamPump(TEMPLATE, table_name=TABLE, embedded=True)
    captured(pump)
    made = history(repository, tenant)
    table = Table(boto3.client("dynamodb"), TABLE)
    events = ConversionEvents.from_env(BUS)
    for batch in captured(pump):
        assert count_batch(batch, Counter(table), Cascade(table), FailuresQueue(None), events) == {
            "batchItemFailures": []
        }
    received = of_user(received_events(events_queue, wait_seconds=1), tenant.user_id)
    for event in received:
        jsonschema.validate(event, SCHEMA)
    assert [(e["detail-type"], e["detail"]) for e in received] == [
        (kind, conversion.model_dump()) for kind, conversion in made
    ]
    assert all(e["source"] == "goals-conversions" for e in received)


class FlakyEvents:
    """An EventBridge client that reports some entries failed (FailedEntryCount), as PutEvents
    does under throttling: `fail` decides per (call number, entry)."""

    def __init__(self, fail):
        self.fail, self.calls = fail, []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        number = len(self.calls)
        self.calls.append(Entries)
        results = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"} if self.fail(number, entry) else {}
            for entry in Entries
        ]
        return {"FailedEntryCount": sum(1 for r in results if r), "Entries": results}


def test_failed_entries_are_sent_again_in_calls_of_ten(repository):
    tenant = Tenant(repository)
    pump = StreamPump(TEMPLATE, table_name=TABLE, embedded=True)
    captured(pump)
    user = repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    for _ in range(23):
        conversion_service.create(repository, user, tenant.goal_id, {})
    client = FlakyEvents(lambda number, entry: number < 3 and json.loads(entry["Detail"])["id"] % 2 == 0)
    table = Table(boto3.client("dynamodb"), TABLE)
    events = ConversionEvents(client, BUS, sleep=lambda _: None)
    for batch in captured(pump):
        assert count_batch(batch, Counter(table), Cascade(table), FailuresQueue(None), events) == {
            "batchItemFailures": []
        }
    assert max(len(call) for call in client.calls) == 10
    delivered = [json.loads(e["Detail"])["id"] for n, call in enumerate(client.calls) for e in call]
    published = set(delivered)
    assert len(published) == 23 and len(delivered) > 23  # the failed ones went again


def test_events_that_keep_failing_fail_the_batch_from_their_record_and_counts_stay_exact(repository):
    """At least once: the batch is answered from the first record whose event failed; delivered
    again, its events are published (some twice), its counts and feed applied once."""
    tenant = Tenant(repository)
    pump = StreamPump(TEMPLATE, table_name=TABLE, embedded=True)
    captured(pump)
    user = repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    made = [conversion_service.create(repository, user, tenant.goal_id, {}) for _ in range(5)]
    [batch] = captured(pump)
    stubborn = made[2].id
    client = FlakyEvents(lambda number, entry: json.loads(entry["Detail"])["id"] == stubborn)
    table = Table(boto3.client("dynamodb"), TABLE)
    events = ConversionEvents(client, BUS, sleep=lambda _: None)
    response = count_batch(batch, Counter(table), Cascade(table), FailuresQueue(None), events)
    sequences = [r["dynamodb"]["SequenceNumber"] for r in batch["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": sequences[2]}]}
    client.fail = lambda number, entry: False  # the retry, as the stream delivers from that record
    retry = {"Records": batch["Records"][2:]}
    assert count_batch(retry, Counter(table), Cascade(table), FailuresQueue(None), events) == {"batchItemFailures": []}
    assert audit(repository, boto3.client("dynamodb"), TABLE, tenant)["user"] == 5
    assert [kind for kind, _ in audit_feed(boto3.client("dynamodb"), TABLE, tenant)] == ["created"] * 5


@pytest.mark.slow
def test_serve_with_events_prints_each_event_of_the_run(tmp_path):
    """`goals-conversions serve --events`: the embedded database, moto's EventBridge, and each
    event printed as one JSON line on stdout."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "users": [{"user_id": 7, "api_key": "events-key", "status": "active"}],
                "websites": [{"website_id": 7, "user_id": 7, "host": "e.example", "tracking_mode": "normal"}],
                "goals": [{"goal_id": 7, "website_id": 7, "type": "custom", "name": "E", "key": "e"}],
            }
        )
    )
    process = subprocess.Popen(
        [str(BIN / "goals-conversions"), "serve", "--port", "0", "--events", "--seed", str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
        cwd=ROOT,
    )
    lines: Queue[str] = Queue()
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Listening on "), first
        url = first.split()[-1]
        threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
        auth = {"Authorization": "Bearer events-key"}
        created = requests.post(f"{url}/api/goals-conversions", json={"goal_id": 7}, headers=auth, timeout=30)
        assert created.status_code == 201, created.text
        conversion = created.json()["data"]
        assert requests.delete(f"{url}/api/goals-conversions/{conversion['id']}", headers=auth).status_code == 204
        printed = []
        while len(printed) < 2:
            try:
                printed.append(json.loads(lines.get(timeout=30)))
            except Empty:
                pytest.fail(f"events printed: {printed}")
        for event in printed:
            jsonschema.validate(event, SCHEMA)
        assert [(e["detail-type"], e["detail"]) for e in printed] == [
            ("Conversion Created", conversion),
            ("Conversion Deleted", conversion),
        ]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_documented_rule_routes_one_users_conversions_only():
    """The example rule of docs/operations.md, its pattern matched as moto's EventBridge matches a
    rule's (moto does not implement TestEventPattern)."""
    import re

    import yaml
    from moto.events.models import EventPattern

    from goals_conversions_local.template import _CfnLoader

    text = (ROOT / "docs" / "operations.md").read_text()
    [block] = re.findall(r"```yaml\n(.*?)```", text, re.S)
    rule = yaml.load(block, Loader=_CfnLoader)["UserConversionsToCrm"]["Properties"]
    pattern = EventPattern.load(json.dumps(rule["EventPattern"]))

    def matches(user_id: int, detail_type: str = "Conversion Created") -> bool:
        detail = {"id": 1, "goal_id": 1, "website_id": 1, "user_id": user_id, "datetime": "2026-11-30 10:00:01"}
        event = {
            "id": "1",
            "source": "goals-conversions",
            "detail-type": detail_type,
            "account": "123456789012",
            "time": "2026-11-30T10:00:01Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
        return pattern.matches_event(event)

    assert matches(42) and matches(42, "Conversion Deleted")
    assert not matches(43)
    assert rule["Targets"][0]["InputPath"] == "$.detail"
