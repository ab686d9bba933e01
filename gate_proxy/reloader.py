"""Hot reload that keeps the last good configuration when a new one is broken."""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("gate.reload")


def _snapshot(paths: Callable[[], list[Path]]) -> tuple[tuple[str, int, int], ...]:
    state = []
    for path in paths():
        with contextlib.suppress(OSError):
            stat = path.stat()
            state.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(state))


class Reloadable[T]:
    """Holds the live value; ``watch()`` polls the files and swaps in valid new versions.

    Polling (1 s) needs no platform-specific watcher and costs nothing on the request path:
    readers take ``.current``, a plain attribute.
    """

    def __init__(self, name: str, load: Callable[[], T], paths: Callable[[], list[Path]]) -> None:
        self.name = name
        self._load = load
        self._paths = paths
        self.current: T = load()  # a broken config at start raises: serve refuses to start
        self._state = _snapshot(paths)
        self.last_error: str | None = None
        self.generation = 1
        self.on_failure: Callable[[str], None] | None = None

    def reload_now(self) -> bool:
        self._state = _snapshot(self._paths)
        try:
            value = self._load()
        except Exception as exc:  # keep serving the last good version
            self.last_error = str(exc)
            if self.on_failure is not None:
                self.on_failure(self.name)
            log.error(
                "%s reload failed, keeping the last good version: %s",
                self.name,
                exc,
                extra={"event": "config_reload_failed", "config": self.name},
            )
            return False
        self.current = value
        self.last_error = None
        self.generation += 1
        log.info("%s reloaded", self.name, extra={"event": "config_reloaded", "config": self.name})
        return True

    async def watch(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            if _snapshot(self._paths) != self._state:
                self.reload_now()
