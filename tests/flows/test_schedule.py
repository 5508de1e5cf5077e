import calendar
import time as wallclock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.nodes.schedule.recurrence import (
    WEEKDAYS,
    describe,
    fires_between,
    last_fire_at_or_before,
    next_fire,
    validate_recurrence,
)
from maestra.durations import localize

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
DAILY_10 = {"every": "day", "at": "10:00"}


def berlin(*args, fold=0):
    return datetime(*args, tzinfo=BERLIN, fold=fold)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def fire(recurrence, after, *, tz=BERLIN, anchor=None):
    return next_fire(recurrence, tz=tz, after=after, anchor=anchor or after)


def fires(recurrence, after, until, *, tz=BERLIN, anchor=None):
    return fires_between(recurrence, tz=tz, after=after, until=until, anchor=anchor or after)


def latest(recurrence, after, until, *, anchor):
    return last_fire_at_or_before(recurrence, tz=BERLIN, after=after, until=until, anchor=anchor)


def local(moments, tz=BERLIN):
    return [moment.astimezone(tz).replace(tzinfo=None) for moment in moments]


def fire_days(recurrence, after, until):
    """The Berlin dates of the fires in (after, until]."""
    return [moment.astimezone(BERLIN).date() for moment in fires(recurrence, after, until)]


def days(*iso_dates):
    return [date.fromisoformat(text) for text in iso_dates]


# --------------------------------------------------------------------------- daily


def test_it_fires_tomorrow_when_launched_after_the_daily_time():
    assert fire(DAILY_10, berlin(2026, 6, 1, 17, 0)) == berlin(2026, 6, 2, 10, 0)


def test_it_fires_today_when_launched_before_the_daily_time():
    assert fire(DAILY_10, berlin(2026, 6, 1, 9, 0)) == berlin(2026, 6, 1, 10, 0)


def test_it_fires_strictly_after_the_given_moment():
    assert fire(DAILY_10, berlin(2026, 6, 1, 10, 0)) == berlin(2026, 6, 2, 10, 0)
    assert fire(DAILY_10, berlin(2026, 6, 1, 9, 59, 59, 999999)) == berlin(2026, 6, 1, 10, 0)
    assert fire(DAILY_10, berlin(2026, 6, 1, 10, 0, 0, 1)) == berlin(2026, 6, 2, 10, 0)


def test_it_returns_aware_utc_datetimes():
    result = fire(DAILY_10, utc(2026, 6, 1, 0, 0))
    assert result.tzinfo is UTC
    assert result == utc(2026, 6, 1, 8, 0)


def test_it_keeps_the_local_time_across_the_spring_change():
    got = fires(DAILY_10, berlin(2026, 3, 28, 0, 0), berlin(2026, 3, 30, 23, 0))
    assert got == [utc(2026, 3, 28, 9, 0), utc(2026, 3, 29, 8, 0), utc(2026, 3, 30, 8, 0)]


def test_it_moves_a_time_in_the_spring_gap_forward_by_the_gap():
    recurrence = {"every": "day", "at": "02:30"}
    got = fires(recurrence, berlin(2026, 3, 28, 12, 0), berlin(2026, 3, 31, 0, 0))
    assert local(got) == [datetime(2026, 3, 29, 3, 30), datetime(2026, 3, 30, 2, 30)]
    assert got[0] == utc(2026, 3, 29, 1, 30)


def test_it_takes_the_first_occurrence_of_an_ambiguous_autumn_time():
    recurrence = {"every": "day", "at": "02:30"}
    first = fire(recurrence, berlin(2026, 10, 24, 12, 0))
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, not 02:30 CET (01:30 UTC)
    # The repeat of 02:30 an hour later is not a second fire.
    assert fire(recurrence, first) == berlin(2026, 10, 26, 2, 30)
    assert fire(recurrence, first) == utc(2026, 10, 26, 1, 30)


def test_it_handles_new_york_dst():
    gap = fire({"every": "day", "at": "02:15"}, datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK), tz=NEW_YORK)
    assert gap == datetime(2026, 3, 8, 3, 15, tzinfo=NEW_YORK) == utc(2026, 3, 8, 7, 15)
    ambiguous = fire(
        {"every": "day", "at": "01:30"}, datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK), tz=NEW_YORK
    )
    assert ambiguous == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, the first one


def test_it_reads_the_time_in_the_schedule_zone_not_in_utc():
    # 23:30 UTC on May 31 is already June 1 01:30 in Berlin: today's 10:00 is ahead.
    assert fire(DAILY_10, utc(2026, 5, 31, 23, 30)) == utc(2026, 6, 1, 8, 0)
    assert fire(DAILY_10, utc(2026, 5, 31, 23, 30), tz=NEW_YORK) == utc(2026, 6, 1, 14, 0)


