"""Builds the repository and gate a handler module uses, once per Lambda container."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from conversions_core.auth import Gate
from conversions_core.repository import RateLimitCounter, Repository
from conversions_core.settings import Settings

# Standard retry mode backs off on throttling and 5xx before the repository gives up with a 503.
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=2, read_timeout=5)


def dynamodb_client() -> Any:
    return boto3.client("dynamodb", config=_CLIENT_CONFIG)


@dataclass(frozen=True)
class Services:
    settings: Settings
    repository: Repository
    gate: Gate
    client: Any


def build_services(settings: Settings | None = None, client: Any = None) -> Services:
    settings = settings or Settings.from_env()
    client = client or dynamodb_client()
    repository = Repository(client, settings.data_table_name)
    counter = RateLimitCounter(client, settings.rate_limit_table_name)
    gate = Gate(repository, counter, settings.default_rate_limit_per_minute)
    return Services(settings, repository, gate, client)
