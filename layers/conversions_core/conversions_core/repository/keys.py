"""The DynamoDB key design: every key format and index, and how records map to items.

Data table (`pk`, `sk`; indexes `ByUser` on `user_pk`+`sk` and `ByGoal` on `goal_pk`+`sk`):

| item              | pk                           | sk                        | other                       |
|-------------------|------------------------------|---------------------------|-----------------------------|
| API key (by hash) | APIKEY#<sha256 hex>          | APIKEY                    | user_id, status, limit      |
| user              | USER#<user_id>               | USER                      |                             |
| website, visitor..| WEBSITE#<id>, VISITOR#<id>.. | WEBSITE, VISITOR, ...     |                             |
| goal              | GOAL#<id>                    | GOAL                      | user_pk (ByUser), version   |
| goal key          | GOALKEY#<website_id>#<key>   | GOALKEY                   | goal_id (one goal a key)    |
| background job    | JOB#<goal_id>                | JOB                       | kind, website_id, round     |
| conversion        | CONVERSION#<id>              | CONVERSION                | version, expires_at         |
| listed conversion | WEBSITE#<id>#CONVERSIONS     | <datetime>#<id:020>       | user_pk, goal_pk            |
| count bucket      | COUNT#<user_id>              | YEAR#2026 ... MINUTE#...  | n, w<website_id>, g<goal_id>|
| counted record    | APPLIED#<stream event id>    | APPLIED                   | event_id, expires_at        |
| change (feed)     | CHANGES#<user_id>            | <sequence:020>            | change, conversion, expires |
| feed head         | CHANGES#<user_id>            | HEAD                      | sequence (the last taken)   |

The sort key `<datetime>#<id>` orders by datetime then id, which is also id order: ids grow
with time (see ids.py). A conversion's stream records (its `CONVERSION#` item) feed the count
buckets; each user's buckets hold the user's total (`n`) and one total per website and goal.
A goal's stream records (`GOAL#`) start the background jobs that move or delete its
conversions; a `JOB#` item carries such a job over to the next invocation when it is long.
A user's changes feed is one partition, `CHANGES#<user_id>`: an entry per change under a dense
sequence number (zero-padded, so that the sort key orders them), and a head item holding the
last number taken, written in the same transaction as the entries it numbers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from conversions_core.repository.items import StoredConversion

USER_INDEX = "ByUser"
GOAL_INDEX = "ByGoal"
CONVERSION_PREFIX = "CONVERSION#"
GOAL_PREFIX = "GOAL#"
JOB_PREFIX = "JOB#"
USER_TOTAL = "n"
_LOWEST_SORT_KEY = "0000-00-00 00:00:00#"
_HIGHEST_SORT_KEY = "9999-12-31 23:59:59#~"


def entity_key(kind: str, entity_id: int) -> dict[str, str]:
    """A user, website, goal, visitor, session or event item."""
    return {"pk": f"{kind}#{entity_id}", "sk": kind}


def api_key_key(key_hash: str) -> dict[str, str]:
    return {"pk": f"APIKEY#{key_hash}", "sk": "APIKEY"}


def conversion_key(conversion_id: int) -> dict[str, str]:
    return {"pk": f"{CONVERSION_PREFIX}{conversion_id}", "sk": "CONVERSION"}


def sort_key(when: str, conversion_id: int) -> str:
    return f"{when}#{conversion_id:020d}"


def sort_bounds(low: str | None, high: str | None) -> tuple[str, str]:
    """Sort-key bounds for conversions from datetime `low` to `high`, both inclusive."""
    return (f"{low}#" if low else _LOWEST_SORT_KEY), (f"{high}#~" if high else _HIGHEST_SORT_KEY)


@dataclass(frozen=True)
class Scope:
    """The conversions a list reads: a user's, a website's or a goal's."""

    kind: str  # USER, WEBSITE or GOAL
    scope_id: int

    @property
    def index(self) -> str | None:
        return {"USER": USER_INDEX, "GOAL": GOAL_INDEX}.get(self.kind)

    @property
    def key_attribute(self) -> str:
        return {"USER": "user_pk", "GOAL": "goal_pk"}.get(self.kind, "pk")

    @property
    def partition(self) -> str:
        return f"{self.kind}#{self.scope_id}#CONVERSIONS"

    @property
    def count_attribute(self) -> str:
        """The attribute of a user's count bucket that counts this scope."""
        return {"USER": USER_TOTAL, "WEBSITE": f"w{self.scope_id}", "GOAL": f"g{self.scope_id}"}[self.kind]


def count_key(user_id: int, bucket: str) -> dict[str, str]:
    return {"pk": f"COUNT#{user_id}", "sk": bucket}


def count_partition(user_id: int) -> str:
    return f"COUNT#{user_id}"


def count_attributes(conversion: StoredConversion) -> list[str]:
    """The attributes a conversion adds 1 to in each of its user's buckets."""
    return [USER_TOTAL, f"w{conversion.website_id}", f"g{conversion.goal_id}"]


def count_deltas(conversion: StoredConversion) -> dict[str, int | Decimal]:
    """What a conversion adds to each of its user's buckets: 1 to its user's, website's and
    goal's counts; with a value, per currency, the value to their sums (`g3:EUR`) and 1 to their
    counts of valued conversions (`g3:EUR:n`, so that a sum of 0.00 is told from no value)."""
    deltas: dict[str, int | Decimal] = {}
    for attribute in count_attributes(conversion):
        deltas[attribute] = 1
        if conversion.value is not None and conversion.currency is not None:
            deltas[f"{attribute}:{conversion.currency}"] = conversion.value
            deltas[f"{attribute}:{conversion.currency}:n"] = 1
    return deltas


