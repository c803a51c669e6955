"""The embedded DynamoDB: transactions without table copies that still roll back whole."""

import copy
import uuid

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models.table import Table

from goals_conversions_local import embedded

pytestmark = pytest.mark.moto_only(
    reason="checks the embedded server's shortcuts through moto's internals (moto_shortcuts) against moto's own answers"
)


@pytest.fixture
def two_tables(dynamodb):
    names = [f"Embedded{uuid.uuid4().hex[:8]}{n}" for n in range(2)]
    for name in names:
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    yield names
    for name in names:
        dynamodb.delete_table(TableName=name)


def _put(table: str, key: str) -> dict:
    return {"Put": {"TableName": table, "Item": {"pk": {"S": key}, "n": {"N": "1"}}}}


def _items(dynamodb, table: str) -> list[dict]:
    return sorted(dynamodb.scan(TableName=table, ConsistentRead=True)["Items"], key=lambda i: i["pk"]["S"])


def test_a_transaction_copies_no_table(dynamodb, two_tables, monkeypatch):
    """moto deep-copies each table a transaction writes, to roll back; the embedded database
    checks every condition first and keeps only the items it writes."""
    first, second = two_tables
    copied = []
    original = copy.deepcopy

    def counting(value, memo=None):
        if isinstance(value, Table):
            copied.append(value.name)
        return original(value, memo)

    monkeypatch.setattr(copy, "deepcopy", counting)
    actions = [_put(first, f"a{i}") for i in range(3)] + [_put(second, f"b{i}") for i in range(2)]
    dynamodb.transact_write_items(TransactItems=actions)
    assert copied == []
    assert len(_items(dynamodb, first)) == 3 and len(_items(dynamodb, second)) == 2


def test_a_write_that_fails_half_way_is_undone_with_its_stream_records(dynamodb):
    name = f"Embedded{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    dynamodb.put_item(TableName=name, Item={"pk": {"S": "text"}, "n": {"S": "not a number"}})
    before, stream_end = _items(dynamodb, name), embedded.stream_end(name)
    adding_to_text = {
        "Update": {
            "TableName": name,
            "Key": {"pk": {"S": "text"}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(TransactItems=[_put(name, "new"), adding_to_text])
    assert _items(dynamodb, name) == before
    assert embedded.stream_end(name) == stream_end
    dynamodb.delete_table(TableName=name)


def test_a_cancelled_transaction_leaves_every_table_as_it_was(dynamodb, two_tables):
    first, second = two_tables
    dynamodb.transact_write_items(TransactItems=[_put(first, "kept"), _put(second, "kept")])
    before = [_items(dynamodb, first), _items(dynamodb, second)]
    failing = {
        "Update": {
            "TableName": second,
            "Key": {"pk": {"S": "kept"}},
            "UpdateExpression": "SET n = :two",
            "ConditionExpression": "n = :zero",
            "ExpressionAttributeValues": {":two": {"N": "2"}, ":zero": {"N": "0"}},
        }
    }
    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(TransactItems=[_put(first, "new"), _put(second, "new"), failing])
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [_items(dynamodb, first), _items(dynamodb, second)] == before


UPDATES = [  # (expression, names, values, condition), each applied twice to the same item
    ("ADD #a0 :d0, #a1 :d1", {"#a0": "u", "#a1": "w1"}, {":d0": {"N": "3"}, ":d1": {"N": "-1"}}, None),
    (
        "ADD events :events SET expires_at = :expires",
        None,
        {":events": {"SS": ["e1", "e2"]}, ":expires": {"N": "9"}},
        None,
    ),
    ("SET #n = :v", {"#n": "name"}, {":v": {"S": "x"}}, "attribute_not_exists(pk)"),
    ("ADD events :events", None, {":events": {"SS": ["e3"]}, ":e0": {"S": "e3"}}, "NOT contains(events, :e0)"),
    ("SET n = n + :d", None, {":d": {"N": "2"}, ":e0": {"S": "e9"}}, "attribute_exists(n) AND NOT contains(s, :e0)"),
]


@pytest.mark.parametrize("expression, names, values, condition", UPDATES)
def test_a_transaction_updates_items_as_moto_would(dynamodb, two_tables, expression, names, values, condition):
    """The embedded database applies simple updates and conditions itself (moto would parse
    them on every call): each gives the item, and the refusals, moto's own UpdateItem gives."""
    table = two_tables[0]
    seed = {"n": {"N": "1"}, "s": {"SS": ["e0"]}}
    for key in ("moto", "embedded"):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": key}, **seed})
    update = {"TableName": table, "UpdateExpression": expression, "ExpressionAttributeValues": values}
    update |= {"ExpressionAttributeNames": names} if names else {}
    update |= {"ConditionExpression": condition} if condition else {}
    outcomes = {"moto": [], "embedded": []}
    for _ in range(2):
        try:
            dynamodb.update_item(Key={"pk": {"S": "moto"}}, **update)
            outcomes["moto"].append("applied")
        except ClientError as error:
            outcomes["moto"].append(error.response["Error"]["Code"])
        try:
            dynamodb.transact_write_items(TransactItems=[{"Update": {"Key": {"pk": {"S": "embedded"}}, **update}}])
            outcomes["embedded"].append("applied")
        except ClientError as error:
            reasons = [r["Code"] for r in error.response.get("CancellationReasons", []) if r["Code"] != "None"]
            outcomes["embedded"].append(
                "ConditionalCheckFailedException" if reasons == ["ConditionalCheckFailed"] else reasons
            )
    assert outcomes["embedded"] == outcomes["moto"]
    items = {i.pop("pk")["S"]: i for i in _items(dynamodb, table)}
    for item in items.values():
        for attribute in item.values():
            if "SS" in attribute:
                attribute["SS"].sort()
    assert items["embedded"] == items["moto"]


@pytest.mark.parametrize(
    "key, fits", [("x" * 2048, True), ("x" * 2049, False), ("é" * 1024, True), ("é" * 1025, False)]
)
def test_a_key_over_its_limit_is_refused_as_moto_would(dynamodb, two_tables, key, fits):
    """The embedded database skips moto's key sizing only where a key surely fits (2048 bytes)."""
    table = two_tables[0]
    if fits:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": key}})
        assert _items(dynamodb, table)[0]["pk"]["S"] == key
    else:
        with pytest.raises(ClientError, match="Size of hashkey"):
            dynamodb.put_item(TableName=table, Item={"pk": {"S": key}})
        assert _items(dynamodb, table) == []
