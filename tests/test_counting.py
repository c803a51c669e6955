"""Counts from the stream, exactly once: batches delivered twice, a counting function killed
after any of its writes and retried, TTL deletions, and conversions moved and deleted.

These run on tables of their own with a stream pump of their own, so each test decides when
and how the stream's records are delivered. After each step every total (the user's, each
website's and each goal's, and over ranges) is compared with the conversions stored.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from tables import audit, audit_feed, own_tables, scan

from conftest import TEMPLATE, Tenant, batch_response, counting_pump, import_id
from conversions_core import conversion_service
from conversions_core.auth import hash_api_key
from conversions_core.failures import FailuresQueue
from conversions_core.models import ListRequest
from conversions_core.repository import Repository
from conversions_core.repository.cascade import Cascade
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table
from conversions_core.repository.stream import StreamRecord, read_batch
from conversions_core.seed import load_seed
from functions.count_conversions.app import count_batch
from goals_conversions_local.embedded import expire_items
from goals_conversions_local.streams import StreamPump

ENVIRONMENT = own_tables(boto3.client("dynamodb"), "Counting")
TABLE = ENVIRONMENT["DATA_TABLE_NAME"]


class Killed(Exception):
    """The counting function's process dying right after a write."""


class DyingClient:
    """A DynamoDB client that dies right after its `survives`-th write."""

    WRITES = ("transact_write_items", "update_item", "delete_item", "put_item")

    def __init__(self, client: Any, survives: int):
        self._client, self.survives, self.writes = client, survives, 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in self.WRITES:
            return method

        def write(**kwargs: Any) -> Any:
            response = method(**kwargs)
            self.writes += 1
            if self.writes == self.survives:
                raise Killed(f"after write {self.writes}")
            return response

        return write


def readable(records: list[dict[str, Any]]) -> list[StreamRecord]:
    return read_batch(records).records


@pytest.fixture(scope="module")
def client():
    return boto3.client("dynamodb")


@pytest.fixture(scope="module")
def repository(client) -> Repository:
    return Repository.build(client, TABLE)


@pytest.fixture
def tenant(repository) -> Tenant:
    return Tenant(repository)


def captured_batches(pump: StreamPump) -> list[dict[str, Any]]:
    """Read the stream as far as it goes, keeping the batches instead of counting them."""
    batches: list[dict[str, Any]] = []
    pump.invoke = lambda event: batches.append(event) or {"batchItemFailures": []}
    pump.drain()
    return batches


def user(repository: Repository, tenant: Tenant):
    return repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))


def assert_range_totals(repository: Repository, client: Any, tenant: Tenant) -> None:
    """Totals over ranges cut inside minutes, hours and days equal the conversions stored."""
    stored = [i for i in scan(client, TABLE) if i["pk"].startswith("CONVERSION#") and i["user_id"] == tenant.user_id]
    stamps = sorted(datetime.strptime(i["datetime"], "%Y-%m-%d %H:%M:%S") for i in stored)
    if not stamps:
        return
    first, last = stamps[0], stamps[-1]
    middle = first + (last - first) / 2
    for low, high in ((first, last), (first + timedelta(seconds=1), middle), (middle, last - timedelta(seconds=1))):
        request = ListRequest(start=low.replace(tzinfo=UTC), end=high.replace(tzinfo=UTC))
        expected = sum(1 for s in stamps if low <= s <= high)
        assert repository.conversions.list(user(repository, tenant), request).total == expected, (low, high)


def spread_conversions(tenant: Tenant, count: int) -> list[dict[str, Any]]:
    """Rows a day, an hour and a few minutes apart, so that their buckets fill several transactions."""
    start = datetime(2026, 3, 1, 8, 0, 7)
    rows = []
    for n in range(count):
        when = (start + timedelta(days=n, hours=n, minutes=7 * n)).strftime("%Y-%m-%d %H:%M:%S")
        goal = tenant.goal_id if n % 2 else tenant.second_goal_id
        rows.append({"id": import_id(when), "goal_id": goal, "datetime": when})
    return rows