@dataclass
class Tally:
    """Conversions counted, and per currency the sum of their values and how many had one."""

    conversions: int = 0
    values: dict[str, tuple[Decimal, int]] = field(default_factory=dict)

    def add(self, other: Tally, sign: int = 1) -> None:
        self.conversions += sign * other.conversions
        for currency, (amount, valued) in other.values.items():
            total, count = self.values.get(currency, (Decimal(0), 0))
            self.values[currency] = (total + sign * amount, count + sign * valued)

    def sums(self) -> dict[str, Decimal]:
        """Per currency with valued conversions, the sum of their values."""
        return {currency: amount for currency, (amount, valued) in sorted(self.values.items()) if valued > 0}


def bucket_tallies(item: dict[str, Any], kind: str) -> dict[int | None, Tally]:
    """The tallies a count bucket item holds per scope of `kind`: USER (one, keyed None),
    WEBSITE or GOAL (keyed by id)."""
    prefix = {"USER": USER_TOTAL, "WEBSITE": "w", "GOAL": "g"}[kind]
    tallies: dict[int | None, Tally] = defaultdict(Tally)
    for name, number in item.items():
        scope, _, rest = name.partition(":")
        if kind == "USER" and scope == USER_TOTAL:
            tally = tallies[None]
        elif kind != "USER" and scope[:1] == prefix and scope[1:].isdigit():
            tally = tallies[int(scope[1:])]
        else:
            continue
        currency, _, valued = rest.partition(":")
        if not currency:
            tally.conversions += int(number)
            continue
        amount, count = tally.values.get(currency, (Decimal(0), 0))
        if valued:
            tally.values[currency] = (amount, count + int(number))
        else:
            tally.values[currency] = (amount + Decimal(number), count)
    return dict(tallies)


def applied_key(event_id: str) -> dict[str, str]:
    """The marker that a stream record (by its event id) was counted: its own partition, so
    markers spread like the records they mark."""
    return {"pk": f"APPLIED#{event_id}", "sk": "APPLIED"}


CHANGES_HEAD = "HEAD"
_SEQUENCE_DIGITS = 20


def changes_partition(user_id: int) -> str:
    """A user's changes feed: its entries and its head (the counting function's writes only:
    the stream's event filter leaves them out)."""
    return f"CHANGES#{user_id}"


def change_key(user_id: int, sequence: int) -> dict[str, str]:
    return {"pk": changes_partition(user_id), "sk": f"{sequence:0{_SEQUENCE_DIGITS}d}"}


def changes_head_key(user_id: int) -> dict[str, str]:
    return {"pk": changes_partition(user_id), "sk": CHANGES_HEAD}


def change_bounds(after: int) -> tuple[str, str]:
    """Sort-key bounds of the entries numbered above `after` (the head's sort key, a letter,
    sorts after every number and is left out)."""
    return f"{after + 1:0{_SEQUENCE_DIGITS}d}", "9" * _SEQUENCE_DIGITS


def change_sequence(item: dict[str, Any]) -> int:
    """The sequence number of a feed entry item."""
    return int(item["sk"])


def rate_limit_key(key_hash: str, window: int) -> dict[str, str]:
    return {"pk": f"{key_hash}#{window}"}


def listed_key(conversion: StoredConversion) -> dict[str, str]:
    return {"pk": Scope("WEBSITE", conversion.website_id).partition, "sk": sort_key(conversion.datetime, conversion.id)}


def listed_item(conversion: StoredConversion) -> dict[str, Any]:
    """The item list queries read (the table by website, and both indexes)."""
    return {
        **listed_key(conversion),
        "user_pk": Scope("USER", conversion.user_id).partition,
        "goal_pk": Scope("GOAL", conversion.goal_id).partition,
        **conversion.fields(),
    }


# A listed item's conversion without its keys: what a list page reads of it.
LISTED_FIELDS = tuple(StoredConversion.__dataclass_fields__)


def conversion_item(conversion: StoredConversion, version: int, retention_days: int = 0) -> dict[str, Any]:
    """The item get, update and delete read by id; its stream records keep the counts. With a
    retention, DynamoDB's TTL deletes it that many days after the conversion's datetime."""
    item = {**conversion_key(conversion.id), **conversion.fields(), "version": version}
    if retention_days:
        created = datetime.fromisoformat(conversion.datetime).replace(tzinfo=UTC)
        item["expires_at"] = int((created + timedelta(days=retention_days)).timestamp())
    return item


def conversion_from_item(item: dict[str, Any]) -> StoredConversion:
    return StoredConversion.from_item(item)


def goals_partition(user_id: int) -> str:
    """The ByUser index partition that holds a user's goals."""
    return f"USER#{user_id}#GOALS"


def goal_item(goal: dict[str, Any]) -> dict[str, Any]:
    """A goal's item: its fields, and the index key that lists it among its user's goals."""
    return {**entity_key("GOAL", goal["goal_id"]), **goal, "user_pk": goals_partition(goal["user_id"])}


def goal_key_key(website_id: int, key: str) -> dict[str, str]:
    """The item that holds a goal key on a website: a key is one goal's on its website."""
    return {"pk": f"GOALKEY#{website_id}#{key}", "sk": "GOALKEY"}


def job_key(goal_id: int) -> dict[str, str]:
    return {"pk": f"{JOB_PREFIX}{goal_id}", "sk": "JOB"}
