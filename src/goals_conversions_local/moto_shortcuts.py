"""Shortcuts through moto's DynamoDB for the embedded database: the work moto repeats on every
request, done once or not at all, with moto's own code as the fallback for anything unusual.
Each shortcut is checked against moto's answer in tests/test_embedded.py. They reach into moto
5.2.5's internals (pinned): a moto upgrade must pass those tests again. Local only."""

from __future__ import annotations

import copy
import functools
import json
import re
from decimal import Decimal
from typing import Any


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """TransactWriteItems as DynamoDB applies it: every condition checked against the table as it
    is, then every write applied. moto instead deep-copies each table the transaction touches to
    roll back, which costs the whole table on every call; here only the items written are kept,
    for the rare write that fails half-way (a validation error)."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    planned, reasons, seen = [], [], set()
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        kind, operation = next(iter(entry.items()))
        table = self.get_table(operation["TableName"])
        if kind == "Put":
            key = {name: operation["Item"][name] for name in (table.hash_key_attr, table.range_key_attr) if name}
        else:
            key = operation["Key"]
        identity = (table.name, str(sorted(key.items())))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        current = self.get_item(table.name, key)
        condition = operation.get("ConditionExpression")
        names, values = operation.get("ExpressionAttributeNames"), operation.get("ExpressionAttributeValues")
        holds = _simple_condition(current, condition, names, values) if condition else True
        if holds is None:
            holds = get_filter_expression(condition, names, values).expr(current)
        if not holds:
            old = None
            if operation.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
        else:
            reasons.append((None, None, None))
        planned.append((kind, operation, table, key, current))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    streams = {table.name: len(table.stream_shard.items) for _, _, table, _, _ in planned if table.stream_shard}
    undo = []
    try:
        for kind, operation, table, key, current in planned:  # no two of them write one item
            previous = copy.deepcopy(current.to_json()["Attributes"]) if current is not None else None
            undo.append((table, key, previous))
            names, values = operation.get("ExpressionAttributeNames"), operation.get("ExpressionAttributeValues")
            if kind == "Put":
                self.put_item(table.name, operation["Item"])
            elif kind == "Delete":
                self.delete_item(table.name, key)
            elif kind == "Update":
                attributes = _simple_update(current, key, operation)
                if attributes is None:
                    self.update_item(table.name, key, operation["UpdateExpression"], names, values)
                else:
                    self.put_item(table.name, attributes)
    except Exception:
        for table, key, previous in reversed(undo):
            if previous is None:
                self.delete_item(table.name, key)
            else:
                self.put_item(table.name, previous)
        for table, _, _ in undo:
            if table.stream_shard:
                del table.stream_shard.items[streams[table.name] :]
        raise


_NAME, _VALUE = r"(#?[A-Za-z_][A-Za-z0-9_]*)", r"(:[A-Za-z0-9_]+)"
_CLAUSE = re.compile(rf"(ADD|SET) ({_NAME}(?: = | ){_VALUE}(?:, {_NAME}(?: = | ){_VALUE})*)(?: |$)")
_ACTION = re.compile(rf"{_NAME}( = | ){_VALUE}")


def _simple_update(current: Any, key: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    """The item after an update made only of `ADD name :value` (numbers, string sets) and
    `SET name = :value` actions, or None for any other expression (then moto applies it).
    moto parses and validates every expression anew, which makes the counting function's
    transactions of up to 100 updates the slowest part of a local import."""
    expression = operation["UpdateExpression"]
    names = operation.get("ExpressionAttributeNames") or {}
    values = operation.get("ExpressionAttributeValues") or {}
    attributes = copy.deepcopy(current.to_json()["Attributes"]) if current is not None else dict(key)
    position = 0
    while position < len(expression):
        clause = _CLAUSE.match(expression, position)
        if clause is None:
            return None
        position = clause.end()
        for name, separator, placeholder in _ACTION.findall(clause.group(2)):
            name, value = names.get(name, name), values.get(placeholder)
            if (
                value is None
                or name.startswith("#")
                or name in key
                or (separator == " = ") != (clause.group(1) == "SET")
            ):
                return None
            if clause.group(1) == "SET":
                attributes[name] = value
            elif not _add(attributes, name, value):
                return None
    return attributes


_TERM = re.compile(rf"(NOT contains\({_NAME}, {_VALUE}\)|attribute_not_exists\({_NAME}\)|attribute_exists\({_NAME}\))")


def _simple_condition(current: Any, condition: str, names: Any, values: Any) -> bool | None:
    """A condition made only of `attribute_exists(a)`, `attribute_not_exists(a)` and
    `NOT contains(set, :v)` terms joined by AND, evaluated; None for any other (moto evaluates
    it). The counting function's transactions hold up to a hundred such conditions (a marker's
    `attribute_not_exists`), which moto would parse anew on every transaction."""
    names, values = names or {}, values or {}
    attributes = current.to_json()["Attributes"] if current is not None else {}
    for term in condition.split(" AND "):
        match = _TERM.fullmatch(term)
        if match is None:
            return None
        contains_name, placeholder, not_exists, exists = match.group(2, 3, 4, 5)
        name = names.get(contains_name or not_exists or exists, contains_name or not_exists or exists)
        if name.startswith("#"):
            return None
        if exists or not_exists:
            if (name in attributes) != bool(exists):
                return False
            continue
        [(kind, members)] = attributes.get(name, {"SS": []}).items()
        value = values.get(placeholder)
        if kind != "SS" or value is None or "S" not in value:
            return None
        if value["S"] in members:
            return False
    return True


def _add(attributes: dict[str, Any], name: str, value: dict[str, Any]) -> bool:
    """ADD as DynamoDB applies it, for numbers and string sets; False for anything else."""
    [(kind, operand)] = value.items()
    existing = attributes.get(name)
    if existing is not None and next(iter(existing)) != kind:
        return False
    if kind == "N":
        total = Decimal(operand) + (Decimal(existing["N"]) if existing else 0)
        attributes[name] = {"N": str(total)}
    elif kind == "SS":
        attributes[name] = {"SS": sorted(set(operand) | set(existing["SS"] if existing else []))}
    else:
        return False
    return True


def install() -> None:
    """Put `_transact_write_items` in place of moto's, and spare moto's server the work it repeats
    on every request: listing its own package directory, and parsing the same expressions again
    to validate them (its validation only reads the parsed tree). Idempotent."""
    from moto import backends
    from moto.dynamodb import models, responses
    from moto.dynamodb.models import dynamo_type, table

    models.DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    dynamo_type.Item.__init__ = _new_item  # type: ignore[method-assign]
    table.dynamo_json_dump = repr  # only sizes a stream record, which moto over-estimates anyway
    if table.Table._validate_key_sizes is not _key_sizes:
        _key_sizes.moto = table.Table._validate_key_sizes  # type: ignore[attr-defined]
        table.Table._validate_key_sizes = _key_sizes  # type: ignore[method-assign]
    if not hasattr(backends.list_of_moto_modules, "cache_info"):
        modules = tuple(backends.list_of_moto_modules())
        backends.list_of_moto_modules = functools.lru_cache(maxsize=1)(lambda: modules)  # type: ignore[assignment]
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    DynamoDBStreamsHandler.get_records = _get_records  # type: ignore[method-assign]
    if responses.DynamoHandler.parse_parameters is not _parse_parameters:
        _parse_parameters.moto = responses.DynamoHandler.parse_parameters  # type: ignore[attr-defined]
        responses.DynamoHandler.parse_parameters = _parse_parameters  # type: ignore[method-assign]
    if not isinstance(responses.UpdateExpressionParser, _ParsedOnce):
        responses.UpdateExpressionParser = _ParsedOnce(responses.UpdateExpressionParser)  # type: ignore[misc]
        responses.create_condition_expression_parser = _validated_condition  # type: ignore[assignment]


def _new_item(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
    """moto's Item.__init__ with its 400 KB check made once, and only when a cheap bound says the
    item may be near it: moto sums the whole item again for each attribute it adds."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    self.hash_key, self.range_key = hash_key, range_key
    converted = {key: DynamoType(value) for key, value in attrs.items()}
    limit = 405000  # moto's; a character is at most 4 bytes, and repr() holds every name and value
    if 4 * len(repr(attrs)) > limit and sum(bytesize(key) + value.size() for key, value in converted.items()) > limit:
        raise ItemSizeTooLarge
    self.attrs = LimitedSizeDict(converted)  # dict.update: no check per attribute