# --------------------------------------------------------------------------- weekly


def test_it_counts_every_two_weeks_from_the_launch_week():
    recurrence = {"every": "week", "interval": 2, "weekdays": ["mon", "thu"], "at": "09:30"}
    anchor = berlin(2026, 3, 4, 12, 0)  # Wednesday of ISO week 10 = week 0
    got = fires(recurrence, anchor, berlin(2026, 4, 10, 0, 0), anchor=anchor)
    assert local(got) == [
        datetime(2026, 3, 5, 9, 30),  # Thu, week 0 (Monday 2 is before the launch)
        datetime(2026, 3, 16, 9, 30),  # week 2
        datetime(2026, 3, 19, 9, 30),
        datetime(2026, 3, 30, 9, 30),  # week 4, after the DST change
        datetime(2026, 4, 2, 9, 30),
    ]


def test_it_keeps_the_week_parity_when_asked_much_later():
    recurrence = {"every": "week", "interval": 2, "weekdays": ["mon"], "at": "09:30"}
    anchor = berlin(2026, 3, 4, 12, 0)
    # Monday 2026-05-11 is 10 weeks after the launch week's Monday (March 2): it fires;
    # Monday 2026-05-18 (week 11) does not.
    assert fire(recurrence, berlin(2026, 5, 10, 0, 0), anchor=anchor) == berlin(2026, 5, 11, 9, 30)
    assert fire(recurrence, berlin(2026, 5, 12, 0, 0), anchor=anchor) == berlin(2026, 5, 25, 9, 30)
    # Across the year boundary: 2026-12-28 is week 43 (skipped), 2027-01-04 is week 44.
    assert fire(recurrence, berlin(2026, 12, 27, 0, 0), anchor=anchor) == berlin(2027, 1, 4, 9, 30)


def test_it_finds_the_launch_week_in_the_schedule_zone():
    recurrence = {"every": "week", "interval": 2, "weekdays": ["mon"], "at": "09:30"}
    # Sunday 23:30 UTC is already Monday 01:30 in Berlin: that Monday's week is week 0.
    anchor = utc(2026, 3, 8, 23, 30)
    assert fire(recurrence, anchor, anchor=anchor) == berlin(2026, 3, 9, 9, 30)
    # In New York it is still Sunday March 8, in the week of Monday March 2: that
    # week is week 0, Monday March 9 is week 1 (skipped), March 16 week 2.
    assert fire(recurrence, anchor, anchor=anchor, tz=NEW_YORK) == datetime(
        2026, 3, 16, 9, 30, tzinfo=NEW_YORK
    )


def test_it_fires_weekly_by_default():
    recurrence = {"every": "week", "weekdays": ["sun", "wed"], "at": "18:00"}
    assert fire_days(recurrence, berlin(2026, 6, 1, 0, 0), berlin(2026, 6, 15, 0, 0)) == days(
        "2026-06-03", "2026-06-07", "2026-06-10", "2026-06-14"
    )


# --------------------------------------------------------------------------- monthly


def monthly(**days):
    return {"every": "month", **days, "at": "08:00"}


# id: ((the recurrence, the interval (after, until] in Berlin), the Berlin dates it fires on)
MONTHLY_FIRE_DAYS = {
    "day 31 is skipped in short months instead of moved": (
        (monthly(days=[31]), berlin(2026, 1, 1), berlin(2026, 12, 31, 23)),
        "2026-01-31 2026-03-31 2026-05-31 2026-07-31 2026-08-31 2026-10-31 2026-12-31",
    ),
    "the last day of every month": (
        (monthly(days=["last"]), berlin(2027, 12, 1), berlin(2028, 5, 1)),
        "2027-12-31 2028-01-31 2028-02-29 2028-03-31 2028-04-30",
    ),
    "once when a day and last coincide": (
        (monthly(days=[1, 15, "last", 31]), berlin(2026, 1, 1, 9), berlin(2026, 2, 28, 23)),
        "2026-01-15 2026-01-31 2026-02-01 2026-02-15 2026-02-28",
    ),
    "the nth weekday": (
        (monthly(nth_weekday={"n": 2, "weekday": "tue"}), berlin(2026, 1, 1), berlin(2026, 4, 30)),
        "2026-01-13 2026-02-10 2026-03-10 2026-04-14",
    ),
    "months without a fifth weekday are skipped": (
        (monthly(nth_weekday={"n": 5, "weekday": "tue"}), berlin(2026, 1, 1), berlin(2026, 12, 31, 23)),
        "2026-03-31 2026-06-30 2026-09-29 2026-12-29",
    ),
    "the last weekday of the month": (
        (monthly(nth_weekday={"n": -1, "weekday": "fri"}), berlin(2026, 1, 1), berlin(2026, 4, 30)),
        "2026-01-30 2026-02-27 2026-03-27 2026-04-24",
    ),
    # "*/2" counts as unrestricted (Vixie cron): odd days that are also Fridays.
    "cron matches both day fields when one starts with a star": (
        ({"cron": "0 12 */2 * fri"}, berlin(2026, 2, 1), berlin(2026, 3, 31, 23)),
        "2026-02-13 2026-02-27 2026-03-13 2026-03-27",
    ),
}


