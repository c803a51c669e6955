"""Statistics: the request rules, the local intervals of a range and the response.

Decisions the contract leaves open:
- The intervals are the local calendar units (hours, days or months of `timezone`) that overlap
  the range: the first is the unit holding datetime_start, the last the unit holding
  datetime_end. Each counts the conversions inside both the interval and the range, so the sum
  of `data` is `meta.total`. An interval is labelled by its calendar start.
- The bounds are inclusive and exact to the second, as in a list. The boundaries between
  intervals are whole minutes (one in a zone whose historical offset has seconds, local mean
  time, is taken down to its UTC minute), so only the range's own bounds can fall inside a
  minute, and only they can cost a read of conversions (a part-minute's COUNT).
- Daylight saving: a local day is 23 or 25 hours. For `hour`, a repeated local hour gives two
  intervals with the same label, in order, and a skipped hour gives none (nor does any interval
  wholly inside skipped time). A local midnight that does not exist starts the day at the
  transition (the day keeps its midnight label).
- With group_by, the range is one interval (`interval` is ignored); a row's `website_id` is its
  goal's website now. With goal_id and group_by=website, the one row is the goal's conversions
  on its website. Goals and websites are the caller's that exist now: a deleted goal's
  conversions, until its background deletion is done, are in no row and in no meta total.
- `values` lists a currency when the interval has at least one conversion valued in it (a sum
  of 0.00 is listed); the buckets count valued conversions per currency to tell.
- A bound in a repeated hour is taken at its first occurrence for datetime_start and at its
  second for datetime_end, so that the range holds both; a bound in skipped time is the
  transition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from conversions_core.errors import invalid
from conversions_core.money import format_amount
from conversions_core.repository import Repository
from conversions_core.repository.items import User
from conversions_core.repository.keys import Tally
from conversions_core.values import contract_error

__all__ = [
    "MAX_HOURLY_RANGE",
    "MAX_INTERVALS",
    "PARAMETER_RULES",
    "TIMEZONE_RULE",
    "Interval",
    "GroupBy",
    "StatisticsBody",
    "breakdown_body",
    "StatisticsRequest",
    "TimeZoneName",
    "local_intervals",
    "range_bounds",
    "statistics_body",
    "statistics_request",
    "zone",
]

Interval = Literal["hour", "day", "month"]
GroupBy = Literal["goal", "website"]
MAX_HOURLY_RANGE = timedelta(days=366)
# A day or month range is limited by its number of intervals: an answer of 10,000 stays near
# half a megabyte, and its buckets are read in a second or two.
MAX_INTERVALS = 10_000
TIMEZONE_RULE = "timezone must be an IANA time zone name such as Europe/Paris"
_DATETIME_RULE = "a datetime as YYYY-MM-DD HH:MM:SS or YYYY-MM-DDTHH:MM[:SS], read in timezone"
# Titles of the 400 for a value that breaks a parameter's rule.
PARAMETER_RULES = {
    "goal_id": "goal_id must be a positive integer",
    "website_id": "website_id must be a positive integer",
    "datetime_start": f"datetime_start must be {_DATETIME_RULE}",
    "datetime_end": f"datetime_end must be {_DATETIME_RULE}",
    "interval": "interval must be one of hour, day, month",
    "timezone": TIMEZONE_RULE,
    "group_by": "group_by must be goal or website",
}
_SECOND = timedelta(seconds=1)
# IANA names: Area/Location in ASCII letters, digits, '_', '-' and '+'. The zoneinfo folder also
# holds files that are not zones of their own, refused by name.
_ZONE_NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_+-]{0,30}(?:/[A-Za-z0-9_+-]{1,30}){0,2}"
_ZONE_NAME = re.compile(_ZONE_NAME_PATTERN)
_NOT_ZONES = {"localtime", "posixrules", "Factory"}
_NOT_ZONE_FOLDERS = ("posix/", "right/")


# -- the request -----------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """The time zone of an IANA name (ValueError if it is not one)."""
    if not _ZONE_NAME.fullmatch(name) or name in _NOT_ZONES or name.startswith(_NOT_ZONE_FOLDERS):
        raise ValueError(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(name) from None


def _zone_name(name: str) -> str:
    try:
        zone(name)
    except ValueError:
        raise contract_error(TIMEZONE_RULE) from None
    return name


TimeZoneName = Annotated[
    str,
    AfterValidator(_zone_name),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^{_ZONE_NAME_PATTERN}$",
            "description": "An IANA time zone name (of the time zone database the service runs with)",
            "examples": ["Europe/Paris", "Asia/Kolkata"],
        }
    ),
]


@dataclass(frozen=True)
class StatisticsRequest:
    """The validated query of GET /api/goals-conversions/statistics; bounds in local time."""

    start: datetime
    end: datetime
    interval: Interval
    timezone: str
    group_by: GroupBy | None = None


def statistics_request(
    start: datetime, end: datetime, interval: Interval, timezone: str, group_by: GroupBy | None = None
) -> StatisticsRequest:
    """The request, once the rules between parameters hold (InvalidInputError naming one otherwise).
    The bounds arrive as the wall times the client wrote, whatever zone they were parsed in."""
    start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    if start > end:
        raise invalid("datetime_start", "datetime_start must not be after datetime_end")
    if group_by is not None:  # one interval: the range as a whole
        return StatisticsRequest(start, end, interval, timezone, group_by)
    if interval == "hour" and end - start > MAX_HOURLY_RANGE:
        raise invalid("datetime_end", "datetime_end must be at most 366 days after datetime_start for hourly intervals")
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    if (interval == "day" and (end - start).days >= MAX_INTERVALS) or (interval == "month" and months > MAX_INTERVALS):
        raise invalid("datetime_end", f"the range may hold at most {MAX_INTERVALS} {interval}s")
    return StatisticsRequest(start, end, interval, timezone, group_by)


# -- local intervals -------------------------------------------------------------------------------


def local_intervals(request: StatisticsRequest) -> tuple[list[tuple[str, datetime]], datetime]:
    """The intervals of the range as (local label, UTC start), in order, and the UTC end of the
    last; UTC instants are naive. The first start is the range's start and the end is just after
    its last second (both to the second, bounds being inclusive); the boundaries between
    intervals are on whole minutes (an old offset with seconds is taken to its minute)."""
    tz = zone(request.timezone)
    low = _utc_start(request.start, tz)
    high = _utc_end(request.end, tz)
    starts: list[tuple[str, datetime]] = []
    unit, last = _floor(request.interval, request.start), _floor(request.interval, request.end)
    while True:
        instants = _utc_starts(unit, tz) if request.interval == "hour" else [_utc_start(unit, tz)]
        label = unit.isoformat(sep=" ")
        starts += [(label, min(max(_minute(instant), low), high)) for instant in instants]
        if unit >= last:
            break
        unit = _following(request.interval, unit)
    starts[0] = (starts[0][0], low)
    ends = [start for _, start in starts[1:]] + [high]
    return [(label, start) for (label, start), end in zip(starts, ends, strict=True) if start < end], high


def range_bounds(request: StatisticsRequest) -> tuple[datetime, datetime]:
    """The range as naive UTC instants: its first second's start and its last second's end."""
    tz = zone(request.timezone)
    return _utc_start(request.start, tz), _utc_end(request.end, tz)


def _floor(interval: Interval, moment: datetime) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    if interval == "hour":
        return moment
    moment = moment.replace(hour=0)
    return moment if interval == "day" else moment.replace(day=1)


def _following(interval: Interval, start: datetime) -> datetime:
    if interval == "month":
        return datetime(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + (timedelta(hours=1) if interval == "hour" else timedelta(days=1))


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _offsets(local: datetime, tz: ZoneInfo) -> tuple[timedelta, timedelta]:
    """The UTC offsets before and after a transition at `local` (equal away from transitions)."""
    before, after = local.replace(tzinfo=tz).utcoffset(), local.replace(tzinfo=tz, fold=1).utcoffset()
    assert before is not None and after is not None
    return before, after


def _utc_starts(local: datetime, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants the local time begins at: two in a repeated hour, one otherwise (the
    transition in skipped time)."""
    before, after = _offsets(local, tz)
    if before > after:
        return [_shift(local, before), _shift(local, after)]
    return [_utc_start(local, tz)]


