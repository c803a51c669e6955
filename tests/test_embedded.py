"""The embedded DynamoDB backs up each table once per transaction and still rolls back whole."""

import uuid

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb import models as moto_models
from moto.dynamodb.models.table import Table


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


def test_a_transaction_copies_each_table_it_writes_once(dynamodb, two_tables, monkeypatch):
    first, second = two_tables
    copies = []
    original = moto_models.copy.original

    class Counting:
        @staticmethod
        def deepcopy(value, memo=None):
            if isinstance(value, Table):
                copies.append(value.name)
            return original.deepcopy(value, memo)

    monkeypatch.setattr(moto_models.copy, "original", Counting)
    actions = [_put(first, f"a{i}") for i in range(3)] + [_put(second, f"b{i}") for i in range(2)]
    dynamodb.transact_write_items(TransactItems=actions)
    assert sorted(copies) == sorted([first, second])
    assert len(_items(dynamodb, first)) == 3 and len(_items(dynamodb, second)) == 2


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
