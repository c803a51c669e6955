"""Stream records as the engines write them and as AWS delivers them.

DynamoDB's TTL deletes an expired item itself: on AWS its record reaches the function as
eventName REMOVE with userIdentity {type: Service, principalId: dynamodb.amazonaws.com}
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/time-to-live-ttl-streams.html).
DynamoDB Local writes its own TTL deletions as eventName UNKNOWN_TO_SDK_VERSION (a name the SDK
does not know) without userIdentity, and moto never expires anything: the local stream pump hands
both engines' TTL deletions over in AWS's shape, and the counting function reads only that shape.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from tables import audit, own_tables

from conftest import Tenant, counting_pump
from conversions_core import conversion_service
from conversions_core.auth import hash_api_key
from conversions_core.failures import FailuresQueue
from conversions_core.repository import Repository
from conversions_core.repository.cascade import Cascade
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table
from conversions_core.repository.keys import conversion_key
from conversions_core.repository.stream import read_batch
from functions.count_conversions.app import count_batch
from goals_conversions_local.streams import lambda_record

ENVIRONMENT = own_tables(boto3.client("dynamodb"), "Records")
TABLE = ENVIRONMENT["DATA_TABLE_NAME"]
ARN = f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/stream/2026-11-01T00:00:00.000"
TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


@pytest.fixture(scope="module")
def client():
    return boto3.client("dynamodb")


@pytest.fixture(scope="module")
def repository(client) -> Repository:
    return Repository.build(client, TABLE)


def aws_ttl_record(old_image: dict[str, Any], sequence: str = "400000000000000000001") -> dict[str, Any]:
    """A TTL deletion as Lambda delivers it on AWS: a 36-character event id, a 21-digit sequence
    number, eventVersion 1.1, and the service as the principal."""
    keys = {name: old_image[name] for name in ("pk", "sk")}
    return {
        "eventID": str(uuid.uuid4()),
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime.now(UTC).timestamp(),
            "Keys": keys,
            "OldImage": old_image,
            "SequenceNumber": sequence,
            "SizeBytes": 412,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "userIdentity": TTL_IDENTITY,
        "eventSourceARN": ARN,
    }


def test_a_ttl_deletion_as_aws_delivers_it_removes_the_conversion_from_lists_and_counts(repository, client):
    tenant = Tenant(repository)
    user = repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    pump = counting_pump(TABLE)
    made = [conversion_service.create(repository, user, tenant.goal_id, {}) for _ in range(3)]
    pump.drain()
    assert audit(repository, client, TABLE, tenant)["user"] == 3
    old_image = client.get_item(TableName=TABLE, Key=boto3_key(made[0].id), ConsistentRead=True)["Item"]
    client.delete_item(TableName=TABLE, Key=boto3_key(made[0].id))  # what TTL does to the item itself
    pump.invoke = lambda event: {"batchItemFailures": []}  # the engine's own record of it is not AWS's
    pump.drain()

    table = Table(client, TABLE)
    event = {"Records": [aws_ttl_record(old_image)]}
    [record] = read_batch(event["Records"]).records
    assert record.expired and record.old.id == made[0].id and record.new is None
    assert count_batch(event, Counter(table), Cascade(table), FailuresQueue(None)) == {"batchItemFailures": []}
    assert audit(repository, client, TABLE, tenant)["user"] == 2  # its listed item went too


def boto3_key(conversion_id: int) -> dict[str, Any]:
    return {name: {"S": value} for name, value in conversion_key(conversion_id).items()}


def test_a_deletion_by_a_caller_is_not_read_as_ttl(repository, client):
    tenant = Tenant(repository)
    user = repository.accounts.user_by_key_hash(hash_api_key(tenant.api_key))
    made = conversion_service.create(repository, user, tenant.goal_id, {})
    image = client.get_item(TableName=TABLE, Key=boto3_key(made.id), ConsistentRead=True)["Item"]
    by_caller = aws_ttl_record(image)
    del by_caller["userIdentity"]
    other_service = copy.deepcopy(aws_ttl_record(image))
    other_service["userIdentity"]["principalId"] = "other.amazonaws.com"
    read = read_batch([by_caller, other_service]).records
    assert [r.expired for r in read] == [False, False]


def getrecords_record(event_name: str, old_image: dict[str, Any], identity: dict[str, str] | None) -> dict[str, Any]:
    """A record as GetRecords returns it through boto3 (before Lambda's event source mapping)."""
    record: dict[str, Any] = {
        "eventID": str(uuid.uuid4()),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime.now(UTC),
            "Keys": {"pk": old_image["pk"], "sk": old_image["sk"]},
            "OldImage": old_image,
            "SequenceNumber": "000000000000000000123",
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    if identity is not None:
        record["userIdentity"] = identity
    return record


IMAGE = {"pk": {"S": "CONVERSION#1"}, "sk": {"S": "CONVERSION"}, "id": {"N": "1"}}


def test_the_local_pump_hands_dynamodb_locals_ttl_deletion_over_as_aws_does():
    """DynamoDB Local's own TTL record: eventName UNKNOWN_TO_SDK_VERSION (boto3 passes the wire's
    unknown name through), no userIdentity."""
    delivered = lambda_record(getrecords_record("UNKNOWN_TO_SDK_VERSION", IMAGE, None), ARN, TABLE)
    assert delivered["eventName"] == "REMOVE" and delivered["userIdentity"] == TTL_IDENTITY
    assert delivered["eventSourceARN"] == ARN


def test_the_local_pump_passes_a_service_identity_on_in_lambdas_spelling():
    service = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    delivered = lambda_record(getrecords_record("REMOVE", IMAGE, service), ARN, TABLE)
    assert delivered["eventName"] == "REMOVE" and delivered["userIdentity"] == TTL_IDENTITY


def test_the_local_pump_leaves_a_callers_deletion_as_it_is():
    delivered = lambda_record(getrecords_record("REMOVE", IMAGE, None), ARN, TABLE)
    assert delivered["eventName"] == "REMOVE" and "userIdentity" not in delivered
