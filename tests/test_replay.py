"""`goals-conversions replay-failures`: the counting function's failures queue re-driven through the
counting function, each record counted once; a message deleted only once applied; one that still
cannot be replayed stays and is reported.

On tables of their own, whose stream is read through the streams API and never trimmed (except
where a test trims it), so that a batch Lambda gave up on can be read again from the stream."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from tables import audit, own_tables, scan

from conftest import ENDPOINT, ROOT, TEMPLATE, Tenant, import_id, new_id
from conversions_core.failures import FailuresQueue
from conversions_core.repository import Repository
from conversions_core.repository.cascade import Cascade
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table
from conversions_core.seed import load_seed
from functions.count_conversions.app import count_batch
from goals_conversions_local.embedded import trim_stream
from goals_conversions_local.replay import Replayer, lambda_invoker, stack_resources
from goals_conversions_local.streams import StreamPump, streams_client

ENVIRONMENT = own_tables(boto3.client("dynamodb"), "Replay")
TABLE = ENVIRONMENT["DATA_TABLE_NAME"]
[COUNTING] = TEMPLATE.stream_functions()
assert COUNTING.stream is not None
ACCEPTS = COUNTING.stream.accepts


@pytest.fixture(scope="module")
def client():
    return boto3.client("dynamodb")


@pytest.fixture(scope="module")
def repository(client) -> Repository:
    return Repository.build(client, TABLE)


@pytest.fixture(scope="module")
def reader() -> StreamPump:
    """Reads the stream through the streams API without counting or forgetting anything."""
    pump = StreamPump(TEMPLATE, table_name=TABLE, embedded=False)
    captured(pump)
    return pump


@pytest.fixture
def queue() -> str:
    return boto3.client("sqs").create_queue(QueueName=f"replay-{new_id()}")["QueueUrl"]


def captured(pump: StreamPump) -> list[dict[str, Any]]:
    """The records written since the pump's last read, as Lambda would deliver them (uncounted)."""
    records: list[dict[str, Any]] = []
    pump.invoke = lambda event: records.extend(event["Records"]) or {"batchItemFailures": []}
    pump.drain()
    return records


def uncounted(repository: Repository, reader: StreamPump, count: int) -> tuple[Tenant, list[dict[str, Any]]]:
    """A new tenant's `count` conversions, their stream records not yet counted."""
    tenant = Tenant(repository)
    captured(reader)  # the tenant's own records: no conversion among them
    start = datetime(2026, 4, 1, 9, 0, 5)
    rows = []
    for n in range(count):
        when = (start + timedelta(hours=5 * n, minutes=n)).strftime("%Y-%m-%d %H:%M:%S")
        rows.append({"id": import_id(when), "goal_id": tenant.goal_id, "datetime": when})
    load_seed(repository, {"conversions": rows})
    return tenant, [r for r in captured(reader) if r["dynamodb"]["Keys"]["pk"]["S"].startswith("CONVERSION#")]


def counted(client: Any, tenant: Tenant) -> int:
    """Conversions in the tenant's count buckets: each is counted in six (one a level), so a record
    counted twice, or not at all, shows (a list's total is never below the items it reads)."""
    buckets = [i for i in scan(client, TABLE) if i["pk"] == f"COUNT#{tenant.user_id}"]
    total = sum(int(bucket.get("n", 0)) for bucket in buckets)
    assert total % 6 == 0, total
    return total // 6


def counting_function(client: Any, queue: str):
    """The counting function's handler code on this module's table, parking in `queue`."""
    table = Table(client, TABLE)
    return lambda event: count_batch(event, Counter(table), Cascade(table), FailuresQueue(queue))


def send(queue: str, *bodies: Any) -> None:
    sqs = boto3.client("sqs")
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body if isinstance(body, str) else json.dumps(body))


def on_the_queue(queue: str) -> list[Any]:
    """Every message body visible on the queue (left visible again)."""
    sqs, bodies, receipts = boto3.client("sqs"), [], []
    while True:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages")
        if not messages:
            break
        for message in messages:
            bodies.append(json.loads(message["Body"]) if message["Body"].startswith("{") else message["Body"])
            receipts.append(message["ReceiptHandle"])
    for receipt in receipts:
        sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=receipt, VisibilityTimeout=0)
    return bodies


