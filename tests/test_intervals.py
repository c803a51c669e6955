"""The statistics' local intervals: labels and UTC boundaries in every kind of zone, and the request rules."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conversions_core.errors import InvalidInputError
from conversions_core.statistics import StatisticsRequest, local_intervals, statistics_request, zone

pytestmark = pytest.mark.no_database


def intervals(start: str, end: str, interval: str = "day", timezone: str = "UTC"):
    """[(label, UTC start as text)] and the UTC end as text."""
    request = statistics_request(datetime.fromisoformat(start), datetime.fromisoformat(end), interval, timezone)
    starts, high = local_intervals(request)
    return [(label, _minute(utc)) for label, utc in starts], _minute(high)


def _minute(moment: datetime) -> str:
    """To the minute, or to the second when the instant is inside a minute (a range's own bounds)."""
    return moment.isoformat(sep=" ", timespec="seconds" if moment.second else "minutes")


def labels(start: str, end: str, interval: str = "day", timezone: str = "UTC") -> list[str]:
    return [label for label, _ in intervals(start, end, interval, timezone)[0]]


def test_utc_days_from_the_day_holding_the_start_to_the_day_holding_the_end():
    starts, end = intervals("2026-06-01 10:30:00", "2026-06-03 08:00:00")
    assert starts == [
        ("2026-06-01 00:00:00", "2026-06-01 10:30"),
        ("2026-06-02 00:00:00", "2026-06-02 00:00"),
        ("2026-06-03 00:00:00", "2026-06-03 00:00"),
    ]
    assert end == "2026-06-03 08:00:01"  # just after datetime_end's second: bounds are inclusive


def test_the_bounds_keep_their_seconds():
    starts, end = intervals("2026-06-01 10:30:59", "2026-06-01 10:31:00")
    assert starts == [("2026-06-01 00:00:00", "2026-06-01 10:30:59")] and end == "2026-06-01 10:31:01"


def test_a_day_ending_at_its_last_second_does_not_open_the_next_day():
    starts, end = intervals("2026-06-01 00:00:00", "2026-06-30 23:59:59", timezone="Europe/Paris")
    assert len(starts) == 30 and starts[0] == ("2026-06-01 00:00:00", "2026-05-31 22:00")
    assert starts[-1] == ("2026-06-30 00:00:00", "2026-06-29 22:00") and end == "2026-06-30 22:00"


def test_paris_days_are_23_and_25_hours_at_the_2026_changes():
    spring, end = intervals("2026-03-28 00:00:00", "2026-03-30 23:59:59", timezone="Europe/Paris")
    assert [utc for _, utc in spring] + [end] == [
        "2026-03-27 23:00",
        "2026-03-28 23:00",  # 29 March: 23 hours
        "2026-03-29 22:00",
        "2026-03-30 22:00",
    ]
    autumn, end = intervals("2026-10-24 00:00:00", "2026-10-26 23:59:59", timezone="Europe/Paris")
    assert [utc for _, utc in autumn] + [end] == [
        "2026-10-23 22:00",
        "2026-10-24 22:00",  # 25 October: 25 hours
        "2026-10-25 23:00",
        "2026-10-26 23:00",
    ]


def test_paris_skipped_hour_gives_no_interval():
    starts, end = intervals("2026-03-29 00:00:00", "2026-03-29 04:59:59", "hour", "Europe/Paris")
    assert starts == [
        ("2026-03-29 00:00:00", "2026-03-28 23:00"),
        ("2026-03-29 01:00:00", "2026-03-29 00:00"),
        ("2026-03-29 03:00:00", "2026-03-29 01:00"),
        ("2026-03-29 04:00:00", "2026-03-29 02:00"),
    ]
    assert end == "2026-03-29 03:00"


def test_paris_repeated_hour_gives_two_intervals_with_the_same_label():
    starts, end = intervals("2026-10-25 01:00:00", "2026-10-25 03:59:59", "hour", "Europe/Paris")
    assert starts == [
        ("2026-10-25 01:00:00", "2026-10-24 23:00"),
        ("2026-10-25 02:00:00", "2026-10-25 00:00"),
        ("2026-10-25 02:00:00", "2026-10-25 01:00"),
        ("2026-10-25 03:00:00", "2026-10-25 02:00"),
    ]
    assert end == "2026-10-25 03:00"


def test_bounds_in_a_repeated_hour_take_both_occurrences():
    starts, end = intervals("2026-10-25 02:30:00", "2026-10-25 02:30:59", "hour", "Europe/Paris")
    assert starts == [("2026-10-25 02:00:00", "2026-10-25 00:30"), ("2026-10-25 02:00:00", "2026-10-25 01:00")]
    assert end == "2026-10-25 01:31"


def test_a_bound_in_skipped_time_is_the_transition():
    starts, end = intervals("2026-03-29 02:30:00", "2026-03-29 03:10:59", "hour", "Europe/Paris")
    assert starts == [("2026-03-29 03:00:00", "2026-03-29 01:00")] and end == "2026-03-29 01:11"
    assert intervals("2026-03-29 02:10:00", "2026-03-29 02:50:00", "hour", "Europe/Paris") == ([], "2026-03-29 01:00")


def test_paris_hours_of_a_whole_day_number_23_and_25():
    assert len(labels("2026-03-29 00:00:00", "2026-03-29 23:59:59", "hour", "Europe/Paris")) == 23
    autumn = labels("2026-10-25 00:00:00", "2026-10-25 23:59:59", "hour", "Europe/Paris")
    assert len(autumn) == 25 and autumn.count("2026-10-25 02:00:00") == 2


def test_kolkata_days_and_hours_start_on_the_half_hour():
    starts, end = intervals("2026-06-01 00:00:00", "2026-06-02 23:59:59", timezone="Asia/Kolkata")
    assert starts == [("2026-06-01 00:00:00", "2026-05-31 18:30"), ("2026-06-02 00:00:00", "2026-06-01 18:30")]
    assert end == "2026-06-02 18:30"
    hours, _ = intervals("2026-06-01 10:00:00", "2026-06-01 11:15:00", "hour", "Asia/Kolkata")
    assert hours == [("2026-06-01 10:00:00", "2026-06-01 04:30"), ("2026-06-01 11:00:00", "2026-06-01 05:30")]


def test_kathmandu_months_start_at_a_quarter_past():
    starts, end = intervals("2026-01-15 00:00:00", "2026-03-02 00:00:59", "month", "Asia/Kathmandu")
    assert starts == [
        ("2026-01-01 00:00:00", "2026-01-14 18:15"),
        ("2026-02-01 00:00:00", "2026-01-31 18:15"),
        ("2026-03-01 00:00:00", "2026-02-28 18:15"),
    ]
    assert end == "2026-03-01 18:16"


def test_sao_paulo_and_new_york_months_across_the_year_end():
    assert labels("2025-11-20 00:00:00", "2026-02-10 00:00:00", "month", "America/Sao_Paulo") == [
        "2025-11-01 00:00:00",
        "2025-12-01 00:00:00",
        "2026-01-01 00:00:00",
        "2026-02-01 00:00:00",
    ]
    starts, _ = intervals("2026-02-01 00:00:00", "2026-04-30 00:00:00", "month", "America/New_York")
    assert [utc for _, utc in starts] == ["2026-02-01 05:00", "2026-03-01 05:00", "2026-04-01 04:00"]


def test_a_midnight_that_does_not_exist_starts_the_day_at_the_transition():
    # Havana moves its clocks from 00:00 to 01:00 on 8 March 2026.
    starts, _ = intervals("2026-03-07 00:00:00", "2026-03-09 00:00:00", timezone="America/Havana")
    assert starts == [
        ("2026-03-07 00:00:00", "2026-03-07 05:00"),
        ("2026-03-08 00:00:00", "2026-03-08 05:00"),  # 01:00 CDT: the day is 23 hours
        ("2026-03-09 00:00:00", "2026-03-09 04:00"),
    ]


def test_a_day_that_does_not_exist_gives_no_interval():
    # Samoa skipped 30 December 2011.
    assert labels("2011-12-29 00:00:00", "2011-12-31 00:00:00", timezone="Pacific/Apia") == [
        "2011-12-29 00:00:00",
        "2011-12-31 00:00:00",
    ]


def test_an_offset_with_seconds_is_exact_at_the_range_start_and_taken_to_the_minute_between_intervals():
    # Paris mean time was UTC+0:09:21 until 11 March 1911.
    starts, end = intervals("1911-03-10 00:00:00", "1911-03-11 23:59:59", timezone="Europe/Paris")
    assert starts == [("1911-03-10 00:00:00", "1911-03-09 23:50:39"), ("1911-03-11 00:00:00", "1911-03-11 00:00")]
    starts, _ = intervals("1911-03-09 12:00:00", "1911-03-10 12:00:00", timezone="Europe/Paris")
    assert starts[1] == ("1911-03-10 00:00:00", "1911-03-09 23:50")
    assert end == "1911-03-12 00:00"


def test_every_boundary_matches_zoneinfo_for_a_year_of_hours():
    tz = ZoneInfo("Europe/Paris")
    request = statistics_request(datetime(2026, 1, 1), datetime(2026, 12, 31, 23, 59, 59), "hour", "Europe/Paris")
    starts, end = local_intervals(request)
    assert len(starts) == 365 * 24
    utc = [start for _, start in starts] + [end]
    assert all(b - a == timedelta(hours=1) for a, b in zip(utc, utc[1:], strict=False))
    for label, start in starts:
        local = start.replace(tzinfo=UTC).astimezone(tz)
        assert f"{local:%Y-%m-%d %H}:00:00" == label


def test_the_first_and_last_datetimes_are_held():
    starts, end = intervals("0001-01-01 00:00:00", "0001-01-02 00:00:00", timezone="Asia/Kolkata")
    assert starts[0] == ("0001-01-01 00:00:00", "0001-01-01 00:00") and len(starts) == 2
    starts, end = intervals("9999-11-15 00:00:00", "9999-12-31 23:59:59", "month", "America/Sao_Paulo")
    assert labels("9999-11-15 00:00:00", "9999-12-31 23:59:59", "month", "America/Sao_Paulo")[-1] == (
        "9999-12-01 00:00:00"
    )
    assert end == "9999-12-31 23:59"  # held at the last minute Python can write


def test_start_after_end_is_refused_naming_datetime_start():
    with pytest.raises(InvalidInputError) as refused:
        statistics_request(datetime(2026, 6, 2), datetime(2026, 6, 1), "day", "UTC")
    assert refused.value.problems[0].parameter == "datetime_start"


def test_hour_intervals_cover_at_most_366_days():
    statistics_request(datetime(2024, 1, 1), datetime(2025, 1, 1), "hour", "UTC")
    with pytest.raises(InvalidInputError) as refused:
        statistics_request(datetime(2024, 1, 1), datetime(2025, 1, 1, 0, 0, 1), "hour", "UTC")
    assert refused.value.problems[0].parameter == "datetime_end"
    assert isinstance(statistics_request(datetime(2000, 1, 1), datetime(2026, 1, 1), "day", "UTC"), StatisticsRequest)


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "Asia/Kolkata", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_iana_names_are_zones(name):
    assert zone(name).key == name


@pytest.mark.parametrize(
    "name",
    ["", "utc", "Europe/Nowhere", "Europe", "localtime", "posixrules", "Factory", "/etc/localtime", "../zone.tab",
     "zone.tab", "Europe/Paris\x00", "Europe//Paris", "+05:30", "Europe/Paris ", "Ｕ" * 3],
)  # fmt: skip
def test_other_names_are_not(name):
    with pytest.raises(ValueError):
        zone(name)