def _key_sizes(self: Any, item_attrs: dict[str, Any]) -> None:
    """moto's check that key attributes fit their limits (2048 and 1024 bytes), left to moto only
    when a cheap bound says a key may not: moto wraps and sizes every key of every index."""
    for name in (*self.hash_key_names, *self.range_key_names):
        value = item_attrs.get(name)
        if value and 4 * len(repr(value)) > 1024:
            return _key_sizes.moto(self, item_attrs)  # type: ignore[attr-defined]
    return None


# The operations whose input, read against botocore's model, holds nothing but JSON's own types
# besides blobs (the attribute types B and BS): no timestamps, no other encodings.
_JSON_ONLY_ACTIONS = {
    "BatchGetItem", "BatchWriteItem", "DeleteItem", "GetItem", "PutItem", "Query", "Scan",
    "TransactGetItems", "TransactWriteItems", "UpdateItem",
}  # fmt: skip


def _parse_parameters(self: Any, request: Any) -> None:
    """moto's request parsing, which walks the JSON body against the operation's model to decode
    blobs and timestamps, skipped where there is none to decode: a data-plane call without a
    binary attribute is its JSON. The import's batch writes spend a tenth of their time there."""
    body = request.data
    if self._get_action() in _JSON_ONLY_ACTIONS and b'"B"' not in body and b'"BS"' not in body:
        self.params = json.loads(body) if body else {}
    else:
        _parse_parameters.moto(self, request)  # type: ignore[attr-defined]


