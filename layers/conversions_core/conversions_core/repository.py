"""The DynamoDB repository: the only module that knows key formats, indexes and expressions.

Data table (`pk`, `sk`; indexes `ByUser` on `user_pk`+`sk` and `ByGoal` on `goal_pk`+`sk`):

| item                | pk                          | sk                       | extra keys        |
|---------------------|-----------------------------|--------------------------|-------------------|
| user                | USER#<user_id>              | USER                     |                   |
| API key (by hash)   | APIKEY#<sha256 hex>         | APIKEY                   |                   |
| website/goal/...    | WEBSITE#<id>, GOAL#<id>, .. | WEBSITE, GOAL, ...       |                   |
| conversion          | WEBSITE#<id>#CONVERSIONS    | <datetime>#<id:020>      | user_pk, goal_pk  |
| conversion by id    | CONVERSION#<id>             | CONVERSION               |                   |
| count bucket        | COUNT#<scope>#<id>          | DAY#<YYYY-MM-DD>         | also HOUR#, MINUTE# |
| id sequence         | SEQUENCE#CONVERSION         | SEQUENCE                 |                   |

The sort key `<datetime>#<id>` orders by datetime then id, which is also id order because ids
are allocated together with a never-decreasing datetime (see `_allocate_id`).

Counts: every conversion adds 1 to its day, hour and minute bucket of its user, its website and
its goal (nine items, in the same transaction as the conversion). A datetime range is cut into
whole days, whole hours at its ends, whole minutes at their ends, and at most one part-minute at
each bound (see `_cover`), so a total reads the bucket items of the range plus at most two
minutes' worth of conversion keys, whatever the number of conversions.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from conversions_core.errors import (
    ConflictError,
    Problem,
    ServiceUnavailableError,
    invalid,
    invalid_many,
    not_found,
    not_found_many,
)
from conversions_core.models import REFERENCE_FIELDS, Conversion, ListRequest, Page, User, format_datetime

USER_INDEX = "ByUser"
GOAL_INDEX = "ByGoal"
_LOWEST_SORT_KEY = "0000-00-00 00:00:00#"
_HIGHEST_SORT_KEY = "9999-12-31 23:59:59#~"
_SEQUENCE_KEY = {"pk": "SEQUENCE#CONVERSION", "sk": "SEQUENCE"}
_ENTITY_KINDS = ("WEBSITE", "GOAL", "VISITOR", "SESSION", "EVENT")
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
_WRITE_ATTEMPTS = 5

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def _from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
    return {k: int(v) if isinstance(v, Decimal) else v for k, v in plain.items()}


def entity_key(kind: str, entity_id: int) -> dict[str, str]:
    return {"pk": f"{kind}#{entity_id}", "sk": kind}


def _api_key_key(key_hash: str) -> dict[str, str]:
    return {"pk": f"APIKEY#{key_hash}", "sk": "APIKEY"}


def _by_id_key(conversion_id: int) -> dict[str, str]:
    return entity_key("CONVERSION", conversion_id)


def _sort_key(when: str, conversion_id: int) -> str:
    return f"{when}#{conversion_id:020d}"


# (bucket name, length of its datetime prefix, seconds in it), coarsest first.
_BUCKETS = (("DAY", 10, 86400), ("HOUR", 13, 3600), ("MINUTE", 16, 60))
_FIRST_SECOND = datetime(1, 1, 1).toordinal() * 86400
_LAST_SECOND = datetime(9999, 12, 31).toordinal() * 86400 + 86399


def _bucket_sort_keys(when: str) -> list[str]:
    """The count buckets a conversion at `when` ('YYYY-MM-DD HH:MM:SS') belongs to."""
    return [f"{name}#{when[:length]}" for name, length, _ in _BUCKETS]


def _seconds(value: datetime) -> int:
    return value.toordinal() * 86400 + value.hour * 3600 + value.minute * 60 + value.second


def _stamp(seconds: int) -> str:
    """'YYYY-MM-DD HH:MM:SS' of a second counted as in `_seconds`."""
    day, second = divmod(seconds, 86400)
    return (datetime.fromordinal(day) + timedelta(seconds=second)).isoformat(sep=" ")


def _cover(low: int, high: int, level: int = 0) -> list[tuple[int | None, int, int]]:
    """Cut the seconds [low, high) into (bucket level, first unit, last unit) runs of whole
    buckets, coarsest possible, in time order; a part-minute is (None, first second, last second).

    At most one run of days, two of hours, two of minutes and two part-minutes.
    """
    if low >= high:
        return []
    if level == len(_BUCKETS):
        return [(None, low, high - 1)]
    size = _BUCKETS[level][2]
    first, last = -(-low // size), high // size
    if first >= last:
        return _cover(low, high, level + 1)
    return _cover(low, first * size, level + 1) + [(level, first, last - 1)] + _cover(last * size, high, level + 1)


@dataclass(frozen=True)
class _Span:
    """Conversions counted between two seconds (inclusive), and the bucket level it came from."""

    first: int
    last: int
    count: int
    level: int | None


@dataclass(frozen=True)
class Scope:
    """A partition of conversions a listing reads: a user's, a website's or a goal's."""

    kind: str  # USER, WEBSITE or GOAL
    scope_id: int

    @property
    def index(self) -> str | None:
        return {"USER": USER_INDEX, "GOAL": GOAL_INDEX}.get(self.kind)

    @property
    def key_attribute(self) -> str:
        return {"USER": "user_pk", "GOAL": "goal_pk"}.get(self.kind, "pk")

    @property
    def partition(self) -> str:
        return f"{self.kind}#{self.scope_id}#CONVERSIONS"

    @property
    def count_partition(self) -> str:
        return f"COUNT#{self.kind}#{self.scope_id}"