def test_a_batch_delivered_twice_counts_once(repository, client, tenant):
    counter = Counter(Table(client, TABLE))
    pump = counting_pump(TABLE)
    pump.drain()  # what earlier tests left on the stream
    made = [conversion_service.create(repository, user(repository, tenant), tenant.goal_id, {}) for _ in range(6)]
    conversion_service.update(repository, user(repository, tenant), made[0].id, {"goal_id": tenant.second_goal_id})
    repository.conversions.delete(user(repository, tenant), made[1].id)
    batches = captured_batches(pump)
    assert batches
    for event in batches:
        assert batch_response(counter.apply(readable(event["Records"]))) == {"batchItemFailures": []}
    assert audit(repository, client, TABLE, tenant)["user"] == 5
    for event in batches:  # the same batches again, as Lambda may deliver them
        outcome = counter.apply(readable(event["Records"]))
        assert outcome.applied == 0 and outcome.failed_sequence is None
    assert audit(repository, client, TABLE, tenant)["user"] == 5
    kinds = [kind for kind, _ in audit_feed(client, TABLE, tenant)]
    assert kinds == ["created"] * 6 + ["updated", "deleted"]  # each change once, in order
    assert_range_totals(repository, client, tenant)


def a_fresh_batch(repository: Repository, count: int) -> tuple[Tenant, dict[str, Any]]:
    """A new tenant's imported conversions, as the one stream batch that carries them (not yet counted)."""
    tenant = Tenant(repository)
    pump = StreamPump(TEMPLATE, table_name=TABLE, embedded=True)
    captured_batches(pump)  # what earlier steps left on the stream
    load_seed(repository, {"conversions": spread_conversions(tenant, count)})
    [event] = captured_batches(pump)
    return tenant, event


def test_a_counting_function_killed_after_any_of_its_writes_and_retried_counts_once(repository, client):
    _, event = a_fresh_batch(repository, 40)
    counting = DyingClient(client, survives=0)  # never dies: counts the writes of a whole batch
    Counter(Table(counting, TABLE)).apply(readable(event["Records"]))
    assert counting.writes >= 3, "the batch should need several transactions"
    for survives in range(1, counting.writes):
        tenant, event = a_fresh_batch(repository, 40)
        dying = DyingClient(client, survives)
        with pytest.raises(Killed):
            Counter(Table(dying, TABLE)).apply(readable(event["Records"]))
        outcome = Counter(Table(client, TABLE)).apply(readable(event["Records"]))  # Lambda's retry
        assert outcome.failed_sequence is None and outcome.skipped > 0
        assert audit(repository, client, TABLE, tenant)["user"] == 40
        assert [kind for kind, _ in audit_feed(client, TABLE, tenant)] == ["created"] * 40
        assert_range_totals(repository, client, tenant)


def test_a_split_batch_is_counted_once(repository, client):
    """Lambda splits a failing batch in two: the halves overlap what the first try applied."""
    tenant, event = a_fresh_batch(repository, 40)
    with pytest.raises(Killed):
        Counter(Table(DyingClient(client, 2), TABLE)).apply(readable(event["Records"]))
    records = event["Records"]
    half = len(records) // 2
    counter = Counter(Table(client, TABLE))
    assert counter.apply(readable(records[:half])).failed_sequence is None
    assert counter.apply(readable(records[half:])).failed_sequence is None
    assert audit(repository, client, TABLE, tenant)["user"] == 40
    assert [kind for kind, _ in audit_feed(client, TABLE, tenant)] == ["created"] * 40
    assert_range_totals(repository, client, tenant)


