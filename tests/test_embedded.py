"""The embedded DynamoDB: transactions without table copies that still roll back whole."""

import copy
import uuid

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models.table import Table

from goals_conversions_local import embedded


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
