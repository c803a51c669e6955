"""The per-key rate limit: fixed one-minute windows in the rate-limit table."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from conversions_core.repository.dynamo import Table, from_dynamo, to_dynamo
from conversions_core.repository.keys import rate_limit_key

WINDOW_SECONDS = 60
# Counters expire once their window is over (DynamoDB's TTL may take a while to remove them).
COUNTER_LIFETIME_SECONDS = 2 * WINDOW_SECONDS


class RateLimitCounter:
    def __init__(self, table: Table, clock: Callable[[], float] = time.time):
        self.table = table
        self._clock = clock

    def hit(self, key_hash: str) -> tuple[int, int]:
        """Count one request; returns (requests in this window, whole seconds until it ends,
        rounded up so that a client waiting that long is in the next window)."""
        now = self._clock()
        window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        response = self.table.update(
            rate_limit_key(key_hash, window),
            UpdateExpression="ADD requests :one SET expires_at = :expires",
            ExpressionAttributeValues=to_dynamo({":one": 1, ":expires": window + COUNTER_LIFETIME_SECONDS}),
            ReturnValues="UPDATED_NEW",
        )
        return int(from_dynamo(response["Attributes"])["requests"]), max(1, math.ceil(window + WINDOW_SECONDS - now))