def _utc_start(local: datetime, tz: ZoneInfo) -> datetime:
    """When the local time first begins (the transition if it is skipped)."""
    before, after = _offsets(local, tz)
    return _transition(local, tz, before, after) if before < after else _shift(local, before)


def _utc_end(local: datetime, tz: ZoneInfo) -> datetime:
    """When the local second last ends (the transition if it is skipped)."""
    before, after = _offsets(local, tz)
    return _transition(local, tz, before, after) if before < after else _shift(local, after, _SECOND)


def _shift(local: datetime, offset: timedelta, extra: timedelta = timedelta(0)) -> datetime:
    """local - offset + extra, held within the datetimes Python can write."""
    try:
        return local - offset + extra
    except OverflowError:
        return datetime.min if offset > timedelta(0) else _minute(datetime.max)


def _transition(local: datetime, tz: ZoneInfo, before: timedelta, after: timedelta) -> datetime:
    """The instant a skipped local time was jumped over: the first second whose local time is at
    or after it, between local - after (before the jump) and local - before (after it)."""
    low, seconds = local - after, int((after - before).total_seconds())
    while seconds > 1:  # the answer is in (low, low + seconds]
        half = seconds // 2
        middle = low + timedelta(seconds=half)
        if _local(middle, tz) >= local:
            seconds = half
        else:
            low, seconds = middle, seconds - half
    return low + timedelta(seconds=seconds)