def _get_records(self: Any) -> str:
    """GetRecords answered with its JSON as it is kept: moto's generic response serializer walks
    every attribute of every image against the model, which makes reading the stream of a large
    import (the `import` command against `serve`'s database) slower than writing it. A position
    before the oldest record kept (`serve`'s pump forgets what it consumed: embedded.trim_stream)
    is refused as DynamoDB refuses a trimmed one; moto would fail an assertion (a 500)."""
    from moto.core.exceptions import JsonRESTError

    iterator = self._get_param("ShardIterator")
    position = self.backend.shard_iterators[iterator]
    if position.sequence_number < position.stream_shard.starting_sequence_number:
        raise JsonRESTError("TrimmedDataAccessException", "The shard iterator points before the oldest record kept")
    result = self.backend.get_records(iterator, self._get_param("Limit") or 1000)
    return json.dumps(result, default=lambda moment: moment.timestamp())  # ApproximateCreationDateTime


class _ParsedOnce:
    """moto's UpdateExpressionParser with `make` remembered per expression, for validation only
    (moto's models module keeps its own, uncached reference: it rewrites the tree it applies)."""

    def __init__(self, parser: Any):
        self.make = functools.lru_cache(maxsize=4096)(parser.make)


def _validated_condition(expression: str | None, names: Any, values: Any) -> Any:
    """What moto's request validation reads of a parsed condition (the names and values it uses),
    remembered per expression, names and value placeholders: parsing reads nothing else."""
    return _parse_condition(expression, tuple(sorted((names or {}).items())), tuple(sorted(values or {})))


@functools.lru_cache(maxsize=4096)
def _parse_condition(expression: str | None, names: tuple[Any, ...], placeholders: tuple[str, ...]) -> Any:
    from moto.dynamodb.comparisons import create_condition_expression_parser

    parser = create_condition_expression_parser(expression, dict(names), dict.fromkeys(placeholders, {"S": ""}))
    parser.parse()
    return _ParsedCondition(tuple(parser.expr_attr_names_found), tuple(parser.expr_attr_values_found))


class _ParsedCondition:
    """A parsed condition's names and values, as fresh lists: moto's callers extend them."""

    def __init__(self, names: tuple[str, ...], values: tuple[str, ...]):
        self._names, self._values = names, values

    def parse(self) -> None:
        pass

    @property
    def expr_attr_names_found(self) -> list[str]:
        return list(self._names)

    @property
    def expr_attr_values_found(self) -> list[str]:
        return list(self._values)