@pytest.mark.parametrize(("window", "expected"), MONTHLY_FIRE_DAYS.values(), ids=MONTHLY_FIRE_DAYS)
def test_it_fires_on_the_expected_days_of_the_month(window, expected):
    recurrence, after, until = window
    assert fire_days(recurrence, after, until) == days(*expected.split())


def test_it_fires_on_february_29_only_in_leap_years():
    recurrence = {"every": "month", "days": [29], "at": "08:00"}
    assert fire(recurrence, berlin(2028, 1, 30, 0, 0)) == berlin(2028, 2, 29, 8, 0)
    assert fire(recurrence, berlin(2027, 1, 30, 0, 0)) == berlin(2027, 3, 29, 8, 0)
    # Day 30 never fits February, not even in a leap year.
    assert fire({"every": "month", "days": [30], "at": "08:00"}, berlin(2028, 1, 31)) == berlin(
        2028, 3, 30, 8, 0
    )


def test_it_fires_on_february_28_as_the_last_day_of_a_common_year():
    recurrence = {"every": "month", "days": ["last"], "at": "08:00"}
    assert fire(recurrence, berlin(2027, 2, 1, 0, 0)) == berlin(2027, 2, 28, 8, 0)


def test_it_takes_the_fourth_sunday_as_the_last_when_february_starts_on_a_sunday():
    sunday = {"every": "month", "nth_weekday": {"n": -1, "weekday": "sun"}, "at": "08:00"}
    assert fire(sunday, berlin(2026, 2, 1, 9, 0)) == berlin(2026, 2, 22, 8, 0)


# --------------------------------------------------------------------------- cron


def test_it_runs_a_weekday_cron():
    # Friday 17:00 → Monday 10:00.
    assert fire({"cron": "0 10 * * 1-5"}, berlin(2026, 6, 5, 17, 0)) == berlin(2026, 6, 8, 10, 0)


def test_it_reads_cron_names_steps_and_lists():
    recurrence = {"cron": "*/20 9-10 * * MON-wed,fri"}
    got = fires(recurrence, berlin(2026, 6, 3, 10, 30), berlin(2026, 6, 5, 9, 30))
    assert local(got) == [
        datetime(2026, 6, 3, 10, 40),
        datetime(2026, 6, 5, 9, 0),
        datetime(2026, 6, 5, 9, 20),
    ]
    months = fires({"cron": "30 8 1,15 jan,jul *"}, berlin(2026, 1, 1, 9, 0), berlin(2026, 12, 31))
    assert local(months) == [
        datetime(2026, 1, 15, 8, 30),
        datetime(2026, 7, 1, 8, 30),
        datetime(2026, 7, 15, 8, 30),
    ]


def test_it_reads_a_start_with_a_step_as_start_to_max():
    got = fires({"cron": "5/20 10 * * *"}, berlin(2026, 6, 1, 0, 0), berlin(2026, 6, 1, 23, 0))
    assert [moment.astimezone(BERLIN).minute for moment in got] == [5, 25, 45]


def test_it_counts_sunday_as_0_and_7_in_cron():
    for expression in ("0 12 * * 0", "0 12 * * 7", "0 12 * * sun", "0 12 * * fri-sun"):
        assert fire({"cron": expression}, berlin(2026, 6, 5, 13, 0)).astimezone(BERLIN).date() in (
            date(2026, 6, 6),
            date(2026, 6, 7),
        ), expression
    assert fire({"cron": "0 12 * * 7"}, berlin(2026, 6, 1, 0, 0)) == berlin(2026, 6, 7, 12, 0)
    assert fire({"cron": "0 12 * * fri-sun"}, berlin(2026, 6, 5, 13, 0)) == berlin(2026, 6, 6, 12, 0)


