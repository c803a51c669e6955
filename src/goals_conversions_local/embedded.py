"""The embedded DynamoDB (moto's server, in-process) and table creation from template.yaml."""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import threading
import time
from typing import Any

import boto3

from goals_conversions_local import moto_shortcuts
from goals_conversions_local.template import Template

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    # The embedded database answers one request at a time and moto's transactions copy the
    # table: give it far longer than DynamoDB's milliseconds before the client retries.
    "DYNAMODB_TIMEOUT_SECONDS": "60",
    # The changes feed's cursors are signed with this key locally (deployed: a generated secret).
    "CURSOR_KEY": "local-changes-cursor-key",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def use_local_credentials() -> None:
    """Dummy credentials and a region, unless the environment already has them."""
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)


# The endpoints of the embedded servers this process started (they all serve the same tables).
_SERVED: set[str] = set()
# Items that `expire_items` deleted on another engine, as (table, keys, old image) in canonical
# JSON: the stream pump hands their REMOVE records over as TTL deletions.
TTL_DELETIONS: set[tuple[str, str, str]] = set()


def serves_here(endpoint: str | None) -> bool:
    """Whether `endpoint` is an embedded server of this process (its tables can be read in-process)."""
    return endpoint is not None and endpoint.rstrip("/") in _SERVED


def ttl_deletion_key(table_name: str, keys: dict[str, Any], old_image: dict[str, Any]) -> tuple[str, str, str]:
    return table_name, json.dumps(keys, sort_keys=True), json.dumps(old_image, sort_keys=True)


# moto's backends are not thread-safe; DynamoDB applies each call atomically, so running the
# calls one after another (on every embedded server of this process) is a faithful stand-in.
REQUEST_LOCK = threading.RLock()


class _OneRequestAtATime:
    """WSGI wrapper that runs moto's requests one at a time."""

    def __init__(self, app: Any):
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with REQUEST_LOCK:
            return list(self._app(environ, start_response))


def start_embedded_dynamodb(
    host: str = "127.0.0.1", port: int | None = None, conflict_hold_seconds: float | None = None
) -> tuple[Any, str]:
    """Start moto's server in a thread of this process; returns (server, endpoint URL).

    Every embedded server of the process serves the same tables. With `conflict_hold_seconds`,
    this one applies DynamoDB's transaction conflicts (see conflicts.py); its `conflict_rule`
    attribute then holds the middleware, with the log of writes.
    """
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    moto_shortcuts.install()
    # moto keeps every item as a tree of Python objects, and the collector's full passes walk
    # them all: with its default thresholds a 100,000-conversion import spends a tenth of its
    # time there. Fewer passes, and none over what is already loaded.
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app: Any = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    rule = None
    if conflict_hold_seconds is not None:
        from goals_conversions_local.conflicts import ConflictRule

        app = rule = ConflictRule(app, conflict_hold_seconds)
    server = make_server(host, port or 0, app, threaded=True, request_handler=MotoRequestHandler)
    server.conflict_rule = rule  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://{host}:{server.server_address[1]}"
    _SERVED.add(endpoint)
    return server, endpoint


