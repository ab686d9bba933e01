"""Hot reload of one configuration part that keeps the last good version when a new one
is broken. ``snapshot.LiveConfig`` polls its parts and publishes them together."""

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("gate.reload")

FileState = tuple[tuple[str, int, int], ...]


def file_state(paths: Callable[[], list[Path]]) -> FileState:
    """Name, mtime and size of each file that exists: a change means "reload"."""
    state = []
    for path in paths():
        with contextlib.suppress(OSError):
            stat = path.stat()
            state.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(state))


class Reloadable[T]:
    """Holds one part's last good value (``.current``) and reloads it from its files.

    Polling the files' state needs no platform-specific watcher and costs nothing on the
    request path.
    """

    def __init__(self, name: str, load: Callable[[], T], paths: Callable[[], list[Path]]) -> None:
        self.name = name
        self._load = load
        self._paths = paths
        self.current: T = load()  # a broken config at start raises: serve refuses to start
        self._state = file_state(paths)
        self.last_error: str | None = None
        self.generation = 1
        self.on_failure: Callable[[str], None] | None = None

    def changed(self) -> bool:
        """True when a file was added, removed or modified since the last (re)load."""
        return file_state(self._paths) != self._state

    def reload_now(self) -> bool:
        """Load again; True if the new version replaced ``.current``."""
        self._state = file_state(self._paths)
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