def replay(client: Any, queue: str, invoke: Any = None) -> Any:
    invoke = invoke or counting_function(client, queue)
    return Replayer(boto3.client("sqs"), queue, invoke, streams_client(), ACCEPTS, wait_seconds=0).run()


def parked(record: dict[str, Any], reason: str = "KeyError: 'user_id'") -> dict[str, Any]:
    return {"reason": reason, "record": record}


def poisoned(record: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(record)
    del bad["dynamodb"]["NewImage"]["user_id"]
    bad["eventID"] = "poison-" + record["eventID"]
    return bad


def batch_report(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Lambda's on-failure message for a batch of a stream source that kept failing."""
    shard = streams_client().describe_stream(StreamArn=records[0]["eventSourceARN"])["StreamDescription"]["Shards"][0]
    return {
        "requestContext": {"requestId": "r", "functionArn": "arn:f", "condition": "RetryAttemptsExhausted"},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-04-01T09:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": shard["ShardId"],
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "batchSize": len(records),
            "streamArn": records[0]["eventSourceARN"],
        },
    }


def test_records_set_aside_are_counted_once_and_their_messages_deleted(repository, client, reader, queue):
    tenant, records = uncounted(repository, reader, 4)
    send(queue, *(parked(record) for record in records))
    report = replay(client, queue)
    assert (report.replayed, report.records, report.kept) == (4, 4, [])
    assert on_the_queue(queue) == []
    assert audit(repository, client, TABLE, tenant)["user"] == 4 and counted(client, tenant) == 4
    # The same messages again (a run stopped between applying and deleting): their markers hold.
    send(queue, *(parked(record) for record in records))
    assert replay(client, queue).replayed == 4
    assert audit(repository, client, TABLE, tenant)["user"] == 4 and counted(client, tenant) == 4


def test_a_message_that_still_cannot_be_replayed_stays_and_says_why(repository, client, reader, queue):
    _, [record] = uncounted(repository, reader, 1)
    cut = {"reason": "too large", "record": {"eventID": "e", "dynamodb": {"SequenceNumber": "7"}}, "truncated": True}
    send(queue, parked(poisoned(record)), cut, "not json", {"something": "else"})
    report = replay(client, queue)
    assert report.replayed == 0
    reasons = sorted(kept.reason for kept in report.kept)
    assert len(reasons) == 4
    assert any(r.startswith("still cannot be read: ") and "user_id" in r for r in reasons)
    assert any("cut to its keys" in r and "sequence number 7" in r for r in reasons)
    assert any(r.startswith("not JSON") for r in reasons) and any(r.startswith("neither") for r in reasons)
    assert len(on_the_queue(queue)) == 4  # all still there, visible, and nothing new


def test_a_batch_lambda_gave_up_on_is_read_again_from_the_stream_and_counted_once(repository, client, reader, queue):
    tenant, records = uncounted(repository, reader, 6)
    table = Table(client, TABLE)
    count_batch({"Records": records[:3]}, Counter(table), Cascade(table), FailuresQueue(queue))  # counted before
    send(queue, batch_report(records))
    report = replay(client, queue)
    assert (report.replayed, report.kept) == (1, [])
    assert report.records == len(records)
    assert audit(repository, client, TABLE, tenant)["user"] == 6 and counted(client, tenant) == 6
    assert on_the_queue(queue) == []


@pytest.mark.moto_only(
    reason="trims the embedded moto's stream in-process (trim_stream) to stand for 24 hours passing; "
    "another engine's stream cannot be trimmed on demand"
)
def test_a_batch_the_stream_no_longer_holds_stays(repository, client, reader, queue):
    tenant, records = uncounted(repository, reader, 2)
    trim_stream(TABLE, records[0]["dynamodb"]["SequenceNumber"])  # as after 24 hours
    send(queue, batch_report(records))
    report = replay(client, queue)
    [kept] = report.kept
    assert "the stream no longer holds the batch" in kept.reason
    assert len(on_the_queue(queue)) == 1
    assert counted(client, tenant) == 0


def test_a_batch_with_an_unreadable_record_is_counted_and_the_record_set_aside_on_its_own(
    repository, client, reader, queue
):
    tenant, records = uncounted(repository, reader, 2)
    damaged = {"pk": {"S": f"CONVERSION#{new_id()}"}, "sk": {"S": "CONVERSION"}, "goal_id": {"N": "1"}}
    client.put_item(TableName=TABLE, Item=damaged)  # no user, no datetime: no version writes this
    [bad] = captured(reader)
    send(queue, batch_report([*records, bad]))
    report = replay(client, queue)
    assert (report.replayed, report.set_aside) == (1, 1)
    [kept] = report.kept  # the function set the record aside as a message of its own: it stays
    assert kept.reason.startswith("still cannot be read")
    [message] = on_the_queue(queue)
    assert message["record"]["eventID"] == bad["eventID"]
    assert audit(repository, client, TABLE, tenant)["user"] == 2 and counted(client, tenant) == 2


def test_a_message_stays_when_the_counting_function_stops_or_fails(repository, client, reader, queue):
    _, [first, second] = uncounted(repository, reader, 2)
    send(queue, parked(first))
    stopped = replay(client, queue, lambda event: {"batchItemFailures": [{"itemIdentifier": "42"}]})
    assert "stopped at sequence number 42" in stopped.kept[0].reason
    send(queue, parked(second))

    def crash(event: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("Task timed out")

    failed = replay(client, queue, crash)
    assert {k.reason for k in failed.kept} == {"the counting function failed: TimeoutError: Task timed out"}
    assert len(failed.kept) == 2 and len(on_the_queue(queue)) == 2


class FakeLambda:
    def __init__(self, payload: Any, error: str | None = None):
        self.payload, self.error, self.calls = payload, error, []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        answer = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(self.payload).encode())}
        return {**answer, "FunctionError": self.error} if self.error else answer


