"""Count buckets: the pure time maths behind totals, page location and statistics.

A conversion is counted in six buckets of its UTC datetime, one per level: its year, month,
day, hour, quarter-hour and minute. A time range [low, high) is cut into runs of whole buckets
(`cover`, all added) or, where that reads fewer buckets, whole buckets with the parts outside
the range taken away (`signed_cover`). What no bucket covers (less than a minute at a cut
bound) is a part-minute, counted on the conversions themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# (name, length of the unit's label in a 'YYYY-MM-DD HH:MM:SS' datetime), coarsest first.
LEVELS = (("YEAR", 4), ("MONTH", 7), ("DAY", 10), ("HOUR", 13), ("QUARTER", 16), ("MINUTE", 16))
FINEST = len(LEVELS) - 1
# Datetimes the service can hold: from year 1 to the end of year 9998 (exclusive end).
EARLIEST = datetime(1, 1, 1)
LATEST = datetime(9999, 1, 1)
# The length of a unit of each level from DAY down (years and months follow the calendar).
_STEPS = (timedelta(days=1), timedelta(hours=1), timedelta(minutes=15), timedelta(minutes=1))


def floor(level: int, moment: datetime) -> datetime:
    """The start of the level's unit that holds `moment`."""
    moment = moment.replace(microsecond=0)
    if level == 0:
        return moment.replace(month=1, day=1, hour=0, minute=0, second=0)
    if level == 1:
        return moment.replace(day=1, hour=0, minute=0, second=0)
    if level == 2:
        return moment.replace(hour=0, minute=0, second=0)
    if level == 3:
        return moment.replace(minute=0, second=0)
    if level == 4:
        return moment.replace(minute=moment.minute - moment.minute % 15, second=0)
    return moment.replace(second=0)


def following(level: int, start: datetime) -> datetime:
    """The start of the unit after the one starting at `start` (capped at LATEST)."""
    if level == 0:
        return datetime(start.year + 1, 1, 1) if start.year < LATEST.year else LATEST
    if level == 1:
        return datetime(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + _STEPS[level - 2]


def units_between(level: int, earlier: datetime, later: datetime) -> int:
    """How many of the level's units from the unit starting at `earlier` to the one at `later`."""
    if level == 0:
        return later.year - earlier.year
    if level == 1:
        return (later.year - earlier.year) * 12 + later.month - earlier.month
    return (later - earlier) // _STEPS[level - 2]


def ceil(level: int, moment: datetime) -> datetime:
    start = floor(level, moment)
    return start if start == moment else following(level, start)


def label(level: int, start: datetime) -> str:
    """The bucket's sort key: level name and the unit's start, e.g. 'HOUR#2026-11-26 13'."""
    name, length = LEVELS[level]
    return f"{name}#{start.isoformat(sep=' ')[:length]}"


def parse_label(sort_key: str) -> tuple[int, datetime]:
    """(level, unit start) of a bucket sort key made by `label`."""
    name, _, text = sort_key.partition("#")
    level = next(i for i, (n, _) in enumerate(LEVELS) if n == name)
    full = text + "0001-01-01 00:00:00"[len(text) :]
    return level, datetime.fromisoformat(full)


@dataclass(frozen=True)
class Run:
    """Whole units of one level from `start` to `end` (exclusive), or, with level None, the
    part-minute [start, end) counted on the conversions. `sign` is -1 for a part taken away."""

    level: int | None
    start: datetime
    end: datetime
    sign: int = 1

    def units(self) -> list[datetime]:
        assert self.level is not None
        starts, moment = [], self.start
        while moment < self.end:
            starts.append(moment)
            moment = following(self.level, moment)
        return starts

    @property
    def last_unit(self) -> datetime:
        """The start of the run's last unit."""
        assert self.level is not None
        return floor(self.level, self.end - timedelta(seconds=1))


def cover(low: datetime, high: datetime, level: int = 0) -> list[Run]:
    """[low, high) as runs of whole units, coarsest possible, in time order, all added.

    At most one run per level in the middle and one per finer level at each end, plus a
    part-minute at each end that is not on a minute.
    """
    if low >= high:
        return []
    if level > FINEST:
        return [Run(None, low, high)]
    first, last = ceil(level, low), floor(level, high)
    if first >= last:
        return cover(low, high, level + 1)
    return [*cover(low, first, level + 1), Run(level, first, last), *cover(last, high, level + 1)]


def signed_cover(low: datetime, high: datetime, level: int = 0, sign: int = 1) -> list[Run]:
    """[low, high) as signed runs: at each end, a unit is either cut at the bound (its part
    inside the range added) or taken whole and its part outside the range taken away,
    whichever part is shorter. A local day (which starts at, say, 23:00 or 18:30 UTC) is then
    one day bucket with an hour or a few buckets added and taken away, not 24 hours."""
    if low >= high:
        return []
    if level > FINEST:
        return [Run(None, low, high, sign)]
    below, above = floor(level, low), ceil(level, low)
    start = above if above - low <= low - below else below
    below, above = floor(level, high), ceil(level, high)
    end = below if high - below <= above - high else above
    if start >= end or (level < FINEST and _finer_is_cheaper(level, low, high, start, end)):
        return signed_cover(low, high, level + 1, sign)
    runs = [Run(level, start, end, sign)]
    runs += signed_cover(low, start, level + 1, sign) if start > low else signed_cover(start, low, level + 1, -sign)
    runs += signed_cover(end, high, level + 1, sign) if end < high else signed_cover(high, end, level + 1, -sign)
    return runs


# About how long a unit of each level lasts, to weigh covers against each other.
_SECONDS = (365 * 86400, 30 * 86400, 86400, 3600, 900, 60)


def _finer_is_cheaper(level: int, low: datetime, high: datetime, start: datetime, end: datetime) -> bool:
    """Whether [low, high) reads fewer buckets one level finer than as whole units from `start`
    to `end` with the parts outside the range taken away (one day in the middle of a month: not
    the month less 30 days)."""
    finer = _SECONDS[level + 1]
    whole = (end - start).total_seconds() / _SECONDS[level]
    parts = (abs((start - low).total_seconds()) + abs((end - high).total_seconds())) / finer
    return (high - low).total_seconds() / finer <= whole + parts


def children(level: int, start: datetime) -> Run:
    """The units one level finer that make up the unit at `start`."""
    return Run(level + 1, start, following(level, start))


def bucket_labels(moment: datetime) -> list[str]:
    """The sort keys of the six buckets a conversion at `moment` is counted in."""
    return [label(level, floor(level, moment)) for level in range(len(LEVELS))]
