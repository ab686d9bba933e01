"""Helpers shared by the benchmarks: percentiles, markdown tables, the run header.

Only the standard library, so any bench can import it without side effects.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
import shlex
import sqlite3
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100) of an unsorted sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Iterable[float]) -> float:
    data = [v for v in values if not math.isnan(v)]
    return statistics.median(data) if data else math.nan


def spread(values: Iterable[float]) -> str:
    """ "min–max" of the repetitions, to show how noisy a median is."""
    data = [v for v in values if not math.isnan(v)]
    if not data:
        return "-"
    return f"{fmt(min(data))}–{fmt(max(data))}"


def fmt(value: float, digits: int | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if digits is not None:
        return f"{value:,.{digits}f}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


def command_line() -> str:
    """The command as typed from the repository root, for the report."""
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(REPO)
    return " ".join([".venv/bin/python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_notes() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return (
        f"{os.cpu_count()} cores ({_cpu_model()}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def source_tree() -> str:
    """The commit the numbers belong to, and whether the working tree had changes."""
    import subprocess

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + (" with uncommitted changes" if dirty else "")


def header(title: str) -> str:
    now = datetime.datetime.now(datetime.UTC)
    return "\n".join(
        [
            f"## {title}",
            "",
            f"- command: `{command_line()}`",
            f"- date: {now:%Y-%m-%d %H:%M} UTC; source: {source_tree()}",
            f"- machine: {machine_notes()}",
        ]
    )


def _process_ticks() -> dict[int, tuple[str, int]]:
    ticks: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))
    return ticks


def _system_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values), idle


def background_load(seconds: float = 1.0, exclude: Iterable[int] = ()) -> str:
    """How busy the machine is *without* the benchmark: system CPU use over a short window,
    and the processes that used it. Other engineers share these machines."""
    import time

    skip = {os.getpid(), *exclude}
    try:
        before_sys, before_procs = _system_ticks(), _process_ticks()
        time.sleep(seconds)
        after_sys, after_procs = _system_ticks(), _process_ticks()
    except OSError:
        return "unknown"
    total = after_sys[0] - before_sys[0]
    busy = total - (after_sys[1] - before_sys[1])
    hz = os.sysconf("SC_CLK_TCK")
    hogs = []
    for pid, (name, used) in after_procs.items():
        if pid in skip or pid not in before_procs:
            continue
        pct = (used - before_procs[pid][1]) / hz / seconds * 100
        if pct >= 5:
            hogs.append((pct, f"{name}[{pid}] {pct:.0f}%"))
    hogs.sort(reverse=True)
    share = busy / total * 100 if total else math.nan
    cores = os.cpu_count() or 1
    text = f"{share * cores / 100:.2f} of {cores} cores busy before the run"
    if hogs:
        text += " (" + ", ".join(h for _, h in hogs[:4]) + ")"
    return text
