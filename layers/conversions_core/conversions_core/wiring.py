"""Builds the repository and gate a handler module uses, once per Lambda container."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from conversions_core.auth import Gate
from conversions_core.repository import Repository
from conversions_core.repository.dynamo import Table
from conversions_core.repository.ratelimit import RateLimitCounter
from conversions_core.settings import Settings


def dynamodb_client(timeout_seconds: float = 3) -> Any:
    """A DynamoDB client whose standard retry mode backs off on throttling, 5xx and timeouts
    (the repository turns what outlasts the retries into a 503)."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
    )
    return boto3.client("dynamodb", config=config)


@dataclass(frozen=True)
class Services:
    settings: Settings
    repository: Repository
    gate: Gate
    client: Any


def build_services(settings: Settings | None = None, client: Any = None) -> Services:
    settings = settings or Settings.from_env()
    client = client or dynamodb_client(settings.dynamodb_timeout_seconds)
    repository = Repository.build(client, settings.data_table_name, retention_days=settings.retention_days)
    counter = RateLimitCounter(Table(client, settings.rate_limit_table_name))
    gate = Gate(repository.accounts, counter, settings.default_rate_limit_per_minute)
    return Services(settings, repository, gate, client)
