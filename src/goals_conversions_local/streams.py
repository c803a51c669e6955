"""The local stand-in for Lambda's DynamoDB stream event source: reads the data table's stream
and invokes the template's stream function with batches of records, as Lambda would.

Like Lambda it applies the event's filter, honours partial batch responses (the batch is
retried from the record the function names), splits a batch that raises in two, and gives up
on a record after a number of attempts (the deployed function's on-failure destination; here
it is kept in `failures`). `drain()` returns once every record written so far is handled;
`start()` drains in the background so that local totals settle within a second.

The embedded database (moto's server in this process) is read in-process, and the records read
are forgotten there. Any other endpoint (DynamoDB Local, a moto server of its own) is read
through the Streams API, as Lambda reads it: one shard iterator per shard, carried from one
GetRecords to the next (each GetShardIterator makes the server keep one more iterator), and
records handed over as AWS would hand them (see `_lambda_record`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from goals_conversions_local.embedded import TTL_DELETIONS, serves_here, ttl_deletion_key
from goals_conversions_local.runtime import Functions
from goals_conversions_local.template import Template

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.1


# Where the pumps of this process have read an external stream, per (endpoint, access key id,
# table): one reader, as Lambda's event source mapping keeps one position per shard. A pump made
# later goes on from there instead of the stream's trim horizon, as it does on the embedded
# database (which forgets what was read): otherwise each new pump would read, and hand over again,
# the table's whole history.
_READING: dict[tuple[str, str, str], tuple[threading.Lock, dict[str, str], dict[str, tuple[str, str | None]]]] = {}
_READING_LOCK = threading.Lock()


def _shared_reading(
    table_name: str,
) -> tuple[threading.Lock, dict[str, str], dict[str, tuple[str, str | None]]]:
    key = (
        os.environ.get("AWS_ENDPOINT_URL_DYNAMODBSTREAMS") or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or "",
        os.environ.get("AWS_ACCESS_KEY_ID", ""),
        table_name,
    )
    with _READING_LOCK:
        return _READING.setdefault(key, (threading.Lock(), {}, {}))


def streams_client() -> Any:
    """A DynamoDB Streams client at AWS_ENDPOINT_URL_DYNAMODBSTREAMS, else at the DynamoDB endpoint."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODBSTREAMS") or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    return boto3.client("dynamodbstreams", endpoint_url=endpoint)


