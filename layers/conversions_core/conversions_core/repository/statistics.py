"""Statistics: conversions (and the sums of their values per currency) between consecutive UTC
boundaries, or per goal or website over a range, read from the count buckets only.

Each interval [boundary, next boundary) is a signed cover of whole buckets (`buckets.signed_cover`:
a local day is one DAY bucket with a few HOUR or QUARTER buckets added or taken away). The
buckets of all intervals are gathered, each once (neighbouring intervals share theirs), then
read level by level: needed units close together (at most `QUERY_GAP` units apart) and at least
`QUERY_MIN` of them are read with one Query on their sort-key range (a run of days, of hours...);
the others, scattered, with BatchGetItem, 100 keys a call. A bucket that does not exist counts 0.
What is asked depends on the boundaries only, never on the number of conversions. A bound
inside a minute (the range's own start or end, to the second) leaves a part-minute, summed from
the listed conversions with one Query of at most a minute of them, as a list does.

A bucket item holds the count of its user's conversions, of each website's and each goal's,
and their values' sums per currency (keys.count_deltas): it is read whole, so a breakdown per
goal or website costs the reads of the range's buckets and nothing per group or conversion.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from itertools import pairwise
from typing import Any

from conversions_core.repository import buckets
from conversions_core.repository.conversions import Conversions
from conversions_core.repository.dynamo import from_dynamo, to_dynamo
from conversions_core.repository.items import StoredConversion, User
from conversions_core.repository.keys import Scope, Tally, bucket_tallies, count_deltas, count_key, count_partition
from conversions_core.repository.listing import Listing

# A Query is worth it for runs of at least this many needed buckets...
QUERY_MIN = 8
# ...with at most this many units from one needed bucket to the next (the ones between come along).
# Bucket items are small: a Query is charged on the bytes it reads (4 KB a unit), BatchGetItem
# on each key (half a unit at least), so a Query reading a day of hours beats 24 keys.
QUERY_GAP = 24

Bucket = tuple[int, datetime]  # (level, unit start)
PartMinute = tuple[None, datetime, datetime]  # [start, end) inside one minute
Signed = list[tuple[int, Bucket | PartMinute]]  # an interval's buckets with their signs
Item = dict[str, Any]


class Statistics:
    """Tallies (counts, and sums of values per currency) of a user's conversions per interval,
    optionally of one goal or website, or per goal or website over a range."""

    def __init__(self, conversions: Conversions):
        self.conversions = conversions
        self.listing = Listing(conversions.table)

    def tallies(
        self, user: User, goal_id: int | None, website_id: int | None, boundaries: list[datetime]
    ) -> list[Tally]:
        """The tally between each pair of consecutive `boundaries` (naive UTC, in order), start
        included, end excluded; empty when the filters name no conversion of the user's (another
        user's goal or website)."""
        scope = self.conversions.scope_for(user, goal_id, website_id)
        intervals = list(pairwise(boundaries))
        if scope is None:
            return [Tally() for _ in intervals]
        covers = [_signed_buckets(low, high) for low, high in intervals]
        found = self._read(user.user_id, scope, {bucket for cover in covers for _, bucket in cover})
        scope_id = None if scope.kind == "USER" else scope.scope_id
        tallies = []
        for cover in covers:
            tally = Tally()
            for sign, bucket in cover:
                if bucket in found:
                    tally.add(bucket_tallies(found[bucket], scope.kind).get(scope_id, Tally()), sign)
            tallies.append(tally)
        return tallies

    def groups(self, user: User, low: datetime, high: datetime) -> dict[str, dict[int, Tally]]:
        """The tally of the user's conversions in [low, high) per goal (`GOAL`) and per website
        (`WEBSITE`), for every one the buckets hold with conversions in it (a deleted goal's may
        linger until its conversions are deleted: the caller keeps the ones that exist)."""
        cover = _signed_buckets(low, high)
        found = self._read(user.user_id, Scope("USER", user.user_id), {bucket for _, bucket in cover})
        groups: dict[str, dict[int, Tally]] = {"GOAL": defaultdict(Tally), "WEBSITE": defaultdict(Tally)}
        for sign, bucket in cover:
            for kind, tallies in groups.items():
                for group_id, tally in bucket_tallies(found.get(bucket, {}), kind).items():
                    if group_id is not None:
                        tallies[group_id].add(tally, sign)
        return {kind: {i: t for i, t in tallies.items() if t.conversions} for kind, tallies in groups.items()}

    def _read(self, user_id: int, scope: Scope, wanted: set[Bucket | PartMinute]) -> dict[Bucket | PartMinute, Item]:
        """Each wanted bucket's item as it exists (all its attributes), and for each part-minute
        the same attributes summed over the scope's conversions in it."""
        found: dict[Bucket | PartMinute, Item] = {}
        whole: set[Bucket] = set()
        for bucket in wanted:
            if bucket[0] is None:
                found[bucket] = _summed(self.listing.conversions_between(user_id, scope, bucket[1], bucket[2]))
            else:
                whole.add((bucket[0], bucket[1]))
        for bucket, item in self._buckets(user_id, whole).items():
            found[bucket] = item
        return found

    def _buckets(self, user_id: int, wanted: set[Bucket]) -> dict[Bucket, Item]:
        by_level: dict[int, list[datetime]] = defaultdict(list)
        for level, unit in wanted:
            by_level[level].append(unit)
        found: dict[Bucket, Item] = {}
        scattered: list[Bucket] = []
        for level, units in sorted(by_level.items()):
            for group in _groups(level, sorted(units)):
                if len(group) < QUERY_MIN:
                    scattered += [(level, unit) for unit in group]
                    continue
                for item in self._query(user_id, level, group[0], group[-1]):
                    found[buckets.parse_label(item["sk"])] = item
        if scattered:
            keys = [count_key(user_id, buckets.label(level, unit)) for level, unit in scattered]
            found.update((buckets.parse_label(item["sk"]), item) for item in self.listing.table.batch_get(keys))
        return found

    def _query(self, user_id: int, level: int, first: datetime, last: datetime) -> Iterable[Item]:
        """The buckets of `level` from unit `first` to `last`, both included, that exist."""
        for page in self.listing.table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            ExpressionAttributeValues=to_dynamo(
                {
                    ":pk": count_partition(user_id),
                    ":low": buckets.label(level, first),
                    ":high": buckets.label(level, last),
                }
            ),
        ):
            yield from map(from_dynamo, page["Items"])


def _summed(conversions: Iterable[StoredConversion]) -> Item:
    """What the conversions add to a bucket, as a bucket item holds it."""
    item: Item = defaultdict(int)
    for conversion in conversions:
        for attribute, delta in count_deltas(conversion).items():
            item[attribute] += delta
    return dict(item)


def _signed_buckets(low: datetime, high: datetime) -> Signed:
    """The buckets whose signed sum is the count of [low, high), within the datetimes counted."""
    low, high = (min(max(moment, buckets.EARLIEST), buckets.LATEST) for moment in (low, high))
    signed: Signed = []
    for run in buckets.signed_cover(low, high):
        if run.level is None:
            signed.append((run.sign, (None, run.start, run.end)))
        else:
            signed += [(run.sign, (run.level, unit)) for unit in run.units()]
    return signed


def _groups(level: int, units: list[datetime]) -> list[list[datetime]]:
    """Sorted units cut where the next is more than QUERY_GAP units after the one before."""
    groups: list[list[datetime]] = []
    for unit in units:
        if groups and buckets.units_between(level, groups[-1][-1], unit) <= QUERY_GAP:
            groups[-1].append(unit)
        else:
            groups.append([unit])
    return groups