def test_on_aws_the_deployed_counting_function_is_invoked_and_waited_for():
    deployed = FakeLambda({"batchItemFailures": []})
    assert lambda_invoker(deployed, "stack-CountConversionsFunction-x")({"Records": []}) == {"batchItemFailures": []}
    [call] = deployed.calls
    assert call["FunctionName"] == "stack-CountConversionsFunction-x" and json.loads(call["Payload"]) == {"Records": []}
    crashed = FakeLambda({"errorType": "Runtime.ExitError", "errorMessage": "exited"}, error="Unhandled")
    with pytest.raises(RuntimeError, match="Runtime.ExitError: exited"):
        lambda_invoker(crashed, "f")({"Records": []})


def test_on_aws_the_queue_and_the_function_come_from_the_stack():
    class FakeCloudFormation:
        def describe_stack_resource(self, StackName: str, LogicalResourceId: str) -> dict[str, Any]:
            physical = {"CountingFailuresQueue": "https://sqs.example/1/q", "CountConversionsFunction": "fn"}
            return {"StackResourceDetail": {"PhysicalResourceId": physical[LogicalResourceId]}}

    found = stack_resources(FakeCloudFormation(), "s", "CountingFailuresQueue", "CountConversionsFunction")
    assert found == ["https://sqs.example/1/q", "fn"]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "goals_conversions_local.cli", "replay-failures", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.moto_only(
    reason="the embedded moto serves SQS at its DynamoDB endpoint, as serve's database does; DynamoDB Local "
    "serves no SQS (serve starts a moto server for the queue beside it)"
)
def test_the_command_replays_a_local_database_queue(repository, client, reader, queue):
    """As against `serve`'s database: its endpoint in AWS_ENDPOINT_URL_DYNAMODB, which serves SQS too."""
    tenant, [good, other] = uncounted(repository, reader, 2)
    send(queue, parked(good), parked(poisoned(other)))
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_SQS"}
    env.update(ENVIRONMENT, AWS_ENDPOINT_URL_DYNAMODB=ENDPOINT, FAILURES_QUEUE_URL=queue.rsplit("/", 1)[1])
    result = cli(env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Replayed 1 messages (1 stream records); 1 kept on the queue:"
    assert "still cannot be read" in lines[1] and "user_id" in lines[1]
    assert counted(client, tenant) == 1  # the good one; the other stays on the queue
    [message] = on_the_queue(queue)
    assert message["record"]["eventID"] == "poison-" + other["eventID"]


@pytest.mark.slow
def test_the_command_on_aws_needs_the_stack_or_the_queue_and_function():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    result = cli(env=env)
    assert result.returncode == 2 and "--stack" in result.stderr and result.stdout == ""
