"""utc_iso's cached formatting equals strftime's for every moment it formats."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from gate_proxy.clock import utc_iso


def reference(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1)))
def test_utc_moments_format_as_strftime_does(naive: datetime) -> None:
    moment = naive.replace(tzinfo=UTC)
    assert utc_iso(moment) == reference(moment)


def test_second_boundaries_and_the_cache_between_calls() -> None:
    base = datetime(2026, 12, 2, 23, 59, 59, 999_999, tzinfo=UTC)
    for step in (timedelta(0), timedelta(microseconds=1), timedelta(seconds=-1), timedelta(0)):
        moment = base + step
        assert utc_iso(moment) == reference(moment)
    assert utc_iso(base) == "2026-12-02T23:59:59.999Z"
    assert utc_iso(base + timedelta(microseconds=1)) == "2026-12-03T00:00:00.000Z"
    # Far from the epoch a float timestamp rounds .999997 up to the next second.
    far = datetime(3059, 1, 1, 0, 0, 0, 999_997, tzinfo=UTC)
    assert utc_iso(far) == "3059-01-01T00:00:00.999Z"
    before_epoch = datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)
    assert utc_iso(before_epoch) == "1969-12-31T23:59:59.500Z"


def test_other_zones_keep_their_wall_time_as_before() -> None:
    # Not UTC: formatted as strftime shows it (callers pass UTC; this keeps old behaviour).
    moment = datetime(2026, 1, 1, 12, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=2)))
    assert utc_iso(moment) == reference(moment)
