"""The decision line stays one JSON object per line in the same layout, for less: no caller,
thread or process lookups per record, and the timestamp rendered once per second."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gate_proxy import logs

SWITCHES = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {name: getattr(logging, name) for name in SWITCHES})
    try:
        logs.setup_logging("INFO")
        out = io.StringIO()
        root.handlers[0].setStream(out)  # type: ignore[attr-defined]
        yield out
    finally:
        root.handlers[:], level, switches = saved
        root.setLevel(level)
        for name, value in switches.items():
            setattr(logging, name, value)


def test_the_decision_line_keeps_its_layout(stream: io.StringIO) -> None:
    logs.log_decision(
        decision="approved",
        agent="bot",
        destination="crm.ok",
        policy="auto",
        reason=None,
        intent_id="int_1",
        latency_ms=1.23456,
        source="proxy",
        status=200,
        note="caf\u00e9",  # UTF-8 as is (ensure_ascii=False)
    )
    (line,) = stream.getvalue().splitlines()
    assert '"event": "decision"' in line  # the layout log tooling (and tests) match on
    entry = json.loads(line)
    assert (entry["decision"], entry["latency_ms"], entry["status"]) == ("approved", 1.235, 200)
    assert entry["ts"].endswith("Z") and len(entry["ts"]) == len("2026-01-01T00:00:00.000Z")
    assert entry["note"].startswith("caf\u00e9")
    for absent in ("funcName", "lineno", "pathname", "thread", "process", "taskName"):
        assert absent not in entry
    assert logging._srcfile is None  # type: ignore[attr-defined]


def test_timestamps_follow_each_record(stream: io.StringIO) -> None:
    formatter = logging.getLogger().handlers[0].formatter
    assert formatter is not None
    first = logging.makeLogRecord({"msg": "a", "created": 1_700_000_000.25, "msecs": 250.0})
    second = logging.makeLogRecord({"msg": "b", "created": 1_700_000_001.5, "msecs": 500.0})
    stamps = [json.loads(formatter.format(r))["ts"] for r in (first, second, first)]
    assert stamps == [
        "2023-11-14T22:13:20.250Z",
        "2023-11-14T22:13:21.500Z",
        "2023-11-14T22:13:20.250Z",
    ]