def test_it_matches_either_day_field_when_both_are_restricted():
    # The 13th OR any Friday, as in cron.
    got = fires({"cron": "0 12 13 * fri"}, berlin(2026, 2, 1, 0, 0), berlin(2026, 2, 28, 23, 0))
    assert [moment.astimezone(BERLIN).day for moment in got] == [6, 13, 20, 27]
    got = fires({"cron": "0 12 10 * fri"}, berlin(2026, 2, 1, 0, 0), berlin(2026, 2, 28, 23, 0))
    assert [moment.astimezone(BERLIN).day for moment in got] == [6, 10, 13, 20, 27]


def test_it_applies_the_dst_rules_to_cron_times():
    got = fires({"cron": "*/30 1-3 * * *"}, berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 29, 12, 0))
    # 02:00 and 02:30 do not exist: they move forward by the gap onto 03:00
    # and 03:30, which fire once each.
    assert local(got) == [
        datetime(2026, 3, 29, 1, 0),
        datetime(2026, 3, 29, 1, 30),
        datetime(2026, 3, 29, 3, 0),
        datetime(2026, 3, 29, 3, 30),
    ]
    autumn = fires({"cron": "*/30 2 * * *"}, berlin(2026, 10, 25, 0, 0), berlin(2026, 10, 25, 12, 0))
    assert autumn == [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30)]  # CEST only


def test_it_fires_every_minute_without_walking_minutes_for_long_outages():
    every_minute = {"cron": "* * * * *"}
    assert fire(every_minute, berlin(2026, 6, 1, 10, 0, 30)) == berlin(2026, 6, 1, 10, 1)
    assert fire(every_minute, berlin(2026, 6, 1, 23, 59, 0)) == berlin(2026, 6, 2, 0, 0)
    started = wallclock.perf_counter()
    last = last_fire_at_or_before(
        every_minute,
        tz=BERLIN,
        after=berlin(2025, 1, 1),
        until=berlin(2026, 6, 1, 10, 7, 59),
        anchor=berlin(2025, 1, 1),
    )
    assert last == berlin(2026, 6, 1, 10, 7)
    assert wallclock.perf_counter() - started < 1  # generous: it is one day's bisect, not 750,000 minutes


def test_it_finds_a_rare_cron_years_ahead():
    assert fire({"cron": "0 0 29 2 *"}, berlin(2028, 3, 1)) == berlin(2032, 2, 29, 0, 0)
    # 2100 is not a leap year: eight years between February 29s.
    assert fire({"cron": "0 0 29 2 *"}, berlin(2096, 3, 1)) == berlin(2104, 2, 29, 0, 0)


def test_it_finds_a_cron_that_must_match_both_day_fields_twelve_years_ahead():
    # "*/31" starts with "*", so the day (only the 1st) and the weekday must
    # both match (Vixie cron): January 1sts that are Mondays, 2091 then 2103.
    # Validation accepts it, so the engine must find it: with the old 8-year
    # horizon launching raised ValueError.
    recurrence = {"cron": "0 0 */31 jan mon"}
    assert validate_recurrence(recurrence) == []
    assert fire(recurrence, berlin(2091, 1, 2)) == berlin(2103, 1, 1, 0, 0)
    assert last_fire_at_or_before(
        recurrence, tz=BERLIN, after=berlin(2091, 1, 2), until=berlin(2103, 1, 2), anchor=berlin(2091, 1, 2)
    ) == berlin(2103, 1, 1, 0, 0)


@pytest.mark.parametrize(
    "expression",
    [
        "0 10 * *",
        "0 10 * * * *",
        "60 10 * * *",
        "0 24 * * *",
        "0 10 0 * *",
        "0 10 32 * *",
        "0 10 * 13 *",
        "0 10 * * 8",
        "0 10 * * funday",
        "0 10 * foo *",
        "5-1 * * * *",
        "*/0 * * * *",
        "1,,2 * * * *",
        "@daily",
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 30,31 feb *",
    ],
)
def test_it_rejects_bad_cron_expressions(expression):
    problems = validate_recurrence({"cron": expression})
    assert problems and problems[0][0] == "cron"
    with pytest.raises(ValueError):
        fire({"cron": expression}, berlin(2026, 6, 1))


def test_it_accepts_a_cron_impossible_by_day_but_saved_by_the_weekday():
    # Both day fields restricted: Mondays fire even though February 30 never comes.
    assert validate_recurrence({"cron": "0 0 30 2 mon"}) == []
    assert fire({"cron": "0 0 30 2 mon"}, berlin(2026, 1, 1)) == berlin(2026, 2, 2, 0, 0)