class StreamPump:
    """Feeds one table's stream to its stream function."""

    def __init__(
        self,
        template: Template,
        functions: Functions | None = None,
        table_name: str | None = None,
        embedded: bool = False,
    ):
        [self.spec] = template.stream_functions()
        assert self.spec.stream is not None
        self.functions = functions or Functions(template)
        self.table_name = table_name or os.environ.get("DATA_TABLE_NAME", self.spec.stream.table)
        # The in-process moto server: read in-process, consumed records forgotten. Only when the
        # endpoint in use is one this process serves (a test asking for it on another engine reads
        # through the Streams API).
        self.embedded = embedded and serves_here(os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))
        self.failures: list[dict[str, Any]] = []
        self.invocations = 0
        self._client = streams_client()
        self._embedded_shards: list[tuple[str, str]] = []
        self._stream_arn: str | None = None
        if self.embedded:
            self._lock = threading.Lock()
            self._positions: dict[str, str] = {}  # shard id -> last sequence number handled
            self._iterators: dict[str, tuple[str, str | None]] = {}  # shard id -> (iterator, position it follows)
        else:
            self._lock, self._positions, self._iterators = _shared_reading(self.table_name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.invoke = self._invoke_function

    # -- public -----------------------------------------------------------------------------------

    def drain(self) -> int:
        """Handle every record written so far; returns how many records were read."""
        with self._lock:
            if self.embedded and not self._embedded_has_news():
                return 0
            total = 0
            while True:
                read = sum(self._pump_shard(shard, arn) for arn, shard in self._shards())
                total += read
                if not read:
                    return total

    def start(self) -> StreamPump:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stream-pump", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- reading the stream -----------------------------------------------------------------------

    def _embedded_has_news(self) -> bool:
        """Whether the in-process stream has records past ours (cheap: no call to the server)."""
        from goals_conversions_local.embedded import stream_end

        end = stream_end(self.table_name)
        return end is not None and any(int(p) + 1 < end for p in self._positions.values()) or not self._positions

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.drain()
            except Exception:  # the next poll tries again; a local tool must not die of it
                logger.exception("stream pump: poll failed")

    def _shards(self) -> list[tuple[str, str]]:
        """(stream ARN, shard id) of each shard: DynamoDB opens new shards as it goes; the
        embedded database keeps one for ever."""
        if self.embedded and self._embedded_shards:
            return self._embedded_shards
        if self._stream_arn is None:  # describing the table costs the embedded database O(items)
            table = boto3.client("dynamodb").describe_table(TableName=self.table_name)["Table"]
            self._stream_arn = table.get("LatestStreamArn")
        if not self._stream_arn:
            return []
        shards = self._client.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        found = [(self._stream_arn, shard["ShardId"]) for shard in shards]
        if self.embedded:
            self._embedded_shards = found
        return found

    def _pump_shard(self, shard: str, arn: str) -> int:
        """Deliver one batch of up to BatchSize records that pass the filters: Lambda filters
        before it batches, so the records filtered out do not take room in a batch."""
        source = self.spec.stream
        assert source is not None
        wanted: list[dict[str, Any]] = []
        read = 0
        last: str | None = None
        while len(wanted) < source.batch_size:
            records = self._read(shard, arn, source.batch_size - len(wanted), after=last)
            if not records:
                break
            read += len(records)
            last = records[-1]["dynamodb"]["SequenceNumber"]
            converted = [lambda_record(record, arn, self.table_name) for record in records]
            wanted += [record for record in converted if source.accepts(record)]
        if not read:
            return 0
        if wanted:
            self._deliver(wanted)
        assert last is not None
        self._positions[shard] = last
        if self.embedded:
            from goals_conversions_local.embedded import trim_stream

            trim_stream(self.table_name, self._positions[shard])
        return read

    def _read(self, shard: str, arn: str, limit: int, after: str | None = None) -> list[dict[str, Any]]:
        position = after or self._positions.get(shard)
        if self.embedded:
            from goals_conversions_local.embedded import read_stream

            return read_stream(self.table_name, position, limit)
        kept = self._iterators.pop(shard, None)
        if kept is not None and kept[1] == position:  # the iterator the last GetRecords gave
            try:
                return self._get_records(shard, kept[0], limit, position)
            except ClientError as error:
                if error.response["Error"]["Code"] not in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                    raise
        if position is not None:
            iterator = self._client.get_shard_iterator(
                StreamArn=arn, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=position
            )
            try:
                return self._get_records(shard, iterator["ShardIterator"], limit, position)
            except ClientError as error:
                if error.response["Error"]["Code"] != "TrimmedDataAccessException":
                    raise
            # Another reader (`serve`'s pump) counted and forgot the records after ours: as Lambda
            # does past a shard's trim horizon, go on from the oldest record kept.
        for _ in range(10):  # the other reader may forget more between our two calls
            iterator = self._client.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
            try:
                return self._get_records(shard, iterator["ShardIterator"], limit, None)
            except ClientError as error:
                if error.response["Error"]["Code"] != "TrimmedDataAccessException":
                    raise
        raise RuntimeError("the stream kept moving its trim horizon")

    def _get_records(self, shard: str, iterator: str, limit: int, position: str | None) -> list[dict[str, Any]]:
        """One GetRecords from the iterator that follows `position`; the iterator it returns is
        kept for the next read of the shard, with the position that one follows."""
        response = self._client.get_records(ShardIterator=iterator, Limit=limit)
        records = response["Records"]
        following = records[-1]["dynamodb"]["SequenceNumber"] if records else position
        if response.get("NextShardIterator"):  # none once a closed shard is read to its end
            self._iterators[shard] = (response["NextShardIterator"], following)
        return records

    # -- delivering, as Lambda's event source mapping does -------------------------------------------

    def _deliver(self, records: list[dict[str, Any]], attempt: int = 1) -> None:
        """Invoke until the batch is handled: from the record a partial batch response names, or
        in two halves when the invocation raises; a record still failing after the template's
        MaximumRetryAttempts (as Lambda; giving up sooner would let a later change of the same
        conversion be applied before it) goes to `failures`."""
        assert self.spec.stream is not None
        maximum_attempts = 1 + self.spec.stream.maximum_retries
        while records:
            try:
                response = self.invoke({"Records": records})
            except Exception:
                logger.exception("stream pump: the counting function raised")
                if attempt >= maximum_attempts:
                    self.failures += records
                    return
                if len(records) > 1:
                    half = len(records) // 2
                    self._deliver(records[:half], attempt + 1)
                    self._deliver(records[half:], attempt + 1)
                    return
                attempt += 1
                continue
            failed = [f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])]
            if not failed:
                return
            sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
            records = records[sequences.index(failed[0]) :] if failed[0] in sequences else records
            if attempt >= maximum_attempts:
                self.failures += records
                return
            attempt += 1
            time.sleep(min(0.01 * attempt, 0.2))

    def _invoke_function(self, event: dict[str, Any]) -> dict[str, Any]:
        self.invocations += 1
        return self.functions.invoke(self.spec, event)


# The stream record of a deletion by DynamoDB's TTL, as AWS delivers it to Lambda (the service
# deleted the item): https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/time-to-live-ttl-streams.html
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
# DynamoDB Local (built on the AWS SDK for Java) names its own TTL deletions with the SDK's
# placeholder for an enum value its model lacks, and gives them no userIdentity.
DYNAMODB_LOCAL_TTL_EVENT = "UNKNOWN_TO_SDK_VERSION"


def lambda_record(record: dict[str, Any], stream_arn: str, table_name: str | None = None) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it to a function (JSON-safe, with its stream's ARN).

    A TTL deletion comes out as AWS sends it, a REMOVE with the service's identity, whatever the
    engine wrote: DynamoDB Local writes its own as eventName UNKNOWN_TO_SDK_VERSION without
    userIdentity, and the deletions `embedded.expire_items` makes on it are plain deletes."""
    stream = dict(record["dynamodb"])
    created = stream.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        stream["ApproximateCreationDateTime"] = int(created.timestamp())
    delivered = {**record, "dynamodb": stream, "eventSourceARN": stream_arn}
    if "userIdentity" in record:  # GetRecords spells it PrincipalId/Type, a Lambda event principalId/type
        identity = record["userIdentity"]
        delivered["userIdentity"] = {"type": identity.get("Type"), "principalId": identity.get("PrincipalId")}
    elif _deleted_by_ttl(record, table_name):
        delivered["eventName"] = "REMOVE"
        delivered["userIdentity"] = dict(TTL_IDENTITY)
    return delivered


def _deleted_by_ttl(record: dict[str, Any], table_name: str | None) -> bool:
    stream = record["dynamodb"]
    if "NewImage" in stream or "OldImage" not in stream:
        return False
    if record.get("eventName") == DYNAMODB_LOCAL_TTL_EVENT:
        return True
    return ttl_deletion_key(table_name or "", stream["Keys"], stream["OldImage"]) in TTL_DELETIONS
