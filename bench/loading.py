"""A table as the service would leave it after N conversions had been counted, built in bulk.

Owners (users and their API keys, websites, goals, a visitor) are written as a seed file
(`conversions_core.seed`). The conversions go in straight through moto
(`moto_speedup.put_items`): for each conversion its item by id (`keys.conversion_item`) and
its listed item (`keys.listed_item`), and for each user the count buckets the counting
function would have made from the stream:
one item per bucket (`buckets.bucket_labels`: year, month, day, hour, quarter-hour, minute)
holding the user's total and one total per website and goal (`keys.count_attributes`).
The counting function's markers are left out: they only guard against a record applied twice.
Only the benchmark builds tables this way.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import moto_speedup

from conversions_core.repository import Repository, ids
from conversions_core.repository.buckets import bucket_labels
from conversions_core.repository.items import StoredConversion
from conversions_core.repository.keys import conversion_item, count_attributes, count_key, listed_item
from conversions_core.seed import load_seed
from conversions_core.values import DATETIME_FORMAT


def conversion_id(moment: datetime, taken: set[int]) -> int:
    """An id as the service gives one at `moment` (naive UTC), unique among `taken`."""
    aware, draw = moment.replace(tzinfo=UTC), 0
    while ids.new_id(aware, draw) in taken:
        draw += 1
    taken.add(new := ids.new_id(aware, draw))
    return new


def count_items(conversions: list[StoredConversion]) -> list[dict[str, Any]]:
    """The count buckets of these conversions, as the counting function leaves them."""
    counts: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
    for conversion in conversions:
        moment = datetime.strptime(conversion.datetime, DATETIME_FORMAT)
        for label in bucket_labels(moment):
            counts[(conversion.user_id, label)].update(count_attributes(conversion))
    return [{**count_key(user_id, label), **totals} for (user_id, label), totals in counts.items()]


def table_items(conversions: list[StoredConversion]) -> list[dict[str, Any]]:
    """Both items of every conversion, and the count buckets."""
    items = [item for c in conversions for item in (conversion_item(c, version=1), listed_item(c))]
    return items + count_items(conversions)


def load_owners(
    repository: Repository,
    users: dict[int, str],
    websites: dict[int, int],
    goals: dict[int, int],
    visitors: dict[int, int],
    rate_limit_per_minute: int | None = None,
) -> None:
    """Users (user_id -> API key), websites (-> user), goals and visitors (-> website), written
    as a seed file (`conversions_core.seed`) writes them."""
    seed = {
        "users": [
            {"user_id": u, "api_key": key, "rate_limit_per_minute": rate_limit_per_minute} for u, key in users.items()
        ],
        "websites": [{"website_id": w, "user_id": u, "tracking_mode": "normal"} for w, u in websites.items()],
        "goals": [{"goal_id": g, "website_id": w} for g, w in goals.items()],
        "visitors": [{"visitor_id": v, "website_id": w} for v, w in visitors.items()],
    }
    load_seed(repository, seed)


def load_conversions(table_name: str, conversions: list[StoredConversion]) -> int:
    """Write the conversions and their counts straight into moto; returns the number of items."""
    items = table_items(conversions)
    moto_speedup.put_items(table_name, items)
    return len(items)
