"""DynamoDB calls: (de)serialisation, error translation, and the one retry-on-conflict helper."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeVar

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from conversions_core.errors import DatabaseBusyError

T = TypeVar("T")
_UNAVAILABLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
}
# Cancellation reasons of a transaction that mean "throttled", not "conflict".
_THROTTLED_REASONS = {"ThrottlingError", "ProvisionedThroughputExceeded"}
WRITE_ATTEMPTS = 5
BATCH_WRITE_SIZE = 25
BATCH_GET_SIZE = 100
RETRIES = 4  # botocore's standard mode: 1 + 4 attempts, with backoff, on throttling, 5xx and timeouts

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def dynamodb_client(timeout_seconds: float = 3) -> Any:
    """A DynamoDB client whose retries back off on throttling, 5xx and timeouts (the repository
    turns what outlasts them into a 503)."""
    config = Config(
        retries={"mode": "standard", "max_attempts": RETRIES},
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
    )
    return boto3.client("dynamodb", config=config)


def to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
    return {k: int(v) if isinstance(v, Decimal) else v for k, v in plain.items()}


class Cancelled(Exception):
    """A transaction or conditional write that DynamoDB refused; `reasons` per item ('None' = fine)."""

    def __init__(self, reasons: list[str]):
        super().__init__(", ".join(reasons))
        self.reasons = reasons

    @property
    def conflict_only(self) -> bool:
        """Cancelled only because another transaction held one of its items: worth a retry."""
        return set(self.reasons) <= {"None", "TransactionConflict"} and "TransactionConflict" in self.reasons


def call(client: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
    """One DynamoDB call. A refused transaction or condition is `Cancelled`; throttling and
    server faults that outlast botocore's retries become a 503."""
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
        if code in _UNAVAILABLE_CODES or set(reasons) & _THROTTLED_REASONS:
            raise unavailable() from error
        if code == "TransactionCanceledException":
            raise Cancelled(reasons) from error
        if code == "ConditionalCheckFailedException":
            raise Cancelled(["ConditionalCheckFailed"]) from error
        raise
    except (ConnectionError, HTTPClientError) as error:  # timeouts and resets, after retries
        raise unavailable() from error


def unavailable() -> DatabaseBusyError:
    return DatabaseBusyError()


def retry_on_conflict(attempt: Callable[[], T], attempts: int = WRITE_ATTEMPTS) -> T:
    """Run `attempt` until it is not cancelled by a conflicting transaction, backing off with
    full jitter; the last `Cancelled` is raised when attempts run out or for any other reason."""
    for number in range(attempts):
        try:
            return attempt()
        except Cancelled as cancelled:
            if not cancelled.conflict_only or number == attempts - 1:
                raise
        time.sleep(random.uniform(0, 0.02 * 2**number))
    raise AssertionError("unreachable")


class Table:
    """One table through one client."""

    def __init__(self, client: Any, name: str):
        self.client = client
        self.name = name

    def get(self, key: dict[str, Any], consistent: bool = False) -> dict[str, Any] | None:
        response = call(self.client, "get_item", TableName=self.name, Key=to_dynamo(key), ConsistentRead=consistent)
        return from_dynamo(response["Item"]) if "Item" in response else None

    def batch_get(self, keys: list[dict[str, Any]], consistent: bool = False) -> list[dict[str, Any]]:
        """The items of `keys` that exist; a key given twice is asked once (DynamoDB refuses a
        request that holds it twice)."""
        keys = list({tuple(sorted(key.items())): key for key in keys}.values())
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_SIZE):
            chunk = [to_dynamo(k) for k in keys[start : start + BATCH_GET_SIZE]]
            request = {self.name: {"Keys": chunk, "ConsistentRead": consistent}}
            for attempt in range(8):
                response = call(self.client, "batch_get_item", RequestItems=request)
                found += [from_dynamo(i) for i in response["Responses"].get(self.name, [])]
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            if request:
                raise unavailable()
        return found

    def query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Pages of a Query, following LastEvaluatedKey."""
        while True:
            response = call(self.client, "query", TableName=self.name, **kwargs)
            yield response
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def update(self, key: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return call(self.client, "update_item", TableName=self.name, Key=to_dynamo(key), **kwargs)

    def delete(self, key: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return call(self.client, "delete_item", TableName=self.name, Key=to_dynamo(key), **kwargs)

    def put(self, item: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return call(self.client, "put_item", TableName=self.name, Item=to_dynamo(item), **kwargs)

    def transact(self, operations: list[dict[str, Any]], token: str | None = None) -> None:
        """One TransactWriteItems on this table. The same token on a retry lets DynamoDB
        recognise a transaction that did commit (for 10 minutes) instead of applying it twice."""
        for operation in operations:
            next(iter(operation.values()))["TableName"] = self.name
        token = token or str(uuid.uuid4())
        call(self.client, "transact_write_items", TransactItems=operations, ClientRequestToken=token)

    def batch_write(self, items: list[dict[str, Any]], workers: int = 1) -> None:
        """Put items in batches of 25, `workers` batches at a time, retrying what DynamoDB leaves."""
        requests = [{"PutRequest": {"Item": to_dynamo(i)}} for i in items]
        self._write_all(requests, workers)

    def batch_delete(self, keys: list[dict[str, Any]]) -> None:
        """Delete items by key in batches of 25 (deleting a missing item is no error)."""
        self._write_all([{"DeleteRequest": {"Key": to_dynamo(k)}} for k in keys], workers=1)

    def _write_all(self, requests: list[dict[str, Any]], workers: int) -> None:
        size = BATCH_WRITE_SIZE
        batches = [requests[start : start + size] for start in range(0, len(requests), size)]
        if workers <= 1 or len(batches) <= 1:
            for batch in batches:
                self._write_batch(batch)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(self._write_batch, batches):
                pass

    def _write_batch(self, batch: list[dict[str, Any]]) -> None:
        pending = {self.name: batch}
        for attempt in range(8):
            response = call(self.client, "batch_write_item", RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(0.05 * 2**attempt)
        raise unavailable()