def _moto_table(table_name: str) -> tuple[Any, Any]:
    """(moto's DynamoDB backend, the table) behind the embedded servers of this process."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][os.environ.get("AWS_DEFAULT_REGION", "us-east-1")]
    return backend, backend.get_table(table_name)


def expire_items(table_name: str, now: float | None = None) -> int:
    """What DynamoDB's TTL does and neither moto nor DynamoDB Local does here: delete the items
    whose TTL attribute has passed, their stream records naming dynamodb.amazonaws.com as AWS's
    do. (moto never expires items; DynamoDB Local never expires those of a table with a global
    secondary index, as the data table has.) Returns how many were deleted. For tests."""
    now = time.time() if now is None else now
    if not serves_here(os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")):
        return _expire_through_the_api(table_name, now)
    with REQUEST_LOCK:
        backend, table = _moto_table(table_name)
        if table.ttl.get("TimeToLiveStatus") != "ENABLED":
            return 0
        attribute = table.ttl["AttributeName"]
        expired = [i for i in table.all_items() if attribute in i.attrs and float(i.attrs[attribute].value) < now]
        for item in expired:
            key = {table.hash_key_attr: item.attrs[table.hash_key_attr].to_json()}
            if table.range_key_attr:
                key[table.range_key_attr] = item.attrs[table.range_key_attr].to_json()
            backend.delete_item(table_name, key)
            if table.stream_shard and table.stream_shard.items:
                record = table.stream_shard.items[-1].record
                record["userIdentity"] = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
        return len(expired)


def _expire_through_the_api(table_name: str, now: float) -> int:
    """`expire_items` on another engine: each expired item deleted (unless it changed meanwhile),
    and remembered with its image so that the stream pump hands its REMOVE record over as the
    TTL deletion it stands for."""
    client = boto3.client("dynamodb")
    ttl = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") != "ENABLED":
        return 0
    attribute = ttl["AttributeName"]
    key_names = [k["AttributeName"] for k in client.describe_table(TableName=table_name)["Table"]["KeySchema"]]
    deleted = 0
    pages = client.get_paginator("scan").paginate(
        TableName=table_name,
        ConsistentRead=True,
        FilterExpression="#ttl < :now",
        ExpressionAttributeNames={"#ttl": attribute},
        ExpressionAttributeValues={":now": {"N": str(now)}},
    )
    for item in (item for page in pages for item in page["Items"]):
        keys = {name: item[name] for name in key_names}
        TTL_DELETIONS.add(ttl_deletion_key(table_name, keys, item))  # before: a pump may read it at once
        try:
            client.delete_item(
                TableName=table_name,
                Key=keys,
                ConditionExpression="#ttl = :seen",
                ExpressionAttributeNames={"#ttl": attribute},
                ExpressionAttributeValues={":seen": item[attribute]},
            )
            deleted += 1
        except client.exceptions.ConditionalCheckFailedException:
            TTL_DELETIONS.discard(ttl_deletion_key(table_name, keys, item))
    return deleted


def trim_stream(table_name: str, through_sequence: str) -> None:
    """Forget the embedded stream's records up to `through_sequence` (consumed): moto keeps every
    record for ever, which grows its memory with every write. Only for the embedded database."""
    with REQUEST_LOCK:
        _, table = _moto_table(table_name)
        shard = table.stream_shard
        if shard is None:
            return
        count = int(through_sequence) + 1 - shard.starting_sequence_number
        if count > 0:
            del shard.items[:count]
            shard.starting_sequence_number += count


ENGINES = ("embedded", "dynamodb-local")


def dynamodb_endpoint(engine: str = "embedded") -> tuple[Any, str]:
    """The database of the local tools, its endpoint exported to the environment: with the
    `dynamodb-local` engine, a DynamoDB Local started for this process (stopped when it exits;
    one database for every access key id, so that `import` reaches it); else
    AWS_ENDPOINT_URL_DYNAMODB when set, else a new embedded server. Returns (the embedded server
    or the DynamoDB Local process, or None for an endpoint of the environment; the endpoint)."""
    use_local_credentials()
    if engine == "dynamodb-local":
        import atexit

        from goals_conversions_local.dynamodb_local import DynamoDBLocal

        local = DynamoDBLocal(shared=True)
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint = local.start()
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODBSTREAMS", None)  # its streams are at the same endpoint
        atexit.register(local.stop)
        local_sqs()
        return local, endpoint
    configured = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    if configured:
        local_sqs()
        return None, configured
    server, endpoint = start_embedded_dynamodb()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    os.environ.setdefault("AWS_ENDPOINT_URL_SQS", endpoint)  # moto's server serves SQS too
    os.environ.setdefault("AWS_ENDPOINT_URL_EVENTBRIDGE", endpoint)  # and EventBridge
    return server, endpoint


def local_sqs() -> str:
    """AWS_ENDPOINT_URL_SQS, or when unset an embedded moto server for the queues alone (exported):
    DynamoDB Local serves no SQS, and the counting function sets unreadable records aside in a
    queue (without one it would refuse them for ever)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SQS")
    if not endpoint:
        _, endpoint = start_embedded_dynamodb()
        os.environ["AWS_ENDPOINT_URL_SQS"] = endpoint
        os.environ.setdefault("AWS_ENDPOINT_URL_EVENTBRIDGE", endpoint)  # the conversion events too
    return endpoint


