"""Structured logs: one JSON object per line. Decisions get one canonical line each."""

import json
import logging
import sys
import time
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
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
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
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
