"""Time in one format everywhere: ISO 8601 UTC with milliseconds, which sorts as text."""

import time
from datetime import UTC, datetime, timedelta

_second_cache: tuple[int, str] = (-1, "")


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_iso(moment: datetime | None = None) -> str:
    if moment is not None:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    # The hot path (every ledger event): format the seconds once per second.
    global _second_cache
    now = time.time()
    seconds = int(now)
    if _second_cache[0] != seconds:
        _second_cache = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds)))
    return f"{_second_cache[1]}{int((now - seconds) * 1000):03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def iso_in(delta: timedelta, moment: datetime | None = None) -> str:
    return utc_iso((moment or utc_now()) + delta)
