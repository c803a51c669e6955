"""Conversion ids: from the clock, so that no item is shared by the creates that make them.

An id is the milliseconds since 2020-01-01 UTC followed by 12 random bits. So ids are
positive, below 2^53 until 2089, and grow with time: ordered by id, a user's conversions are
ordered by datetime (taken from the same clock reading), with creates in the same millisecond
in random order. Two creates that draw the same id (1 in 4,096 within one millisecond) are told
apart by the condition on the conversion item: the loser draws again.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
RANDOM_BITS = 12


def _milliseconds(moment: datetime) -> int:
    return (moment - EPOCH) // _ONE_MILLISECOND


def new_id(moment: datetime, draw: int | None = None) -> int:
    """An id for a conversion created at `moment` (an aware datetime)."""
    low = random.getrandbits(RANDOM_BITS) if draw is None else draw
    return _milliseconds(moment) << RANDOM_BITS | low


def first_id_at(moment: datetime) -> int:
    """The lowest id a conversion created at `moment` or later can get."""
    return _milliseconds(moment) << RANDOM_BITS


_ONE_MILLISECOND = datetime(2020, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - EPOCH
