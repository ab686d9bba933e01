"""Structured logs: one JSON object per line. Decisions get one canonical line each."""

import json
import logging
import sys
import time
from typing import Any

_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        # strftime once per second, not once per line (a busy proxy writes thousands).
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type and message only: tracebacks can carry request data.
            entry["exc"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        # The standard library's layout ("key": "value"), which log tooling and tests
        # match on; orjson would save ~4 us a line but cannot write that layout.
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # No line shows where it was logged from (file, line, function) or which thread,
    # process or task: finding the caller walks the stack on every record (half the cost
    # of a decision line under mitmproxy's deep stacks), and the rest are lookups nobody
    # reads. These are the logging module's own switches for it.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False
    # aiohttp's access log duplicates our decision lines and logs raw URLs.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


decision_log = logging.getLogger("gate.decision")


def log_decision(
    *,
    decision: str,
    agent: str,
    destination: str,
    policy: str,
    reason: str | None,
    intent_id: str | None,
    latency_ms: float,
    source: str,
    **extra: Any,
) -> None:
    """The canonical log line: exactly one per decision."""
    if not decision_log.isEnabledFor(logging.INFO):
        return
    decision_log.info(
        "decision",
        extra={
            "event": "decision",
            "decision": decision,
            "agent": agent,
            "destination": destination,
            "policy": policy,
            "reason": reason,
            "intent_id": intent_id,
            "latency_ms": round(latency_ms, 3),
            "source": source,
            **extra,
        },
    )
