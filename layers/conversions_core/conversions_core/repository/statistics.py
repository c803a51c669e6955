"""Statistics: conversions between consecutive UTC boundaries, read from the count buckets only.

Each interval [boundary, next boundary) is a signed cover of whole buckets (`buckets.signed_cover`:
a local day is one DAY bucket with a few HOUR or QUARTER buckets added or taken away). The
buckets of all intervals are gathered, each once (neighbouring intervals share theirs), then
read level by level: needed units close together (at most `QUERY_GAP` units apart) and at least
`QUERY_MIN` of them are read with one Query on their sort-key range (a run of days, of hours...);
the others, scattered, with BatchGetItem, 100 keys a call. A bucket that does not exist counts 0.
What is asked depends on the boundaries only, never on the number of conversions. A bound
inside a minute (the range's own start or end, to the second) leaves a part-minute, counted on
the listed conversions with one COUNT Query of at most a minute of them, as a list does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from itertools import pairwise

from conversions_core.repository import buckets
from conversions_core.repository.buckets import Run
from conversions_core.repository.conversions import Conversions
from conversions_core.repository.items import User
from conversions_core.repository.keys import Scope, count_key
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


class Statistics:
    """Counts per interval of a user's conversions, optionally of one goal or website."""

    def __init__(self, conversions: Conversions):
        self.conversions = conversions
        self.listing = Listing(conversions.table)

    def counts(self, user: User, goal_id: int | None, website_id: int | None, boundaries: list[datetime]) -> list[int]:
        """Conversions between each pair of consecutive `boundaries` (naive UTC, in order), start
        included, end excluded; zeros when the filters name no conversion of the user's (another
        user's goal or website)."""
        scope = self.conversions.scope_for(user, goal_id, website_id)
        intervals = list(pairwise(boundaries))
        if scope is None:
            return [0] * len(intervals)
        covers = [_signed_buckets(low, high) for low, high in intervals]
        wanted = {bucket for cover in covers for _, bucket in cover}
        found: dict[Bucket | PartMinute, int] = {}
        found.update(self._read(user.user_id, scope, {b for b in wanted if b[0] is not None}))
        for part in (b for b in wanted if b[0] is None):
            spans = self.listing.spans(user.user_id, scope, Run(None, part[1], part[2]))
            found[part] = sum(span.count for span in spans)
        return [sum(sign * found.get(bucket, 0) for sign, bucket in cover) for cover in covers]

    def _read(self, user_id: int, scope: Scope, wanted: set[Bucket]) -> dict[Bucket, int]:
        """The scope's count in each wanted bucket that exists."""
        by_level: dict[int, list[datetime]] = defaultdict(list)
        for level, unit in wanted:
            by_level[level].append(unit)
        found: dict[Bucket, int] = {}
        scattered: list[Bucket] = []
        for level, units in sorted(by_level.items()):
            for group in _groups(level, sorted(units)):
                if len(group) < QUERY_MIN:
                    scattered += [(level, unit) for unit in group]
                    continue
                run = Run(level, group[0], buckets.following(level, group[-1]))
                found.update(((level, s.start), s.count) for s in self.listing.spans(user_id, scope, run))
        found.update(self._get(user_id, scope, scattered))
        return found

    def _get(self, user_id: int, scope: Scope, wanted: list[Bucket]) -> Iterable[tuple[Bucket, int]]:
        if not wanted:
            return []
        keys = [count_key(user_id, buckets.label(level, unit)) for level, unit in wanted]
        attribute = scope.count_attribute
        return [
            (buckets.parse_label(item["sk"]), item.get(attribute, 0)) for item in self.listing.table.batch_get(keys)
        ]


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
