"""The embedded DynamoDB (moto's server, in-process) and table creation from template.yaml."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import boto3

from goals_conversions_local.template import Template

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def use_local_credentials() -> None:
    """Dummy credentials and a region, unless the environment already has them."""
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)


def start_embedded_dynamodb(host: str = "127.0.0.1", port: int | None = None) -> tuple[Any, str]:
    """Start moto's server in this process; returns (server, endpoint URL)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = port or free_port(host)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return server, f"http://{host}:{port}"


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