def ensure_queues(template: Template) -> list[str]:
    """Create the template's queues at AWS_ENDPOINT_URL_SQS (an embedded server, see `local_sqs`);
    none when no SQS endpoint is set."""
    if not os.environ.get("AWS_ENDPOINT_URL_SQS"):
        return []
    client = boto3.client("sqs")
    return [client.create_queue(QueueName=name)["QueueUrl"] for name in template.queues()]


# Where asked (`serve --events`, the events tests), every event on the template's buses is also
# sent to this queue (a rule per bus). Only then: moto's SQS walks the whole queue on each message
# sent, so a queue nobody reads makes every PutEvents slower than the last (a 5,000-conversion
# seed took 305 s to count instead of 20).
LOCAL_EVENTS_QUEUE = "ConversionEventsLocal"
LOCAL_EVENTS_RULE = "local-every-conversion-event"


def ensure_event_buses(template: Template) -> bool:
    """Create the template's buses at AWS_ENDPOINT_URL_EVENTBRIDGE (the embedded server); whether
    events are on. Off where no local endpoint serves EventBridge: the functions then publish
    nothing."""
    if not os.environ.get("AWS_ENDPOINT_URL_EVENTBRIDGE"):
        os.environ["EVENT_BUS_NAME"] = ""
        return False
    events = boto3.client("events")
    existing = {bus["Name"] for bus in events.list_event_buses()["EventBuses"]}
    for name in template.event_buses():
        if name not in existing:
            events.create_event_bus(Name=name)
    return True


def deliver_events_to_queue(template: Template) -> str:
    """A rule on each of the template's buses (made by `ensure_event_buses`) sending its
    conversion events to LOCAL_EVENTS_QUEUE; returns the queue's URL. Whoever calls it reads the
    queue (`received_events`) or stops the delivery (`stop_delivering_events`)."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue = sqs.create_queue(QueueName=LOCAL_EVENTS_QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = json.dumps({"source": ["goals-conversions"]})
    for name in template.event_buses():
        events.put_rule(Name=LOCAL_EVENTS_RULE, EventBusName=name, EventPattern=pattern)
        events.put_targets(Rule=LOCAL_EVENTS_RULE, EventBusName=name, Targets=[{"Id": "local-queue", "Arn": arn}])
    return queue


def stop_delivering_events(template: Template) -> None:
    events = boto3.client("events")
    for name in template.event_buses():
        events.remove_targets(Rule=LOCAL_EVENTS_RULE, EventBusName=name, Ids=["local-queue"])
        events.delete_rule(Name=LOCAL_EVENTS_RULE, EventBusName=name)
    sqs = boto3.client("sqs")
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=LOCAL_EVENTS_QUEUE)["QueueUrl"])


def received_events(queue_url: str, wait_seconds: int = 0) -> list[dict[str, Any]]:
    """The events the local queue holds (taken off it), as EventBridge delivers them."""
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds).get(
            "Messages", []
        )
        if not messages:
            return found
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        wait_seconds = 0


def ensure_tables(template: Template, client: Any = None) -> list[str]:
    """Create the template's tables where missing; returns the names created."""
    client = client or boto3.client("dynamodb")
    existing = set(client.list_tables()["TableNames"])
    created = []
    for name, arguments in template.tables().items():
        if name in existing:
            continue
        client.create_table(**arguments)
        created.append(name)
    for name, attribute in template.ttl_attributes().items():
        if name in created:
            client.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
            )
    return created


def read_stream(table_name: str, after: str | None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` records of the embedded stream after sequence number `after` (from the
    oldest kept when None), as GetRecords returns them, without the HTTP round trip: moto's
    response serializer makes GetRecords the slowest call of a local import."""
    with REQUEST_LOCK:
        _, table = _moto_table(table_name)
        shard = table.stream_shard
        if shard is None:
            return []
        start = shard.starting_sequence_number if after is None else int(after) + 1
        return shard.get(max(start, shard.starting_sequence_number), limit)  # the caller copies what it changes


def stream_end(table_name: str) -> int | None:
    """The sequence number the embedded stream's next record will get (None: no stream)."""
    with REQUEST_LOCK:
        _, table = _moto_table(table_name)
        shard = table.stream_shard
        return None if shard is None else shard.starting_sequence_number + len(shard.items)