def test_ttl_deletions_leave_lists_and_counts(client, tenant):
    pump = counting_pump(TABLE)
    pump.drain()
    days_ago = datetime.now(UTC) - timedelta(days=3)
    keeping_a_day = Repository.build(client, TABLE, clock=lambda: days_ago, retention_days=1)
    repository = Repository.build(client, TABLE)
    for _ in range(3):
        conversion_service.create(keeping_a_day, user(repository, tenant), tenant.goal_id, {})
    for _ in range(2):
        conversion_service.create(repository, user(repository, tenant), tenant.goal_id, {})
    old = (days_ago - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    load_seed(keeping_a_day, {"conversions": [{"id": import_id(old), "goal_id": tenant.goal_id, "datetime": old}]})
    pump.drain()
    assert audit(repository, client, TABLE, tenant)["user"] == 6
    assert expire_items(TABLE) >= 4  # the three created and the one imported three days ago
    pump.drain()
    assert audit(repository, client, TABLE, tenant)["user"] == 2  # the listed items went too
    # Retention's deletions are changes too: a copy kept in step loses them as the list does.
    assert [kind for kind, _ in audit_feed(client, TABLE, tenant)] == ["created"] * 6 + ["deleted"] * 4
    listed = repository.conversions.list(user(repository, tenant), ListRequest(results_per_page=10))
    assert len(listed.conversions) == 2


def test_moves_between_goals_and_websites_then_deletes_keep_every_total(repository, client, tenant):
    pump = counting_pump(TABLE)
    me = user(repository, tenant)
    made = [
        conversion_service.create(repository, me, tenant.goal_id, {"visitor_id": tenant.visitor_id}) for _ in range(5)
    ]
    steps = [
        lambda: conversion_service.update(repository, me, made[0].id, {"goal_id": tenant.second_goal_id}),
        lambda: conversion_service.update(
            repository, me, made[1].id, {"goal_id": tenant.lightweight_goal_id, "visitor_id": None}
        ),
        lambda: conversion_service.update(repository, me, made[1].id, {"goal_id": tenant.goal_id}),
        lambda: conversion_service.update(repository, me, made[2].id, {"visitor_id": None}),
        lambda: repository.conversions.delete(me, made[0].id),
        lambda: repository.conversions.delete(me, made[3].id),
    ]
    for step in steps:
        step()
        pump.drain()
        totals = audit(repository, client, TABLE, tenant)
        assert_range_totals(repository, client, tenant)
    assert totals["user"] == 3
    assert totals[f"website {tenant.website_id}"] == 3 and totals[f"goal {tenant.second_goal_id}"] == 0


@pytest.mark.moto_only(
    reason="compares the embedded moto's in-process stream read (a shortcut of the local pump) with moto's "
    "Streams API; another engine is only read through the API"
)
def test_the_pump_reads_the_same_records_through_the_streams_api(repository, tenant):
    """Against an external endpoint the pump reads with GetRecords; the embedded database's
    stream is read in-process. Both give the function the same records."""
    rows = spread_conversions(tenant, 3)
    load_seed(repository, {"conversions": rows})
    through_api = captured_batches(StreamPump(TEMPLATE, table_name=TABLE, embedded=False))
    in_process = captured_batches(StreamPump(TEMPLATE, table_name=TABLE, embedded=True))
    records = [r for batch in in_process for r in batch["Records"]]
    assert [r for batch in through_api for r in batch["Records"]] == records
    inserted = {r["dynamodb"]["Keys"]["pk"]["S"] for r in records if r["eventName"] == "INSERT"}
    assert inserted >= {f"CONVERSION#{row['id']}" for row in rows}


def test_the_counting_function_imports_no_http_stack():
    """It serves no HTTP, so Powertools' event handler would only lengthen its cold start."""
    function = Path(__file__).resolve().parents[1] / "functions" / "count_conversions"
    layer = function.parents[1] / "layers" / "conversions_core"
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, app; print(*sorted(sys.modules), sep='\\n')"],
        cwd=function,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(function), str(layer)])},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "conversions_core.repository.counting" in imported
    assert [name for name in imported if name.startswith("aws_lambda_powertools.event_handler")] == []


@pytest.mark.moto_only(
    reason="the embedded pump forgets what it read in moto's backend (trim_stream); another engine keeps "
    "records for 24 hours and its pumps share one position"
)
def test_a_pump_behind_one_that_forgot_its_records_goes_on_from_the_oldest_kept(repository, tenant):
    """`import` into a running `serve`: both read the stream, and serve's pump forgets what it
    counted. The import's pump, reading through the streams API, finds its position gone
    (DynamoDB's TrimmedDataAccessException) and goes on from the oldest record kept."""
    behind = StreamPump(TEMPLATE, table_name=TABLE, embedded=False)
    captured_batches(behind)
    first, second = spread_conversions(tenant, 5)[:3], spread_conversions(tenant, 5)[3:]
    load_seed(repository, {"conversions": first})
    captured_batches(StreamPump(TEMPLATE, table_name=TABLE, embedded=True))  # reads and forgets them
    load_seed(repository, {"conversions": second})
    records = [r for batch in captured_batches(behind) for r in batch["Records"]]
    inserted = {r["dynamodb"]["Keys"]["pk"]["S"] for r in records if r["eventName"] == "INSERT"}
    assert inserted == {f"CONVERSION#{row['id']}" for row in second}


