"""Time in one format everywhere (ISO 8601 UTC with milliseconds, which sorts as text),
from one injectable clock.

Every deadline the gate keeps (intent expiry, execution windows, sessions, budgets' and
rate limits' windows) reads wall time through ``utc_now``/``utc_iso``, so tests can move
time instead of waiting for it:

- in process: ``with use_clock(ManualClock(...)) as clock: clock.advance(seconds)``;
- against the real daemon: ``GATE_CLOCK_OFFSET_FILE=/path`` makes the process add the
  number of seconds written in that file to the system time (``OffsetClock``). It is a
  test and drill switch, logged loudly at start; never set it in production.

Timers (``asyncio`` sleeps, timeouts) keep using the monotonic clock.
"""

import contextlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

CLOCK_OFFSET_ENV = "GATE_CLOCK_OFFSET_FILE"


class Clock:
    """The system clock. Subclasses shift or freeze it."""

    def time(self) -> float:
        """Seconds since the epoch (like ``time.time()``)."""
        return time.time()


class ManualClock(Clock):
    """A clock that moves only when told to (in-process tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime.now(UTC)).timestamp()

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class OffsetClock(Clock):
    """System time plus an offset read from a file (a stat per reading: tests only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0.0
        self._seen: tuple[int, int, int] | None = None

    def time(self) -> float:
        with contextlib.suppress(OSError, ValueError):
            info = self.path.stat()
            seen = (info.st_ino, info.st_mtime_ns, info.st_size)
            if seen != self._seen:
                self._seen = seen
                self._offset = float(self.path.read_text().strip() or 0)
        return time.time() + self._offset


_clock: Clock = Clock()
_second_cache: tuple[int, str] = (-1, "")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND = timedelta(seconds=1)


def current() -> Clock:
    return _clock


def install(clock: Clock) -> None:
    global _clock
    _clock = clock


def install_from_environment() -> Clock | None:
    """Install an OffsetClock when GATE_CLOCK_OFFSET_FILE is set; return it."""
    path = os.environ.get(CLOCK_OFFSET_ENV)
    if not path:
        return None
    clock = OffsetClock(Path(path))
    install(clock)
    return clock


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    previous = _clock
    install(clock)
    try:
        yield clock
    finally:
        install(previous)


def utc_now() -> datetime:
    return datetime.fromtimestamp(_clock.time(), UTC)


def utc_iso(moment: datetime | None = None) -> str:
    # The hot path (every ledger event, several times per decision): the seconds are
    # formatted once per second, not by strftime on every call (~4 µs each).
    global _second_cache
    if moment is not None:
        if moment.tzinfo is not UTC or moment.year < 1970:
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        # Exact integer seconds: timestamp() is a float and rounds .999997 up past
        # year ~2200 (found by tests/test_clock.py's property test).
        seconds, millis = (moment - _EPOCH) // _ONE_SECOND, moment.microsecond // 1000
    else:
        now = _clock.time()
        seconds = int(now)
        millis = int((now - seconds) * 1000)
    if _second_cache[0] != seconds:
        _second_cache = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds)))
    return f"{_second_cache[1]}{millis:03d}Z"


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def iso_in(delta: timedelta, moment: datetime | None = None) -> str:
    return utc_iso((moment or utc_now()) + delta)
