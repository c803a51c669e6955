"""The DynamoDB repository: the only code that knows keys, indexes and expressions.

- keys: the key design and how records map to items
- buckets: the pure time maths of the count buckets
- dynamo: calls, error translation and the retry-on-conflict helper
- accounts: users, API keys, websites, goals and what conversions reference
- conversions, listing: the conversions API; counting: counts from the stream
- importer: seed files and migrations; ratelimit: the per-key counter
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conversions_core.repository.accounts import Accounts
from conversions_core.repository.conversions import Conversions
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table
from conversions_core.repository.importer import Importer

__all__ = ["Repository"]


@dataclass(frozen=True)
class Repository:
    """The data table's parts, sharing one client."""

    accounts: Accounts
    conversions: Conversions
    counter: Counter
    importer: Importer

    @classmethod
    def build(
        cls, client: Any, table_name: str, clock: Callable[[], datetime] | None = None, retention_days: int = 0
    ) -> Repository:
        table = Table(client, table_name)
        accounts = Accounts(table)
        return cls(accounts, Conversions(table, accounts, clock, retention_days), Counter(table), Importer(table))