def counting_function(client: Any, records: list[dict[str, Any]], failures: FailuresQueue) -> dict[str, Any]:
    """The counting function's handler code on one batch, with its failures queue."""
    table = Table(client, TABLE)
    return count_batch({"Records": records}, Counter(table), Cascade(table), failures)


def poisoned(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of a conversion's record whose new image lacks its user (written by some other
    version, or damaged): the counting function cannot tell whose counts it moves."""
    bad = copy.deepcopy(record)
    del bad["dynamodb"]["NewImage"]["user_id"]
    bad["eventID"] = "poison-" + record["eventID"]
    return bad


def test_an_unreadable_record_is_set_aside_and_the_rest_of_its_batch_is_counted(repository, client):
    tenant, event = a_fresh_batch(repository, 6)
    records = event["Records"]
    bad = poisoned(records[2])
    queue = boto3.client("sqs").create_queue(QueueName=f"failures-{tenant.user_id}")["QueueUrl"]
    table = Table(client, TABLE)
    response = count_batch(
        {"Records": [*records[:3], bad, *records[3:]]}, Counter(table), Cascade(table), FailuresQueue(queue)
    )
    assert response == {"batchItemFailures": []}
    assert audit(repository, client, TABLE, tenant)["user"] == 6
    [message] = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    parked = json.loads(message["Body"])
    assert parked["record"] == bad and "user_id" in parked["reason"]


def test_an_unreadable_record_the_queue_cannot_take_is_delivered_again(repository, client):
    tenant, event = a_fresh_batch(repository, 4)
    records = event["Records"]
    bad = poisoned(records[1])
    response = counting_function(client, [records[0], bad, *records[1:]], FailuresQueue("no-such-queue"))
    assert response == {"batchItemFailures": [{"itemIdentifier": bad["dynamodb"]["SequenceNumber"]}]}
    assert audit(repository, client, TABLE, tenant)["user"] == 4  # the good ones counted, once


def test_a_record_of_another_tables_shape_is_skipped(repository, client):
    tenant, event = a_fresh_batch(repository, 2)
    foreign = {"eventID": "x", "eventName": "INSERT", "dynamodb": {"Keys": {"id": {"S": "1"}}, "SequenceNumber": "1"}}
    table = Table(client, TABLE)
    response = count_batch(
        {"Records": [foreign, *event["Records"]]}, Counter(table), Cascade(table), FailuresQueue(None)
    )
    assert response == {"batchItemFailures": []}
    assert audit(repository, client, TABLE, tenant)["user"] == 2


def test_the_counting_state_is_the_same_size_whatever_shares_a_second(repository, client):
    """1,200 conversions of one user at one second: every item the counting function writes stays
    small, and the counts are exact (a ledger per second once grew with each and stopped at
    DynamoDB's 400 KB item limit)."""
    tenant = Tenant(repository)
    pump = StreamPump(TEMPLATE, table_name=TABLE, embedded=True)
    captured_batches(pump)
    when = "2025-01-01 00:00:00"
    rows = [{"id": import_id(when), "goal_id": tenant.goal_id, "datetime": when} for _ in range(1200)]
    load_seed(repository, {"conversions": rows})
    writes: list[dict[str, Any]] = []
    recording = boto3.client("dynamodb")
    recording.meta.events.register(
        "before-parameter-build.dynamodb.TransactWriteItems", lambda params, **_: writes.append(params)
    )
    for batch in captured_batches(pump):
        assert Counter(Table(recording, TABLE)).apply(readable(batch["Records"])).failed_sequence is None
    assert audit(repository, client, TABLE, tenant)["user"] == 1200
    items = [operation for params in writes for operation in params["TransactItems"]]
    largest = max(len(json.dumps(operation)) for operation in items)
    assert largest < 1024, largest  # one write unit's worth, whatever the batch
    assert max(len(params["TransactItems"]) for params in writes) <= 100
    # A marker and a feed entry per record; six buckets and the feed's head per transaction.
    assert len(items) == 2 * 1200 + 7 * len(writes)
