"""The clients and repositories a function uses, built once per Lambda container."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from conversions_core.auth import Gate
from conversions_core.idempotency import OnceOnly
from conversions_core.repository import Repository
from conversions_core.repository.dynamo import Deadline, Table, deadline_of, dynamodb_client
from conversions_core.repository.ratelimit import RateLimitCounter
from conversions_core.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    client: Any
    repository: Repository
    gate: Gate

    @classmethod
    def from_env(cls, settings: Settings | None = None, client: Any = None) -> Services:
        settings = settings or Settings.from_env()
        client = client or dynamodb_client(settings.dynamodb_timeout_seconds)
        repository = Repository.build(client, settings.data_table_name, retention_days=settings.retention_days)
        counter = RateLimitCounter(Table(client, settings.rate_limit_table_name))
        return cls(
            settings, client, repository, Gate(repository.accounts, counter, settings.default_rate_limit_per_minute)
        )

    @property
    def deadline(self) -> Deadline:
        """When the current invocation must answer by; its DynamoDB retries keep to it."""
        return deadline_of(self.client)

    @cached_property
    def cursor_key(self) -> bytes:
        """The changes feed's cursor key (only the feed's function asks, at init): CURSOR_KEY, or
        the deployment's secret."""
        if self.settings.cursor_key:
            return self.settings.cursor_key.encode()
        if not self.settings.cursor_secret_arn:
            raise RuntimeError("set CURSOR_KEY or CURSOR_SECRET_ARN: the changes feed signs its cursors")
        import boto3

        secret = boto3.client("secretsmanager").get_secret_value(SecretId=self.settings.cursor_secret_arn)
        return str(secret["SecretString"]).encode()

    @cached_property
    def once(self) -> OnceOnly:
        """Idempotent creates (only the create function uses it)."""
        return OnceOnly(self.client, self.settings.idempotency_table_name)
