"""Count bucket maths (conversions_core.repository.buckets): pure functions, no database.

Each cover is checked against counting by hand: conversions at random seconds are put in their
six buckets, and every range's count from the buckets (plus part-minutes counted directly) must
equal the number of conversions in the range.
"""

import random
from collections import Counter
from datetime import datetime, timedelta

import pytest

from conversions_core.repository import buckets
from conversions_core.repository.buckets import EARLIEST, LATEST, Run, cover, signed_cover

pytestmark = pytest.mark.no_database


def moments(seed: int, count: int, start: datetime, span: timedelta) -> list[datetime]:
    rng = random.Random(seed)
    return [start + timedelta(seconds=rng.randrange(int(span.total_seconds()))) for _ in range(count)]


def bucket_counts(stamps: list[datetime]) -> Counter:
    return Counter(label for moment in stamps for label in buckets.bucket_labels(moment))


def counted(runs: list[Run], stamps: list[datetime], counts: Counter) -> int:
    total = 0
    for run in runs:
        if run.level is None:
            total += run.sign * sum(1 for m in stamps if run.start <= m < run.end)
        else:
            total += run.sign * sum(counts[buckets.label(run.level, unit)] for unit in run.units())
    return total


STAMPS = moments(1, 3000, datetime(2025, 11, 20), timedelta(days=70))
COUNTS = bucket_counts(STAMPS)


def random_ranges(seed: int, count: int) -> list[tuple[datetime, datetime]]:
    rng = random.Random(seed)
    ranges = []
    for _ in range(count):
        low = datetime(2025, 11, 15) + timedelta(seconds=rng.randrange(80 * 86400))
        length = timedelta(seconds=rng.choice([rng.randrange(120), rng.randrange(7200), rng.randrange(40 * 86400)]))
        ranges.append((low, low + length))
    return ranges


@pytest.mark.parametrize("make", [cover, signed_cover], ids=["cover", "signed_cover"])
def test_every_range_counts_exactly(make):
    for low, high in random_ranges(7, 400):
        expected = sum(1 for m in STAMPS if low <= m < high)
        assert counted(make(low, high), STAMPS, COUNTS) == expected, (low, high)


def test_aligned_ranges_read_one_bucket():
    assert cover(datetime(2026, 3, 1), datetime(2026, 4, 1)) == [Run(1, datetime(2026, 3, 1), datetime(2026, 4, 1))]
    assert cover(datetime(2026, 1, 1), datetime(2028, 1, 1)) == [Run(0, datetime(2026, 1, 1), datetime(2028, 1, 1))]
    assert signed_cover(datetime(2026, 3, 5), datetime(2026, 3, 6)) == [
        Run(2, datetime(2026, 3, 5), datetime(2026, 3, 6))
    ]


def test_the_whole_time_line_is_one_run_of_years():
    assert cover(EARLIEST, LATEST) == [Run(0, EARLIEST, LATEST)]


def test_a_local_day_is_a_day_with_parts_added_and_taken_away():
    """Europe/Paris in winter: the local day 2026-01-10 is 2026-01-09 23:00 to 2026-01-10 23:00 UTC."""
    runs = signed_cover(datetime(2026, 1, 9, 23), datetime(2026, 1, 10, 23))
    assert runs == [
        Run(2, datetime(2026, 1, 10), datetime(2026, 1, 11), 1),
        Run(3, datetime(2026, 1, 9, 23), datetime(2026, 1, 10), 1),
        Run(3, datetime(2026, 1, 10, 23), datetime(2026, 1, 11), -1),
    ]


def test_half_hour_offsets_use_quarter_hours():
    """Asia/Kolkata: a local day starts at 18:30 UTC."""
    runs = signed_cover(datetime(2026, 1, 9, 18, 30), datetime(2026, 1, 10, 18, 30))
    units = sum(len(run.units()) for run in runs if run.level is not None)
    assert units <= 1 + 2 * (5 + 2)
    assert all(run.level is not None for run in runs)


@pytest.mark.parametrize("low, high", random_ranges(11, 200))
def test_covers_stay_small(low, high):
    """Per end at most 11 months, 30 days, 23 hours, 3 quarters and 14 minutes; the signed cover
    takes at most about half of each."""
    units = sum(len(run.units()) for run in cover(low, high) if run.level is not None)
    signed_units = sum(len(run.units()) for run in signed_cover(low, high) if run.level is not None)
    assert units <= 2 * (11 + 30 + 23 + 3 + 14) + 2
    assert signed_units <= 2 * (6 + 16 + 12 + 2 + 8) + 2


def test_labels_round_trip():
    moment = datetime(2026, 11, 26, 13, 37, 42)
    labels = buckets.bucket_labels(moment)
    assert labels == [
        "YEAR#2026",
        "MONTH#2026-11",
        "DAY#2026-11-26",
        "HOUR#2026-11-26 13",
        "QUARTER#2026-11-26 13:30",
        "MINUTE#2026-11-26 13:37",
    ]
    assert [buckets.parse_label(label) for label in labels] == [
        (level, buckets.floor(level, moment)) for level in range(len(buckets.LEVELS))
    ]


def test_units_follow_the_calendar():
    assert buckets.following(1, datetime(2026, 12, 1)) == datetime(2027, 1, 1)
    assert buckets.following(0, datetime(9998, 1, 1)) == LATEST
    assert buckets.ceil(4, datetime(2026, 1, 1, 10, 46)) == datetime(2026, 1, 1, 11)
    assert Run(1, datetime(2026, 1, 1), datetime(2026, 4, 1)).last_unit == datetime(2026, 3, 1)
    assert buckets.children(2, datetime(2026, 2, 3)) == Run(3, datetime(2026, 2, 3), datetime(2026, 2, 4))


@pytest.mark.parametrize("level", range(len(buckets.LEVELS)))
def test_units_between_counts_the_steps_from_one_unit_to_another(level):
    rng = random.Random(level)
    for _ in range(50):
        start = buckets.floor(level, datetime(2024, 1, 1) + timedelta(seconds=rng.randrange(3 * 365 * 86400)))
        unit, steps = start, rng.randrange(40)
        for _ in range(steps):
            unit = buckets.following(level, unit)
        assert buckets.units_between(level, start, unit) == steps
    assert buckets.units_between(0, datetime(9990, 1, 1), LATEST) == 9