def _local(utc: datetime, tz: ZoneInfo) -> datetime:
    return utc.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)


# -- the response ----------------------------------------------------------------------------------


Values = Annotated[
    dict[str, str],
    Field(
        description="Per currency (ISO 4217), the exact sum of the conversions' values", examples=[{"EUR": "310.50"}]
    ),
]


class StatisticsPoint(BaseModel):
    datetime: str
    conversions: int
    values: Values


class GoalRow(BaseModel):
    """With group_by=goal: one goal's conversions over the range."""

    goal_id: int
    website_id: int
    conversions: int
    values: Values


class WebsiteRow(BaseModel):
    """With group_by=website: one website's conversions over the range."""

    website_id: int
    conversions: int
    values: Values


class StatisticsMeta(BaseModel):
    total: int
    values: Values
    interval: Interval
    timezone: str


class StatisticsBody(BaseModel):
    """Response of the statistics endpoint: every interval of the range, in order, zeros
    included; with group_by, one row per goal or website with conversions in the range."""

    data: list[StatisticsPoint] | list[GoalRow] | list[WebsiteRow]
    meta: StatisticsMeta


def _values(tally: Tally) -> dict[str, str]:
    return {currency: format_amount(amount, currency) for currency, amount in tally.sums().items()}


def _meta(request: StatisticsRequest, tallies: list[Tally]) -> StatisticsMeta:
    whole = Tally()
    for tally in tallies:
        whole.add(tally)
    return StatisticsMeta(
        total=whole.conversions, values=_values(whole), interval=request.interval, timezone=request.timezone
    )


def statistics_body(request: StatisticsRequest, labels: list[str], tallies: list[Tally]) -> StatisticsBody:
    """The response for the intervals' labels and their tallies."""
    data = [
        StatisticsPoint(datetime=label, conversions=tally.conversions, values=_values(tally))
        for label, tally in zip(labels, tallies, strict=True)
    ]
    return StatisticsBody(data=data, meta=_meta(request, tallies))


def breakdown_body(
    repository: Repository,
    user: User,
    request: StatisticsRequest,
    goal_id: int | None,
    website_id: int | None,
    low: datetime,
    high: datetime,
) -> StatisticsBody:
    """The response with group_by: one row per goal or website of the user's that the filters
    select and that has conversions in [low, high), most conversions first, then by id."""
    groups = repository.statistics.groups(user, low, high)
    rows: list[GoalRow] | list[WebsiteRow]
    if request.group_by == "goal" or goal_id is not None:
        goals = {goal["goal_id"]: goal for goal in repository.goals.all(user)}  # the existing ones, where they are
        selected = {
            gid: tally
            for gid, tally in groups["GOAL"].items()
            if gid in goals and goal_id in (None, gid) and website_id in (None, goals[gid]["website_id"])
        }
    if request.group_by == "goal":
        rows = [
            GoalRow(goal_id=gid, website_id=goals[gid]["website_id"], conversions=t.conversions, values=_values(t))
            for gid, t in selected.items()
        ]
        rows.sort(key=lambda row: (-row.conversions, row.goal_id))
        tallies = list(selected.values())
    else:
        if goal_id is not None:  # the goal's conversions, on its website
            by_website = {goals[gid]["website_id"]: tally for gid, tally in selected.items()}
        else:
            by_website = {wid: t for wid, t in groups["WEBSITE"].items() if website_id in (None, wid)}
        owned = repository.accounts.entities([("WEBSITE", wid) for wid in by_website])
        kept = {
            wid: t for wid, t in by_website.items() if owned.get(("WEBSITE", wid), {}).get("user_id") == user.user_id
        }
        rows = [WebsiteRow(website_id=wid, conversions=t.conversions, values=_values(t)) for wid, t in kept.items()]
        tallies = list(kept.values())
        rows.sort(key=lambda row: (-row.conversions, row.website_id))
    return StatisticsBody(data=rows, meta=_meta(request, tallies))