# --------------------------------------------------------------------------- missed fires


def test_it_lists_fires_in_a_half_open_interval():
    got = fires(DAILY_10, berlin(2026, 6, 1, 10, 0), berlin(2026, 6, 4, 10, 0))
    assert got == [berlin(2026, 6, 2, 10, 0), berlin(2026, 6, 3, 10, 0), berlin(2026, 6, 4, 10, 0)]
    assert fires(DAILY_10, berlin(2026, 6, 4, 10, 0), berlin(2026, 6, 1, 10, 0)) == []
    assert fires(DAILY_10, berlin(2026, 6, 1, 11, 0), berlin(2026, 6, 2, 9, 0)) == []


def test_it_merges_missed_fires_into_the_latest_one():
    down_since, now = berlin(2026, 6, 1, 9, 0), berlin(2026, 6, 5, 12, 0)
    latest = last_fire_at_or_before(DAILY_10, tz=BERLIN, after=down_since, until=now, anchor=down_since)
    assert latest == berlin(2026, 6, 5, 10, 0)
    assert fire(DAILY_10, now, anchor=down_since) == berlin(2026, 6, 6, 10, 0)


def test_it_finds_no_missed_fire_when_none_was_due():
    anchor = berlin(2026, 6, 1)
    assert latest(DAILY_10, berlin(2026, 6, 1, 10, 0), berlin(2026, 6, 2, 9, 59), anchor=anchor) is None
    assert latest(DAILY_10, berlin(2026, 6, 2, 10, 0), berlin(2026, 6, 1, 10, 0), anchor=anchor) is None


def test_it_includes_a_fire_exactly_at_until_but_not_at_after():
    anchor = berlin(2026, 6, 1)
    assert latest(DAILY_10, berlin(2026, 6, 1, 11), berlin(2026, 6, 2, 10), anchor=anchor) == berlin(
        2026, 6, 2, 10
    )
    assert latest(DAILY_10, berlin(2026, 6, 2, 10), berlin(2026, 6, 3, 9), anchor=anchor) is None


def test_it_finds_the_latest_missed_fire_of_a_rare_recurrence():
    recurrence = {"every": "month", "nth_weekday": {"n": 5, "weekday": "tue"}, "at": "08:00"}
    latest = last_fire_at_or_before(
        recurrence, tz=BERLIN, after=berlin(2026, 1, 1), until=berlin(2026, 12, 1), anchor=berlin(2026, 1, 1)
    )
    assert latest == berlin(2026, 9, 29, 8, 0)


def test_it_merges_missed_fires_on_a_dst_day():
    recurrence = {"cron": "*/30 2 * * *"}
    latest = last_fire_at_or_before(
        recurrence,
        tz=BERLIN,
        after=berlin(2026, 10, 24, 12),
        until=berlin(2026, 10, 25, 12),
        anchor=berlin(2026, 10, 1),
    )
    assert latest == utc(2026, 10, 25, 0, 30)


# --------------------------------------------------------------------------- bad input


def test_it_refuses_naive_moments():
    with pytest.raises(ValueError):
        next_fire(DAILY_10, tz=BERLIN, after=datetime(2026, 6, 1), anchor=berlin(2026, 6, 1))
    with pytest.raises(ValueError):
        next_fire(DAILY_10, tz=BERLIN, after=berlin(2026, 6, 1), anchor=datetime(2026, 6, 1))
    with pytest.raises(ValueError):
        fires_between(
            DAILY_10,
            tz=BERLIN,
            after=berlin(2026, 6, 1),
            until=datetime(2026, 6, 2),
            anchor=berlin(2026, 6, 1),
        )


def test_it_refuses_an_invalid_recurrence():
    with pytest.raises(ValueError, match="at"):
        next_fire({"every": "day"}, tz=BERLIN, after=berlin(2026, 6, 1), anchor=berlin(2026, 6, 1))


@pytest.mark.parametrize(
    "recurrence",
    [
        {"every": "day", "at": "10:00"},
        {"every": "day", "at": "00:05"},
        {"every": "day", "at": "23:59"},
        {"every": "week", "weekdays": ["mon"], "at": "09:30"},
        {"every": "week", "interval": 52, "weekdays": list(WEEKDAYS), "at": "09:30"},
        {"every": "month", "days": [1, 15, "last"], "at": "08:00"},
        {"every": "month", "days": [31], "at": "08:00"},
        {"every": "month", "nth_weekday": {"n": 5, "weekday": "sun"}, "at": "08:00"},
        {"every": "month", "nth_weekday": {"n": -1, "weekday": "mon"}, "at": "08:00"},
        {"cron": "0 10 * * 1-5"},
        {"cron": " */15  9-17/2 1,15 jan-jun,dec mon-fri "},
    ],
)
def test_it_accepts_valid_recurrences(recurrence):
    assert validate_recurrence(recurrence) == []


