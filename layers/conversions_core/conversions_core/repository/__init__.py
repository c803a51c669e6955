"""The DynamoDB repository: the only code that knows keys, indexes and expressions.

- keys: the key design and how records map to items
- buckets: the pure time maths of the count buckets
- dynamo: calls, error translation and the retry-on-conflict helper
- accounts: users, API keys, websites and what conversions reference
- conversions, listing: the conversions API; goals: the goals API
- statistics: counts per interval, from the count buckets only
- changes: the changes feed (written with the counts, read by the feed's endpoint)
- counting: counts from the stream; cascade: what a goal's move or deletion does to its conversions
- importer: seed files and migrations; ratelimit: the per-key counter
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from conversions_core.repository.dynamo import Table

if TYPE_CHECKING:
    from conversions_core.repository.accounts import Accounts
    from conversions_core.repository.cascade import Cascade
    from conversions_core.repository.changes import ChangesFeed
    from conversions_core.repository.conversions import Conversions
    from conversions_core.repository.counting import Counter
    from conversions_core.repository.goals import Goals
    from conversions_core.repository.importer import Importer
    from conversions_core.repository.statistics import Statistics

__all__ = ["Repository"]


class Repository:
    """The data table's parts, sharing one client. Each part is built, and its module imported,
    when first asked for: a function imports only the part it uses (a list, not the goals or the
    stream's code), and asks for it in Lambda's init (`conversions_core.http.new_app`)."""

    def __init__(
        self, client: Any, table_name: str, clock: Callable[[], datetime] | None = None, retention_days: int = 0
    ):
        self.table = Table(client, table_name)
        self.clock = clock
        self.retention_days = retention_days

    @classmethod
    def build(
        cls, client: Any, table_name: str, clock: Callable[[], datetime] | None = None, retention_days: int = 0
    ) -> Repository:
        return cls(client, table_name, clock, retention_days)

    @cached_property
    def accounts(self) -> Accounts:
        from conversions_core.repository.accounts import Accounts

        return Accounts(self.table)

    @cached_property
    def conversions(self) -> Conversions:
        from conversions_core.repository.conversions import Conversions

        return Conversions(self.table, self.accounts, self.clock, self.retention_days)

    @cached_property
    def goals(self) -> Goals:
        from conversions_core.repository.goals import Goals

        return Goals(self.table, self.accounts, self.clock)

    @cached_property
    def statistics(self) -> Statistics:
        from conversions_core.repository.statistics import Statistics

        return Statistics(self.conversions)

    @cached_property
    def counter(self) -> Counter:
        from conversions_core.repository.counting import Counter

        return Counter(self.table)

    @cached_property
    def changes(self) -> ChangesFeed:
        """The changes feed, for reading (the counting function writes it with its own clock)."""
        import time

        from conversions_core.repository.changes import ChangesFeed

        return ChangesFeed(self.table, time.time)

    @cached_property
    def cascade(self) -> Cascade:
        from conversions_core.repository.cascade import Cascade

        return Cascade(self.table)

    @cached_property
    def importer(self) -> Importer:
        from conversions_core.repository.importer import Importer

        return Importer(self.table, self.retention_days)
