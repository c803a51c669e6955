"""One settings object, read from the environment that template.yaml sets."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    data_table_name: str
    rate_limit_table_name: str
    idempotency_table_name: str
    default_rate_limit_per_minute: int
    public_base_url: str | None
    dynamodb_timeout_seconds: float = 2
    retention_days: int = 0
    changes_retention_days: int = 7
    # The changes feed's cursor key: CURSOR_KEY itself (local tools), else the Secrets Manager
    # secret the template creates (read once, at init).
    cursor_key: str | None = None
    cursor_secret_arn: str | None = None
    event_bus_name: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            data_table_name=os.environ.get("DATA_TABLE_NAME", "DataTable"),
            rate_limit_table_name=os.environ.get("RATE_LIMIT_TABLE_NAME", "RateLimitTable"),
            idempotency_table_name=os.environ.get("IDEMPOTENCY_TABLE_NAME", "IdempotencyTable"),
            default_rate_limit_per_minute=int(os.environ.get("DEFAULT_RATE_LIMIT_PER_MINUTE", "60")),
            public_base_url=os.environ.get("PUBLIC_BASE_URL") or None,
            dynamodb_timeout_seconds=float(os.environ.get("DYNAMODB_TIMEOUT_SECONDS", "2")),
            retention_days=int(os.environ.get("RETENTION_DAYS", "0")),
            changes_retention_days=int(os.environ.get("CHANGES_RETENTION_DAYS", "7")),
            cursor_key=os.environ.get("CURSOR_KEY") or None,
            cursor_secret_arn=os.environ.get("CURSOR_SECRET_ARN") or None,
            event_bus_name=os.environ.get("EVENT_BUS_NAME") or None,
        )