@pytest.mark.parametrize(
    ("recurrence", "path"),
    [
        ("daily", ""),
        (None, ""),
        ({}, "every"),
        ({"every": "year", "at": "10:00"}, "every"),
        ({"every": "day"}, "at"),
        ({"every": "day", "at": "24:00"}, "at"),
        ({"every": "day", "at": "10:60"}, "at"),
        ({"every": "day", "at": "10am"}, "at"),
        ({"every": "day", "at": 1000}, "at"),
        # One format for times, as the document writes them (the schedule node said so already).
        ({"every": "day", "at": "9:30"}, "at"),
        ({"every": "day", "at": "09:30\n"}, "at"),
        ({"every": "day", "at": "10:00", "interval": 2}, "interval"),
        ({"every": "week", "at": "10:00"}, "weekdays"),
        ({"every": "week", "weekdays": [], "at": "10:00"}, "weekdays"),
        ({"every": "week", "weekdays": "mon", "at": "10:00"}, "weekdays"),
        ({"every": "week", "weekdays": ["monday"], "at": "10:00"}, "weekdays.0"),
        ({"every": "week", "weekdays": ["mon", "Mon"], "at": "10:00"}, "weekdays.1"),
        ({"every": "week", "weekdays": ["mon", "mon"], "at": "10:00"}, "weekdays.1"),
        ({"every": "week", "interval": 0, "weekdays": ["mon"], "at": "10:00"}, "interval"),
        ({"every": "week", "interval": 53, "weekdays": ["mon"], "at": "10:00"}, "interval"),
        ({"every": "week", "interval": True, "weekdays": ["mon"], "at": "10:00"}, "interval"),
        ({"every": "week", "interval": "2", "weekdays": ["mon"], "at": "10:00"}, "interval"),
        ({"every": "month", "at": "10:00"}, "days"),
        ({"every": "month", "days": [], "at": "10:00"}, "days"),
        ({"every": "month", "days": [0], "at": "10:00"}, "days.0"),
        ({"every": "month", "days": [1, 32], "at": "10:00"}, "days.1"),
        ({"every": "month", "days": ["first"], "at": "10:00"}, "days.0"),
        ({"every": "month", "days": [True], "at": "10:00"}, "days.0"),
        ({"every": "month", "days": [5, 5], "at": "10:00"}, "days.1"),
        ({"every": "month", "days": [1], "nth_weekday": {"n": 1, "weekday": "mon"}, "at": "10:00"}, "days"),
        ({"every": "month", "nth_weekday": {"n": 0, "weekday": "mon"}, "at": "10:00"}, "nth_weekday.n"),
        ({"every": "month", "nth_weekday": {"n": 6, "weekday": "mon"}, "at": "10:00"}, "nth_weekday.n"),
        ({"every": "month", "nth_weekday": {"n": -2, "weekday": "mon"}, "at": "10:00"}, "nth_weekday.n"),
        (
            {"every": "month", "nth_weekday": {"n": 1, "weekday": "monday"}, "at": "10:00"},
            "nth_weekday.weekday",
        ),
        (
            {"every": "month", "nth_weekday": {"n": 1, "weekday": "mon", "x": 1}, "at": "10:00"},
            "nth_weekday.x",
        ),
        ({"every": "month", "nth_weekday": [2, "tue"], "at": "10:00"}, "nth_weekday"),
        ({"cron": "0 10 * * *", "every": "day"}, "every"),
        ({"cron": 10}, "cron"),
    ],
)
def test_it_reports_bad_recurrences_with_a_field_path(recurrence, path):
    problems = validate_recurrence(recurrence)
    assert path in [problem_path for problem_path, _ in problems], problems
    assert all(message for _, message in problems)


# --------------------------------------------------------------------------- describe