def _scopes_of(conversion: Conversion) -> list[Scope]:
    return [
        Scope("USER", conversion.user_id),
        Scope("WEBSITE", conversion.website_id),
        Scope("GOAL", conversion.goal_id),
    ]


def _conversion_fields(conversion: Conversion) -> dict[str, Any]:
    return conversion.model_dump()


def _conversion_from_item(item: dict[str, Any]) -> Conversion:
    return Conversion.model_validate({name: item.get(name) for name in Conversion.model_fields})


def _sort_bounds(start: datetime | None, end: datetime | None) -> tuple[str, str]:
    low = f"{format_datetime(start)}#" if start else _LOWEST_SORT_KEY
    high = f"{format_datetime(end)}#~" if end else _HIGHEST_SORT_KEY
    return low, high


class Repository:
    """Reads and writes users, websites, goals, tracking entities and conversions."""

    def __init__(self, client: Any, table_name: str, clock: Callable[[], datetime] | None = None):
        self._client = client
        self._table = table_name
        self._clock = clock or (lambda: datetime.now(UTC))

    # -- low level ---------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return _call(self._client, operation, **kwargs)

    def _get(self, key: dict[str, str], consistent: bool = True) -> dict[str, Any] | None:
        response = self._call("get_item", TableName=self._table, Key=_to_dynamo(key), ConsistentRead=consistent)
        return _from_dynamo(response["Item"]) if "Item" in response else None

    def _batch_get(self, keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        if not keys:
            return []
        request = {self._table: {"Keys": [_to_dynamo(k) for k in keys], "ConsistentRead": True}}
        found: list[dict[str, Any]] = []
        while request:
            response = self._call("batch_get_item", RequestItems=request)
            found += [_from_dynamo(i) for i in response["Responses"].get(self._table, [])]
            request = response.get("UnprocessedKeys") or {}
        return found

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Pages of a Query, following LastEvaluatedKey."""
        while True:
            response = self._call("query", TableName=self._table, **kwargs)
            yield response
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _transact(self, operations: list[dict[str, Any]], token: str | None = None) -> None:
        """One TransactWriteItems. The same token on a retry lets DynamoDB recognise a transaction
        that did commit (for 10 minutes) instead of applying or refusing it a second time."""
        for operation in operations:
            body = next(iter(operation.values()))
            body["TableName"] = self._table
        self._call("transact_write_items", TransactItems=operations, ClientRequestToken=token or str(uuid.uuid4()))

    # -- users and keys ----------------------------------------------------------------------

    def find_user_by_key_hash(self, key_hash: str) -> User | None:
        """The user owning the API key with this SHA-256 hash, or None."""
        key_item = self._get(_api_key_key(key_hash), consistent=False)
        if key_item is None:
            return None
        user = self._get(entity_key("USER", key_item["user_id"]), consistent=False)
        if user is None:
            return None
        return User(user["user_id"], user["status"], user.get("rate_limit_per_minute"), key_hash)

    # -- owned entities ----------------------------------------------------------------------

    def get_entity(self, kind: str, entity_id: int) -> dict[str, Any] | None:
        """A website, goal, visitor, session or event item by id, or None."""
        return self._get(entity_key(kind, entity_id))

    def _owned(self, user: User, kind: str, entity_id: int) -> dict[str, Any] | None:
        item = self.get_entity(kind, entity_id)
        return item if item is not None and item.get("user_id") == user.user_id else None

    def _owned_goal(self, user: User, goal_id: int) -> dict[str, Any]:
        goal = self._owned(user, "GOAL", goal_id)
        if goal is None:
            raise not_found("Goal", "goal_id")
        return goal

    def _check_references(self, website: dict[str, Any], refs: dict[str, int | None]) -> None:
        """The contract's rules for visitor/session/event ids on a conversion of `website`."""
        given = {name: value for name, value in refs.items() if value is not None}
        if given and website["tracking_mode"] != "normal":
            raise invalid_many(
                (name, f"{name} is only accepted when the goal's website has tracking_mode normal") for name in given
            )
        kinds = {"visitor_id": "VISITOR", "session_id": "SESSION", "event_id": "EVENT"}
        found = {
            (item["pk"].split("#")[0]): item
            for item in self._batch_get([entity_key(kinds[name], value) for name, value in given.items()])
        }
        missing = [
            name
            for name in given
            if kinds[name] not in found or found[kinds[name]]["website_id"] != website["website_id"]
        ]
        if missing:
            labels = {"visitor_id": "Visitor", "session_id": "Session", "event_id": "Event"}
            raise not_found_many((name, f"{labels[name]} not found on the goal's website") for name in missing)
        session, event = found.get("SESSION"), found.get("EVENT")
        problems = []
        if session and "visitor_id" in given and session.get("visitor_id") != given["visitor_id"]:
            problems.append(("session_id", "session_id does not belong to the given visitor_id"))
        if event and "session_id" in given and event.get("session_id") != given["session_id"]:
            problems.append(("event_id", "event_id does not belong to the given session_id"))
        if problems:
            raise invalid_many(problems)

    # -- conversions: reads ------------------------------------------------------------------

    def _conversion_item(self, user: User, conversion_id: int) -> dict[str, Any]:
        item = self._get(_by_id_key(conversion_id))
        if item is None or item["user_id"] != user.user_id:
            raise not_found("Conversion")
        return item

    def get_conversion(self, user: User, conversion_id: int) -> Conversion:
        """One of the user's conversions; NotFoundError for anyone else's or a missing one."""
        return _conversion_from_item(self._conversion_item(user, conversion_id))

    def list_conversions(self, user: User, request: ListRequest) -> Page:
        """A page of the user's conversions matching the filters, with the exact total.

        The total is summed from count buckets (see `_spans`). The page then starts in the
        bucket holding its first item: a day or hour bucket that would have to be skipped into
        is opened into its hours or minutes, so at most one minute's keys are skipped.
        """
        scope = self._scope_for(user, request)
        if scope is None:
            return Page([], 0)
        low_second = _seconds(request.start) if request.start else _FIRST_SECOND
        high_second = _seconds(request.end) if request.end else _LAST_SECOND
        spans = self._spans(scope, _cover(low_second, high_second + 1))
        total = sum(span.count for span in spans)
        skip = (request.page - 1) * request.results_per_page
        if skip >= total:
            return Page([], total)
        while True:
            for span in spans if request.ascending else reversed(spans):
                if skip < span.count:
                    break
                skip -= span.count
            if skip == 0 or span.level is None or span.level + 1 == len(_BUCKETS):
                break
            size = _BUCKETS[span.level + 1][2]
            spans = self._spans(scope, [(span.level + 1, span.first // size, span.last // size)])
        low, high = _sort_bounds(request.start, request.end)
        if request.ascending:
            low = max(low, f"{_stamp(span.first)}#")
        else:
            high = min(high, f"{_stamp(span.last)}#~")
        items = self._read_range(scope, low, high, request.ascending, skip, request.results_per_page)
        return Page([_conversion_from_item(i) for i in items], total)

    def list_conversions_naive(self, user: User, request: ListRequest, total: int | None = None) -> Page:
        """The same page the way the upstream service gets it (COUNT over the whole range, OFFSET
        by reading past every earlier item): the benchmark's baseline, not used by the API.
        `total` skips the COUNT when the caller already made it for these filters."""
        scope = self._scope_for(user, request)
        if scope is None:
            return Page([], 0)
        low, high = _sort_bounds(request.start, request.end)
        if total is None:
            total = self._count_range(scope, low, high)
        skip = (request.page - 1) * request.results_per_page
        if skip >= total:
            return Page([], total)
        after: dict[str, Any] = {}
        while skip:  # OFFSET: read past `skip` items (counted, not returned, to spare the wire)
            pages = self._range_query(
                scope, low, high, ScanIndexForward=request.ascending, Select="COUNT", Limit=skip, **after
            )
            read = next(pages)
            skip -= read["Count"]
            after = {"ExclusiveStartKey": read["LastEvaluatedKey"]}
        items = self._read_range(scope, low, high, request.ascending, 0, request.results_per_page, **after)
        return Page([_conversion_from_item(i) for i in items], total)

    def _scope_for(self, user: User, request: ListRequest) -> Scope | None:
        if request.goal_id is not None:
            goal = self._owned(user, "GOAL", request.goal_id)
            if goal is None or request.website_id not in (None, goal["website_id"]):
                return None
            return Scope("GOAL", request.goal_id)
        if request.website_id is not None:
            if self._owned(user, "WEBSITE", request.website_id) is None:
                return None
            return Scope("WEBSITE", request.website_id)
        return Scope("USER", user.user_id)

    def _spans(self, scope: Scope, runs: list[tuple[int | None, int, int]]) -> list[_Span]:
        """Counted spans of `runs` (from `_cover`), in time order, empty buckets left out.

        A run of buckets is one Query on the count partition; a part-minute is counted on the
        conversions themselves (Select=COUNT over at most one minute of keys).
        """
        spans: list[_Span] = []
        for level, first, last in runs:
            if level is None:
                count = self._count_range(scope, f"{_stamp(first)}#", f"{_stamp(last)}#~")
                spans.append(_Span(first, last, count, None))
                continue
            name, length, size = _BUCKETS[level]
            low, high = (f"{name}#{_stamp(unit * size)[:length]}" for unit in (first, last))
            for page in self._query(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
                ExpressionAttributeValues=_to_dynamo({":pk": scope.count_partition, ":low": low, ":high": high}),
                ConsistentRead=True,
            ):
                for raw in page["Items"]:
                    item = _from_dynamo(raw)
                    prefix = item["sk"].partition("#")[2]
                    start = _seconds(datetime.fromisoformat(prefix + "0001-01-01 00:00:00"[len(prefix) :]))
                    spans.append(_Span(start, start + size - 1, item["n"], level))
        return [span for span in spans if span.count > 0]

    def _range_query(self, scope: Scope, low: str, high: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        if scope.index:
            kwargs["IndexName"] = scope.index
        else:
            kwargs["ConsistentRead"] = True
        return self._query(
            KeyConditionExpression="#p = :p AND sk BETWEEN :low AND :high",
            ExpressionAttributeNames={"#p": scope.key_attribute},
            ExpressionAttributeValues=_to_dynamo({":p": scope.partition, ":low": low, ":high": high}),
            **kwargs,
        )

    def _count_range(self, scope: Scope, low: str, high: str) -> int:
        return sum(page["Count"] for page in self._range_query(scope, low, high, Select="COUNT"))

    def _read_range(
        self, scope: Scope, low: str, high: str, ascending: bool, skip: int, wanted: int, **kwargs: Any
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        pages = self._range_query(scope, low, high, ScanIndexForward=ascending, Limit=skip + wanted, **kwargs)
        for page in pages:
            items += page["Items"]
            if len(items) >= skip + wanted:
                break
        return [_from_dynamo(i) for i in items[skip : skip + wanted]]

    # -- conversions: writes -----------------------------------------------------------------

    def create_conversion(self, user: User, goal_id: int, refs: dict[str, int | None]) -> Conversion:
        """Record a conversion of one of the user's goals: one id allocation, one transaction."""
        goal = self._owned_goal(user, goal_id)
        website = self._get(entity_key("WEBSITE", goal["website_id"]))
        if website is None:
            raise not_found("Goal", "goal_id")
        self._check_references(website, refs)
        # A failure between allocation and transaction leaves only a gap in the ids.
        conversion_id, when = self._allocate_id()
        conversion = Conversion(
            id=conversion_id,
            goal_id=goal_id,
            website_id=goal["website_id"],
            user_id=user.user_id,
            datetime=when,
            **{name: refs.get(name) for name in REFERENCE_FIELDS},
        )
        operations = [self._put_by_id(conversion, version=1, expected_version=None), self._put_listed(conversion)]
        operations += self._count_updates(conversion, +1)
        token = str(uuid.uuid4())
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                self._transact(operations, token)
                return conversion
            except ClientError as error:
                if not _is_cancelled(error):
                    raise
                if _cancellation_reasons(error) - {"None", "TransactionConflict"}:
                    break  # the new id is taken (only a conflicting import can do that); nothing was written
            _backoff(attempt)
        raise ConflictError(Problem("The conversion could not be recorded because of a concurrent change; retry"))

    def update_conversion(self, user: User, conversion_id: int, changes: dict[str, int | None]) -> Conversion:
        """Apply the sent fields (None clears a reference); moving goal moves website and counts."""
        if "goal_id" in changes and changes["goal_id"] is None:
            raise invalid("goal_id", "goal_id cannot be cleared: a conversion always has a goal")
        for attempt in range(_WRITE_ATTEMPTS):
            item = self._conversion_item(user, conversion_id)
            current = _conversion_from_item(item)
            goal = self._owned_goal(user, changes.get("goal_id") or current.goal_id)
            website = self._get(entity_key("WEBSITE", goal["website_id"]))
            if website is None:
                raise not_found("Goal", "goal_id")
            refs = {name: changes.get(name, getattr(current, name)) for name in REFERENCE_FIELDS}
            self._check_references(website, refs)
            updated = current.model_copy(update={"goal_id": goal["goal_id"], "website_id": goal["website_id"], **refs})
            if updated == current:
                return current
            try:
                self._transact(self._replace_operations(current, updated, item["version"]))
                return updated
            except ClientError as error:
                if not _is_cancelled(error):
                    raise
            _backoff(attempt)
        raise ConflictError(Problem("The conversion is being changed by another request; retry"))

    def delete_conversion(self, user: User, conversion_id: int) -> None:
        """Delete a conversion, its listing item and its counts in one transaction."""
        for attempt in range(_WRITE_ATTEMPTS):
            item = self._conversion_item(user, conversion_id)
            conversion = _conversion_from_item(item)
            operations = [
                {
                    "Delete": {
                        "Key": _to_dynamo(_by_id_key(conversion.id)),
                        "ConditionExpression": "version = :v",
                        "ExpressionAttributeValues": _to_dynamo({":v": item["version"]}),
                    }
                },
                {"Delete": {"Key": _to_dynamo(self._listed_key(conversion))}},
                *self._count_updates(conversion, -1),
            ]
            try:
                self._transact(operations)
                return
            except ClientError as error:
                if not _is_cancelled(error):
                    raise
            _backoff(attempt)
        raise ConflictError(Problem("The conversion is being changed by another request; retry"))

    def _allocate_id(self) -> tuple[int, str]:
        """Next conversion id and its datetime, never earlier than the previous id's datetime."""
        when = format_datetime(self._clock())
        for _ in range(_WRITE_ATTEMPTS):
            try:
                response = self._call(
                    "update_item",
                    TableName=self._table,
                    Key=_to_dynamo(_SEQUENCE_KEY),
                    UpdateExpression="SET last_id = if_not_exists(last_id, :zero) + :one, last_datetime = :when",
                    ConditionExpression="attribute_not_exists(last_datetime) OR last_datetime <= :when",
                    ExpressionAttributeValues=_to_dynamo({":zero": 0, ":one": 1, ":when": when}),
                    ReturnValues="UPDATED_NEW",
                )
                return int(_from_dynamo(response["Attributes"])["last_id"]), when
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                # Another writer's clock is ahead of ours: take its datetime so order holds.
                when = max(when, (self._get(_SEQUENCE_KEY) or {}).get("last_datetime", when))
        raise ConflictError(Problem("Could not allocate a conversion id; retry"))

    def sequence(self) -> tuple[int, str | None]:
        """The last allocated conversion id and its datetime (0, None on an empty table)."""
        item = self._get(_SEQUENCE_KEY) or {}
        return item.get("last_id", 0), item.get("last_datetime")

    def latest_conversion_datetime(self, user_id: int) -> str | None:
        """The datetime of the user's newest conversion, or None."""
        scope = Scope("USER", user_id)
        page = next(self._range_query(scope, _LOWEST_SORT_KEY, _HIGHEST_SORT_KEY, ScanIndexForward=False, Limit=1))
        return _from_dynamo(page["Items"][0])["datetime"] if page["Items"] else None

    def _listed_key(self, conversion: Conversion) -> dict[str, str]:
        return {
            "pk": Scope("WEBSITE", conversion.website_id).partition,
            "sk": _sort_key(conversion.datetime, conversion.id),
        }

    def _listed_item(self, conversion: Conversion) -> dict[str, Any]:
        return {
            **self._listed_key(conversion),
            "user_pk": Scope("USER", conversion.user_id).partition,
            "goal_pk": Scope("GOAL", conversion.goal_id).partition,
            **_conversion_fields(conversion),
        }

    def _put_listed(self, conversion: Conversion) -> dict[str, Any]:
        return {"Put": {"Item": _to_dynamo(self._listed_item(conversion))}}

    def _by_id_item(self, conversion: Conversion, version: int) -> dict[str, Any]:
        return {**_by_id_key(conversion.id), **_conversion_fields(conversion), "version": version}

    def _put_by_id(self, conversion: Conversion, version: int, expected_version: int | None) -> dict[str, Any]:
        put: dict[str, Any] = {"Item": _to_dynamo(self._by_id_item(conversion, version))}
        if expected_version is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = _to_dynamo({":v": expected_version})
        return {"Put": put}

    def _replace_operations(self, current: Conversion, updated: Conversion, version: int) -> list[dict[str, Any]]:
        operations = [self._put_by_id(updated, version + 1, expected_version=version), self._put_listed(updated)]
        if self._listed_key(current) != self._listed_key(updated):
            operations.append({"Delete": {"Key": _to_dynamo(self._listed_key(current))}})
        old_scopes, new_scopes = set(_scopes_of(current)), set(_scopes_of(updated))
        buckets = _bucket_sort_keys(current.datetime)
        operations += [self._count_update(s, b, -1) for s in old_scopes - new_scopes for b in buckets]
        operations += [self._count_update(s, b, +1) for s in new_scopes - old_scopes for b in buckets]
        return operations

    def _count_updates(self, conversion: Conversion, delta: int) -> list[dict[str, Any]]:
        buckets = _bucket_sort_keys(conversion.datetime)
        return [self._count_update(scope, bucket, delta) for scope in _scopes_of(conversion) for bucket in buckets]

    def _count_update(self, scope: Scope, bucket: str, delta: int) -> dict[str, Any]:
        return {
            "Update": {
                "Key": _to_dynamo({"pk": scope.count_partition, "sk": bucket}),
                "UpdateExpression": "ADD n :delta",
                "ExpressionAttributeValues": _to_dynamo({":delta": delta}),
            }
        }

    # -- bulk import -------------------------------------------------------------------------

    def import_records(
        self,
        users: Iterable[tuple[dict[str, Any], str]],
        entities: Iterable[tuple[str, dict[str, Any]]],
        conversions: list[Conversion],
    ) -> None:
        """Write validated seed records: users with their key hash, entities, conversions.

        Entities are written as given (an existing id is replaced); conversions are assumed to
        have been checked (seed.py) so that each user's ids keep growing with datetime. The
        sequence moves past every imported id, so later creates get higher ids.
        """
        items: list[dict[str, Any]] = []
        for user, key_hash in users:
            items.append({**entity_key("USER", user["user_id"]), **user})
            items.append({**_api_key_key(key_hash), "user_id": user["user_id"]})
        items += [{**entity_key(kind, fields[f"{kind.lower()}_id"]), **fields} for kind, fields in entities]
        items += self._conversion_items(conversions)
        self._batch_write(items)
        self._add_counts(conversions)
        if conversions:
            last_id, last_datetime = self.sequence()
            self._call(
                "update_item",
                TableName=self._table,
                Key=_to_dynamo(_SEQUENCE_KEY),
                UpdateExpression="SET last_id = :id, last_datetime = :when",
                ExpressionAttributeValues=_to_dynamo(
                    {
                        ":id": max(last_id, *(c.id for c in conversions)),
                        ":when": max(last_datetime or "", *(c.datetime for c in conversions)),
                    }
                ),
            )

    def _batch_write(self, items: list[dict[str, Any]]) -> None:
        for start in range(0, len(items), 25):
            pending = {self._table: [{"PutRequest": {"Item": _to_dynamo(i)}} for i in items[start : start + 25]]}
            for attempt in range(8):
                response = self._call("batch_write_item", RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(0.05 * 2**attempt)
            if pending:
                raise ServiceUnavailableError(Problem("The database is busy; retry the import"))

    def _conversion_items(self, conversions: list[Conversion]) -> list[dict[str, Any]]:
        return [item for c in conversions for item in (self._by_id_item(c, version=1), self._listed_item(c))]

    def _add_counts(self, conversions: list[Conversion]) -> None:
        """Add the conversions to their count buckets, one atomic ADD per bucket."""
        for (scope, bucket), count in _bucket_totals(conversions).items():
            update = self._count_update(scope, bucket, count)["Update"]
            self._call("update_item", TableName=self._table, **update)

    def fresh_table_items(self, conversions: list[Conversion]) -> list[dict[str, Any]]:
        """What importing these conversions leaves in a table that has no conversions yet: their
        items, their count buckets with the sums already made, and the id sequence. For loading
        a fresh table in bulk (the benchmark), where there are no counts to add to."""
        items = self._conversion_items(conversions)
        items += [
            {"pk": scope.count_partition, "sk": bucket, "n": count}
            for (scope, bucket), count in _bucket_totals(conversions).items()
        ]
        if conversions:
            last = max(conversions, key=lambda c: c.id)
            items.append({**_SEQUENCE_KEY, "last_id": last.id, "last_datetime": last.datetime})
        return items


def _bucket_totals(conversions: list[Conversion]) -> dict[tuple[Scope, str], int]:
    totals: dict[tuple[Scope, str], int] = {}
    for conversion in conversions:
        for scope in _scopes_of(conversion):
            for bucket in _bucket_sort_keys(conversion.datetime):
                totals[(scope, bucket)] = totals.get((scope, bucket), 0) + 1
    return totals


class RateLimitCounter:
    """Fixed one-minute windows per API key hash in the rate-limit table."""

    def __init__(self, client: Any, table_name: str, clock: Callable[[], float] = time.time):
        self._client = client
        self._table = table_name
        self._clock = clock

    def hit(self, key_hash: str) -> tuple[int, int]:
        """Count one request; returns (requests in this window, seconds until it ends)."""
        now = self._clock()
        window = int(now // 60) * 60
        response = _call(
            self._client,
            "update_item",
            TableName=self._table,
            Key=_to_dynamo({"pk": f"{key_hash}#{window}"}),
            UpdateExpression="ADD requests :one SET expires_at = :expires",
            ExpressionAttributeValues=_to_dynamo({":one": 1, ":expires": window + 120}),
            ReturnValues="UPDATED_NEW",
        )
        return int(_from_dynamo(response["Attributes"])["requests"]), max(1, int(window + 60 - now))


def _call(client: Any, operation: str, **kwargs: Any) -> dict[str, Any]:
    """Run one DynamoDB call; throttling and server faults that outlast retries become 503,
    as does a transaction cancelled because an item was throttled."""
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as error:
        throttled = _cancellation_reasons(error) & _THROTTLED_REASONS
        if error.response["Error"]["Code"] in _UNAVAILABLE_CODES or throttled:
            raise _unavailable() from error
        raise
    except (ConnectionError, HTTPClientError) as error:  # timeouts and resets, after retries
        raise _unavailable() from error


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(Problem("The database is busy; retry shortly"), headers={"Retry-After": "1"})


def _is_cancelled(error: ClientError) -> bool:
    return error.response["Error"]["Code"] in ("TransactionCanceledException", "ConditionalCheckFailedException")


def _cancellation_reasons(error: ClientError) -> set[str]:
    """The codes of a cancelled transaction's reasons ('None' for the items that were fine)."""
    return {reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])}


def _backoff(attempt: int) -> None:
    """Full jitter before retrying a write that lost a race: spreads the racing writers apart."""
    time.sleep(random.uniform(0, 0.02 * 2**attempt))
