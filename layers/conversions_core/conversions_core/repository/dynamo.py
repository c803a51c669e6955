"""DynamoDB calls: (de)serialisation, error translation, retries that end in time, and the one
retry-on-conflict helper."""

from __future__ import annotations

import math
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
from botocore.retries.standard import RetryEventAdapter, StandardRetryConditions

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
RETRIES = 4  # at most 1 + 4 attempts of a call on throttling, 5xx and timeouts, while time allows
CONNECT_TIMEOUT_SECONDS = 1.0
RESPONSE_MARGIN_SECONDS = 0.5  # kept back from the Lambda timeout to answer (a 503 at worst)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class Deadline:
    """When the invocation must have answered by. A DynamoDB attempt (or a pause before one)
    starts only if it can end in time at its worst (both timeouts): a client gets the
    contract's 503 with Retry-After instead of API Gateway's bare 503 at the Lambda timeout."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleeper: Callable[[float], None] = time.sleep):
        self.clock, self._sleeper = clock, sleeper
        self._end = math.inf
        self.attempt_seconds = 0.0  # the worst an attempt takes: set by the client it bounds

    def start(self, context: Any) -> None:
        """Count from the Lambda context's remaining time (no deadline without one)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self._end = self.clock() + remaining() / 1000 - RESPONSE_MARGIN_SECONDS if remaining else math.inf

    def left(self) -> float:
        return self._end - self.clock()

    def allows(self, pause: float = 0.0) -> bool:
        """Whether an attempt after `pause` seconds would end in time, at its worst."""
        return pause + self.attempt_seconds <= self.left()

    def require(self) -> None:
        if not self.allows():
            raise unavailable()

    def sleep(self, seconds: float) -> None:
        """A pause before another attempt: DatabaseBusyError when no attempt would fit after it."""
        if not self.allows(seconds):
            raise unavailable()
        self._sleeper(seconds)


def backoff(attempt: int) -> float:
    """Full jitter from 50 ms, doubling, at most 1 s: a request has seconds, not minutes."""
    return random.uniform(0, min(1.0, 0.05 * 2**attempt))


class _DeadlineRetries:
    """botocore's standard retry conditions (throttling, 5xx, timeouts, resets), with a pause
    and a number of attempts the deadline allows."""

    def __init__(self, deadline: Deadline):
        self._deadline = deadline
        self._adapter = RetryEventAdapter()
        self._conditions = StandardRetryConditions(max_attempts=RETRIES + 1)

    def needs_retry(self, **kwargs: Any) -> float | None:
        context = self._adapter.create_retry_context(**kwargs)
        if not self._conditions.is_retryable(context):
            return None
        pause = backoff(context.attempt_number - 1)
        return pause if self._deadline.allows(pause) else None


def dynamodb_client(timeout_seconds: float = 2, deadline: Deadline | None = None) -> Any:
    """A DynamoDB client whose retries back off on throttling, 5xx and timeouts as long as the
    deadline allows (the repository turns what outlasts them into a 503)."""
    connect = min(CONNECT_TIMEOUT_SECONDS, timeout_seconds)
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},  # the retries are _DeadlineRetries'
        connect_timeout=connect,
        read_timeout=timeout_seconds,
    )
    client = boto3.client("dynamodb", config=config)
    deadline = deadline or Deadline()
    deadline.attempt_seconds = connect + timeout_seconds
    client.meta.events.register("needs-retry.dynamodb", _DeadlineRetries(deadline).needs_retry)
    client.meta.events.register("before-call.dynamodb", lambda **_: deadline.require())  # every call, ours or not
    client.meta.deadline = deadline
    return client


def deadline_of(client: Any) -> Deadline:
    """The deadline a client's retries keep to (a client made elsewhere has none)."""
    found = getattr(getattr(client, "meta", None), "deadline", None)
    return found if isinstance(found, Deadline) else Deadline()


def to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
    return {k: _number(v) if isinstance(v, Decimal) else v for k, v in plain.items()}


def _number(value: Decimal) -> int | Decimal:
    """A whole number as an int (ids, counts); an amount with a fraction stays an exact Decimal."""
    return int(value) if value == value.to_integral_value() else value


class Cancelled(Exception):
    """A transaction or conditional write that DynamoDB refused; `reasons` per item ('None' = fine)."""

    def __init__(self, reasons: list[str]):
        super().__init__(", ".join(reasons))
        self.reasons = reasons

    @property
    def conflict_only(self) -> bool:
        """Cancelled only because another transaction held one of its items: worth a retry."""
        return set(self.reasons) <= {"None", "TransactionConflict"} and "TransactionConflict" in self.reasons


class Refused(Exception):
    """A transaction DynamoDB cancelled for a reason no request foresees (a validation error, an
    item too large): a bug to log and answer as one, never a conflict to retry."""


# The cancellation reasons a write foresees: the others are `Refused`.
_FORESEEN_REASONS = {"None", "ConditionalCheckFailed", "TransactionConflict"}


def call(client: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
    """One DynamoDB call. A refused transaction or condition is `Cancelled`; throttling and
    server faults that outlast the retries, or a call with no time left for it, a 503."""
    try:
        response: dict[str, Any] = getattr(client, operation)(**kwargs)
        return response
    except ClientError as error:
        code = error.response["Error"]["Code"]
        reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
        if code in _UNAVAILABLE_CODES or set(reasons) & _THROTTLED_REASONS:
            raise unavailable() from error
        if code == "TransactionCanceledException":
            if not set(reasons) <= _FORESEEN_REASONS:
                raise Refused(f"{operation} cancelled: {', '.join(reasons)}") from error
            raise Cancelled(reasons) from error
        if code == "ConditionalCheckFailedException":
            raise Cancelled(["ConditionalCheckFailed"]) from error
        raise
    except (ConnectionError, HTTPClientError) as error:  # timeouts and resets, after retries
        raise unavailable() from error


def unavailable() -> DatabaseBusyError:
    return DatabaseBusyError()


class Table:
    """One table through one client (and the deadline its calls keep to)."""

    def __init__(self, client: Any, name: str):
        self.client = client
        self.name = name
        self.deadline = deadline_of(client)

    def retry_on_conflict(self, attempt: Callable[[], T], attempts: int = WRITE_ATTEMPTS) -> T:
        """Run `attempt` until it is not cancelled by a conflicting transaction, backing off with
        full jitter; the last `Cancelled` is raised when attempts run out or for any other reason."""
        for number in range(attempts):
            try:
                return attempt()
            except Cancelled as cancelled:
                if not cancelled.conflict_only or number == attempts - 1:
                    raise
            self.deadline.sleep(random.uniform(0, 0.02 * 2**number))
        raise AssertionError("unreachable")

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
                self.deadline.sleep(backoff(attempt))
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
            self.deadline.sleep(backoff(attempt))
        raise unavailable()