@pytest.mark.parametrize(
    ("recurrence", "text"),
    [
        ({"every": "day", "at": "10:00"}, "Every day at 10:00"),
        ({"every": "day", "at": "07:05"}, "Every day at 07:05"),
        (
            {"every": "week", "interval": 2, "weekdays": ["thu", "mon"], "at": "09:30"},
            "Every 2 weeks on Mon, Thu at 09:30",
        ),
        ({"every": "week", "weekdays": ["sun"], "at": "18:00"}, "Every week on Sun at 18:00"),
        (
            {"every": "month", "days": ["last", 15, 1], "at": "08:00"},
            "Every month on the 1st, 15th and last day at 08:00",
        ),
        (
            {"every": "month", "days": [2, 3, 11, 22, 23], "at": "08:00"},
            "Every month on the 2nd, 3rd, 11th, 22nd and 23rd day at 08:00",
        ),
        ({"every": "month", "days": [31], "at": "08:00"}, "Every month on the 31st day at 08:00"),
        (
            {"every": "month", "nth_weekday": {"n": 2, "weekday": "tue"}, "at": "08:00"},
            "Every month on the 2nd Tuesday at 08:00",
        ),
        (
            {"every": "month", "nth_weekday": {"n": -1, "weekday": "fri"}, "at": "08:00"},
            "Every month on the last Friday at 08:00",
        ),
        ({"cron": "0 10  * * 1-5"}, "Cron schedule “0 10 * * 1-5”"),
    ],
)
def test_it_describes_recurrences(recurrence, text):
    assert describe(recurrence) == text


def test_it_describes_an_invalid_recurrence_without_raising():
    assert describe({"every": "fortnight"}).startswith("Invalid recurrence (every:")


# --------------------------------------------------------------------------- properties


def _brute_matches(recurrence: dict, day: date, anchor_day: date) -> bool:
    """An independent, obvious reading of the day rules."""
    every = recurrence["every"]
    if every == "day":
        return True
    if every == "week":
        if WEEKDAYS[day.weekday()] not in recurrence["weekdays"]:
            return False
        launch_monday = anchor_day - timedelta(days=anchor_day.weekday())
        this_monday = day - timedelta(days=day.weekday())
        return ((this_monday - launch_monday).days // 7) % recurrence.get("interval", 1) == 0
    month_length = calendar.monthrange(day.year, day.month)[1]
    if "days" in recurrence:
        return day.day in recurrence["days"] or ("last" in recurrence["days"] and day.day == month_length)
    nth = recurrence["nth_weekday"]
    if WEEKDAYS[day.weekday()] != nth["weekday"]:
        return False
    same_weekdays = [
        d for d in range(1, month_length + 1) if date(day.year, day.month, d).weekday() == day.weekday()
    ]
    if nth["n"] == -1:
        return same_weekdays[-1] == day.day
    return len(same_weekdays) >= nth["n"] and same_weekdays[nth["n"] - 1] == day.day


def _brute_fires(recurrence, tz, first_day, last_day, anchor_day):
    hour, minute = map(int, recurrence["at"].split(":"))
    moments = []
    day = first_day
    while day <= last_day:
        if _brute_matches(recurrence, day, anchor_day):
            moments.append(localize(datetime.combine(day, time(hour, minute)), tz).astimezone(UTC))
        day += timedelta(days=1)
    return sorted(set(moments))


_times = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 59]))
_recurrences = st.one_of(
    st.builds(lambda at: {"every": "day", "at": at}, _times),
    st.builds(
        lambda at, interval, days: {"every": "week", "interval": interval, "weekdays": days, "at": at},
        _times,
        st.integers(1, 5),
        st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
    ),
    st.builds(
        lambda at, days: {"every": "month", "days": days, "at": at},
        _times,
        st.lists(st.one_of(st.integers(1, 31), st.just("last")), min_size=1, max_size=5, unique=True),
    ),
    st.builds(
        lambda at, n, weekday: {"every": "month", "nth_weekday": {"n": n, "weekday": weekday}, "at": at},
        _times,
        st.sampled_from([1, 2, 3, 4, 5, -1]),
        st.sampled_from(WEEKDAYS),
    ),
)
_zones = st.sampled_from(
    [BERLIN, NEW_YORK, ZoneInfo("UTC"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("America/Havana")]
)
# Around DST changes on purpose: late March / late October / early November are frequent.
_any_moment = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
# Half of the moments fall within a few days of a DST change somewhere.
_near_dst = st.builds(
    lambda year, change, hours: datetime(year, *change, tzinfo=UTC) + timedelta(hours=hours),
    st.integers(2025, 2030),
    st.sampled_from([(3, 8), (3, 29), (4, 5), (10, 4), (10, 25), (11, 1), (3, 14), (11, 7)]),
    st.integers(-96, 96),
)
_moments = st.one_of(_any_moment, _near_dst)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recurrence=_recurrences, tz=_zones, after=_moments, anchor_back=st.integers(0, 400))
def test_next_fire_is_the_first_fire_found_by_brute_force(recurrence, tz, after, anchor_back):
    anchor = after - timedelta(days=anchor_back)
    anchor_day = anchor.astimezone(tz).date()
    result = next_fire(recurrence, tz=tz, after=after, anchor=anchor)
    assert result > after
    assert result.tzinfo is UTC
    first_day = after.astimezone(tz).date() - timedelta(days=1)
    brute = [
        m
        for m in _brute_fires(
            recurrence, tz, first_day, result.astimezone(tz).date() + timedelta(days=1), anchor_day
        )
        if m > after
    ]
    assert brute[0] == result
    # Nothing fires strictly between, and the interval helpers agree.
    assert (
        fires_between(recurrence, tz=tz, after=after, until=result - timedelta(microseconds=1), anchor=anchor)
        == []
    )
    assert fires_between(recurrence, tz=tz, after=after, until=result, anchor=anchor) == [result]
    assert last_fire_at_or_before(recurrence, tz=tz, after=after, until=result, anchor=anchor) == result


