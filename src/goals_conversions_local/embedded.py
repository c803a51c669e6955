"""The embedded DynamoDB (moto's server, in-process) and table creation from template.yaml."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import boto3

from goals_conversions_local.template import Template

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    # The embedded database answers one request at a time and moto's transactions copy the
    # table: give it far longer than DynamoDB's milliseconds before the client retries.
    "DYNAMODB_TIMEOUT_SECONDS": "60",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def use_local_credentials() -> None:
    """Dummy credentials and a region, unless the environment already has them."""
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)


class _OneRequestAtATime:
    """WSGI wrapper that runs moto's requests one at a time.

    moto's backends are not thread-safe (a transaction deep-copies the table while another
    request may be writing to it); DynamoDB itself applies each write atomically, so running
    requests one after another is a faithful stand-in under concurrent clients.
    """

    def __init__(self, app: Any):
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


_transaction = threading.local()


class _OneBackupPerTable:
    """Stands in for the `copy` module inside moto.dynamodb.models.

    Before applying a TransactWriteItems, moto deep-copies a table once per action on it (to
    roll back on a cancellation): 11 copies of the whole table for one create. They are taken
    before any action is applied, so they are identical: during a transaction this hands back
    the first copy of each table, the same rollback for a tenth of the work.
    """

    def __init__(self, original: Any, table_type: type):
        self.original = original
        self.table_type = table_type

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        backups = getattr(_transaction, "backups", None)
        if backups is None or not isinstance(value, self.table_type):
            return self.original.deepcopy(value, memo)
        if id(value) not in backups:
            backups[id(value)] = self.original.deepcopy(value, memo)
        return backups[id(value)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def _backing_up_each_table_once(transact_write_items: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _transaction.backups = {}
        try:
            return transact_write_items(*args, **kwargs)
        finally:
            _transaction.backups = None

    wrapper.backs_up_once = True  # type: ignore[attr-defined]
    return wrapper


def back_up_each_table_once() -> None:
    """Install `_OneBackupPerTable` in moto (idempotent)."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "backs_up_once", False):
        return
    models.copy = _OneBackupPerTable(models.copy, Table)  # type: ignore[attr-defined]
    backend.transact_write_items = _backing_up_each_table_once(backend.transact_write_items)  # type: ignore[method-assign]


def start_embedded_dynamodb(host: str = "127.0.0.1", port: int | None = None) -> tuple[Any, str]:
    """Start moto's server in a thread of this process; returns (server, endpoint URL)."""
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    back_up_each_table_once()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port or 0, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def dynamodb_endpoint() -> tuple[Any, str]:
    """AWS_ENDPOINT_URL_DYNAMODB when set, else a new embedded server (exported to the env)."""
    use_local_credentials()
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    if endpoint:
        return None, endpoint
    server, endpoint = start_embedded_dynamodb()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    return server, endpoint


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
