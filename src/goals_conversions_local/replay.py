"""`goals-conversions replay-failures`: the counting function's failures queue re-driven through
the counting function, locally or on AWS.

The queue holds two kinds of message (template.yaml, CountingFailuresQueue):

- a stream record the function could not read, set aside by the function itself as
  `{"reason", "record"}` with the record as Lambda delivered it (conversions_core.failures); one
  too large for a message is cut to its keys (`"truncated": true`) and cannot be replayed from
  the queue: the whole record is in the function's log;
- Lambda's on-failure message for a batch still failing after every retry: no records, but
  `DDBStreamBatchInfo` (stream ARN, shard, first and last sequence numbers), from which the records
  are read again from the stream, which keeps them 24 hours.

Each message's records are handed to the counting function as Lambda would hand them
(`{"Records": [...]}`). Counting applies each record exactly once: a record already applied has
its marker (`APPLIED#<event id>`, repository/counting.py), so a record replayed twice, or a batch
part of which was counted before it was given up, moves no count twice; goal cascades are safe to
repeat. A message is deleted only once the function answered with no `batchItemFailures`. A
message that still cannot be replayed stays on the queue, visible again at the end of the run,
and is reported with why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from conversions_core.repository.stream import read_batch
from goals_conversions_local.streams import lambda_record

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
# Long enough for one invocation of the counting function (its timeout is 120 s): a message being
# replayed is not received again meanwhile.
VISIBILITY_SECONDS = 900
# GetRecords may answer empty before a shard's end; give up on a range after this many in a row.
EMPTY_READS = 5


class Unreplayable(Exception):
    """A message this run cannot replay (it stays on the queue)."""


@dataclass
class Kept:
    message_id: str
    reason: str


@dataclass
class Report:
    replayed: int = 0  # messages applied and deleted
    records: int = 0  # records the counting function was given
    set_aside: int = 0  # records of replayed batches the function parked again, as messages of their own
    kept: list[Kept] = field(default_factory=list)

    def lines(self) -> list[str]:
        done = f"Replayed {self.replayed} messages ({self.records} stream records)"
        if self.set_aside:
            done += f"; {self.set_aside} unreadable records set aside again as messages of their own"
        if not self.kept:
            return [done + "."]
        return [f"{done}; {len(self.kept)} kept on the queue:"] + [f"  {k.message_id}: {k.reason}" for k in self.kept]


class Replayer:
    """Replays one queue's messages through `invoke` (the counting function), once each."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        invoke: Invoke,
        streams: Any = None,
        accepts: Callable[[dict[str, Any]], bool] = lambda record: True,
        wait_seconds: int = 1,
    ):
        self.sqs, self.queue_url, self.invoke = sqs, queue_url, invoke
        self.streams = streams  # a dynamodbstreams client, for Lambda's batch messages
        self.accepts = accepts  # the event source's filter: records Lambda would have delivered
        self.wait_seconds = wait_seconds

    def run(self) -> Report:
        report = Report()
        seen: set[str] = set()
        replayed_events: set[str] = set()
        kept_receipts: list[str] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=1,  # one at a time: each waits for an invocation
                VisibilityTimeout=VISIBILITY_SECONDS,
                WaitTimeSeconds=self.wait_seconds,
            ).get("Messages", [])
            if not messages or messages[0]["MessageId"] in seen:
                break
            message = messages[0]
            seen.add(message["MessageId"])
            try:
                self._replay(message["Body"], replayed_events, report)
            except Unreplayable as problem:
                report.kept.append(Kept(message["MessageId"], str(problem)))
                kept_receipts.append(message["ReceiptHandle"])
                continue
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            report.replayed += 1
        for receipt in kept_receipts:  # still there for the alarm, the next run and whoever looks
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)
        return report

    def _replay(self, body: str, replayed_events: set[str], report: Report) -> None:
        records, single = self.records(body)
        batch = read_batch(records)
        if single and batch.unreadable:  # the function would only set it aside again
            raise Unreplayable(f"still cannot be read: {batch.unreadable[0].reason}")
        events = {str(record.get("eventID")) for record in records}
        if records and events <= replayed_events:
            raise Unreplayable("set aside again by the counting function in this run: it still cannot read it")
        try:
            response = self.invoke({"Records": records}) if records else {}
        except Exception as error:
            raise Unreplayable(f"the counting function failed: {type(error).__name__}: {error}") from None
        replayed_events |= events
        failures = (response or {}).get("batchItemFailures") or []
        if failures:
            raise Unreplayable(
                f"the counting function stopped at sequence number {failures[0].get('itemIdentifier')} (its log says"
                " why); the records before it are counted, and a later run skips them"
            )
        report.records += len(records)
        report.set_aside += len(batch.unreadable)

    def records(self, body: str) -> tuple[list[dict[str, Any]], bool]:
        """The message's records as Lambda delivers them, and whether it is one record set aside."""
        try:
            message = json.loads(body)
        except ValueError:
            raise Unreplayable("not JSON: neither a record set aside nor Lambda's report of a batch") from None
        if isinstance(message, dict) and isinstance(message.get("record"), dict):
            record = message["record"]
            if message.get("truncated"):
                sequence = (record.get("dynamodb") or {}).get("SequenceNumber")
                raise Unreplayable(
                    f"the record was too large for a message and was cut to its keys: the whole record (sequence"
                    f" number {sequence}) is in the counting function's log"
                )
            return [record], True
        if isinstance(message, dict) and isinstance(message.get("DDBStreamBatchInfo"), dict):
            return self._from_stream(message["DDBStreamBatchInfo"]), False
        raise Unreplayable("neither a record set aside ({reason, record}) nor Lambda's report of a batch")

    def _from_stream(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """The batch's records, read again from the stream (first to last sequence number)."""
        try:
            arn, shard = info["streamArn"], info["shardId"]
            first, last = str(info["startSequenceNumber"]), int(info["endSequenceNumber"])
        except (KeyError, TypeError, ValueError):
            raise Unreplayable("Lambda's report of a batch without its stream, shard or sequence numbers") from None
        if self.streams is None:
            raise Unreplayable("no DynamoDB Streams client to read the batch from")
        records: list[dict[str, Any]] = []
        try:
            iterator = self.streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=first
            )["ShardIterator"]
            empty = 0
            while iterator and empty < EMPTY_READS:
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                iterator = page.get("NextShardIterator")
                empty = 0 if page["Records"] else empty + 1
                for record in page["Records"]:
                    if int(record["dynamodb"]["SequenceNumber"]) > last:
                        iterator = None
                        break
                    records.append(record)
                if records and int(records[-1]["dynamodb"]["SequenceNumber"]) == last:
                    break
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("TrimmedDataAccessException", "ExpiredIteratorException"):
                raise Unreplayable(
                    f"the stream no longer holds the batch from sequence number {first} (it keeps records"
                    " 24 hours): its counts cannot be replayed from the queue"
                ) from None
            raise Unreplayable(f"the batch's stream cannot be read: {code}: {error}") from None
        if not records or int(records[0]["dynamodb"]["SequenceNumber"]) != int(first):
            raise Unreplayable(f"the stream no longer holds the batch from sequence number {first} (it keeps 24 hours)")
        reached = records[-1]["dynamodb"]["SequenceNumber"]
        if int(reached) != last:
            raise Unreplayable(f"the stream gave the batch up to sequence number {reached} only, not {last}")
        delivered = [lambda_record(record, arn) for record in records]
        return [record for record in delivered if self.accepts(record)]


def lambda_invoker(client: Any, function_name: str) -> Invoke:
    """The deployed counting function, invoked and waited for; an invocation that fails raises."""

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        response = client.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            detail = payload if isinstance(payload, dict) else {}
            raise RuntimeError(
                f"{detail.get('errorType', response['FunctionError'])}: {detail.get('errorMessage', '')}"
            )
        return payload if isinstance(payload, dict) else {}

    return invoke


def stack_resources(client: Any, stack: str, *logical_ids: str) -> list[str]:
    """The physical ids of a deployed stack's resources (a queue's is its URL, a function's its name)."""
    return [
        client.describe_stack_resource(StackName=stack, LogicalResourceId=logical_id)["StackResourceDetail"][
            "PhysicalResourceId"
        ]
        for logical_id in logical_ids
    ]