@settings(max_examples=100, deadline=None)
@given(recurrence=_recurrences, tz=_zones, after=_moments, span=st.integers(1, 120))
def test_fires_between_matches_brute_force_day_by_day(recurrence, tz, after, span):
    anchor = after
    until = after + timedelta(days=span)
    got = fires_between(recurrence, tz=tz, after=after, until=until, anchor=anchor)
    brute = _brute_fires(
        recurrence,
        tz,
        after.astimezone(tz).date() - timedelta(days=1),
        until.astimezone(tz).date() + timedelta(days=1),
        anchor.astimezone(tz).date(),
    )
    assert got == [m for m in brute if after < m <= until]
    last = last_fire_at_or_before(recurrence, tz=tz, after=after, until=until, anchor=anchor)
    assert last == (got[-1] if got else None)


def _brute_cron_fires(fields, tz, after, until):
    """Cron read the slow, obvious way: every matching day, every hour and minute."""
    minutes, hours, days, months, weekdays, days_star, weekdays_star = fields
    moments = set()
    day = after.astimezone(tz).date() - timedelta(days=1)
    while day <= until.astimezone(tz).date() + timedelta(days=1):
        in_days, in_weekdays = day.day in days, day.isoweekday() % 7 in weekdays
        both = in_days and in_weekdays
        if day.month in months and (both if days_star or weekdays_star else in_days or in_weekdays):
            for hour in hours:
                for minute in minutes:
                    moments.add(localize(datetime.combine(day, time(hour, minute)), tz).astimezone(UTC))
        day += timedelta(days=1)
    return sorted(m for m in moments if after < m <= until)


def _cron_field(values, low, high):
    """A set of values and one way to write it in cron."""
    return st.one_of(
        st.just(("*", set(range(low, high + 1)), True)),
        st.integers(2, 7).map(lambda step: (f"*/{step}", set(range(low, high + 1, step)), True)),
        st.lists(st.sampled_from(values), min_size=1, max_size=4, unique=True).map(
            lambda chosen: (",".join(map(str, chosen)), set(chosen), False)
        ),
        st.tuples(st.sampled_from(values), st.sampled_from(values)).map(
            lambda pair: (f"{min(pair)}-{max(pair)}", set(range(min(pair), max(pair) + 1)), False)
        ),
    )


@settings(max_examples=100, deadline=None)
@given(
    minute=_cron_field(list(range(0, 60)), 0, 59),
    hour=_cron_field([0, 1, 2, 3, 9, 12, 23], 0, 23),
    day=_cron_field([1, 2, 13, 28, 29, 30, 31], 1, 31),
    month=_cron_field([1, 2, 3, 4, 10, 11, 12], 1, 12),
    weekday=_cron_field([0, 1, 3, 5, 6], 0, 6),
    tz=_zones,
    after=_moments,
    span=st.integers(1, 10),
)
def test_cron_fires_match_brute_force(minute, hour, day, month, weekday, tz, after, span):
    expression = " ".join(field[0] for field in (minute, hour, day, month, weekday))
    recurrence = {"cron": expression}
    if validate_recurrence(recurrence):
        return  # an impossible day/month pairing, rejected (tested above)
    until = after + timedelta(days=span)
    fields = (minute[1], hour[1], day[1], month[1], weekday[1], day[2], weekday[2])
    got = fires_between(recurrence, tz=tz, after=after, until=until, anchor=after)
    assert got == _brute_cron_fires(fields, tz, after, until), expression
    assert last_fire_at_or_before(recurrence, tz=tz, after=after, until=until, anchor=after) == (
        got[-1] if got else None
    )
    if got:
        assert next_fire(recurrence, tz=tz, after=after, anchor=after) == got[0]
