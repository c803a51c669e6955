"""The DynamoDB repository: the only code that knows keys, indexes and expressions.

- keys: the key design and how records map to items
- buckets: the pure time maths of the count buckets
- dynamo: calls, error translation and the retry-on-conflict helper
- accounts: users, API keys, websites and what conversions reference
- conversions, listing: the conversions API; goals: the goals API
- statistics: counts per interval, from the count buckets only
- counting: counts from the stream; cascade: what a goal's move or deletion does to its conversions
- importer: seed files and migrations; ratelimit: the per-key counter
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conversions_core.repository.accounts import Accounts
from conversions_core.repository.cascade import Cascade
from conversions_core.repository.conversions import Conversions
from conversions_core.repository.counting import Counter
from conversions_core.repository.dynamo import Table
from conversions_core.repository.goals import Goals
from conversions_core.repository.importer import Importer
from conversions_core.repository.statistics import Statistics

__all__ = ["Repository"]


@dataclass(frozen=True)
class Repository:
    """The data table's parts, sharing one client."""

    accounts: Accounts
    conversions: Conversions
    goals: Goals
    counter: Counter
    cascade: Cascade
    importer: Importer
    statistics: Statistics

    @classmethod
    def build(
        cls, client: Any, table_name: str, clock: Callable[[], datetime] | None = None, retention_days: int = 0
    ) -> Repository:
        table = Table(client, table_name)
        accounts = Accounts(table)
        conversions = Conversions(table, accounts, clock, retention_days)
        goals, importer = Goals(table, accounts, clock), Importer(table, retention_days)
        return cls(accounts, conversions, goals, Counter(table), Cascade(table), importer, Statistics(conversions))
