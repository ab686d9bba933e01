"""What the content analyzers add to one `evaluate()` call, for a 2 KB JSON body.

Run from the repository root:

    .venv/bin/python bench/bench_analyzers.py [--iterations N] [--rounds R] [--markdown]

The policy-evaluation benchmark of bench/bench_policy.py (every rule on) is run twice on
the same ~2 KB JSON body: with the analyzers off (the policy's analyzer config switched to
nothing, as before issue #6) and on (the default: PII, secrets and templates on every
payload). Off and on alternate in R rounds so that drift on a shared machine hits both;
each number is the median of the rounds' percentiles. The body is realistic rather than
clean: it holds nine e-mail addresses, so the PII analyzer finds something and the
decision carries a finding and a tag.

Also measured: analyze() alone (that body, and a body with nothing to find), mask_pii()
on it, and the analyzers that only run where configured (SQL with sqlparse, shell and
path fields, record checks). Every loop is bounded by --iterations.

With --adversarial (security issue 9): the worst inputs found for each analyzer, each
analyzer alone, just under the PII/template limit (96 KiB), at 100 KB, just under the SQL
limit (256 KiB), and at 1 MiB (--sizes); CPU time (``time.process_time``), best of --rounds (at
most 3). Every case must end in findings, never an exception, and cost at most about 50 ms
at any size: past its limit an analyzer reports ``too_large`` without reading. To compare
with another checkout, copy this file into its bench/ and run it there (it uses only the
API that existed before issue 9; a case that raises is reported, not fatal).
"""

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import background_load, header, md_table
from bench_policy import CHECKS_YAML, POLICY_YAML, TERMS_YAML

from gate_proxy.core.analyzers import (
    AnalyzerConfig,
    RecordCheck,
    analyze,
    mask_pii,
    parse_field_path,
)
from gate_proxy.core.policy import (
    IntentFacts,
    Policy,
    RateCounts,
    evaluate,
)
from gate_proxy.core.terms import decode_json
from gate_proxy.loaders.policy_file import parse_policy

_REPLY = (
    "thanks for reaching out we have looked into your order and the shipping label was "
    "reprinted so the parcel should arrive within three business days please reply if the "
    "tracking page does not update by friday"
)
TARGET_BYTES = 2048


def build_payload(contacts: bool = True, size: int = TARGET_BYTES) -> str:
    """A support e-mail as JSON, padded to `size` bytes with ordinary prose."""
    words = _REPLY.split(" ")
    payload: dict[str, object] = {
        "to": "customer@example.com" if contacts else "customer",
        "subject": "Re: your ticket 4821",
        "amount": 42,
        "body": "",
        "contacts": [
            {"email": f"person{i}@example.com" if contacts else f"person {i}", "name": f"P {i}"}
            for i in range(8)
        ],
        "tags": ["support", "shipping"],
    }
    count = 0
    while len(json.dumps(payload)) < size:
        count += 1
        payload["body"] = " ".join(words[i % len(words)] for i in range(count))
    return json.dumps(payload)


def timed(fn: Callable[[], object], iterations: int) -> list[int]:
    for _ in range(max(50, iterations // 10)):
        fn()
    gc.collect()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(iterations):
        start = clock()
        fn()
        samples.append(clock() - start)
    samples.sort()
    return samples


def pct(samples: list[int], fraction: float) -> float:
    return samples[min(len(samples) - 1, round(fraction * (len(samples) - 1)))] / 1000


def summary(runs: list[list[int]]) -> tuple[float, float, float]:
    """Median over rounds of each round's p50, p90, p99 (µs)."""
    return tuple(  # type: ignore[return-value]
        statistics.median(pct(run, f) for run in runs) for f in (0.5, 0.9, 0.99)
    )


def without_analyzers(policy: Policy) -> Policy:
    """The same policy with the content analyzers switched off (the pre-#6 baseline)."""
    off = AnalyzerConfig(pii=False, templates=False)
    for each in (policy, *policy.environments.values()):
        object.__setattr__(each, "analyzer_config", off)
    return policy


# -- adversarial inputs (security issue 9) ---------------------------------------------------

ADVERSARIAL_TARGET_MS = 50.0
# PII and templates read up to 512 KiB (a CRM batch), off the event loop: a larger budget.
ADVERSARIAL_TARGET_MS_BY_ANALYZER = {"pii": 160.0, "templates": 160.0}
SQL_ONLY = AnalyzerConfig(sql=True, pii=False, templates=False)
PII_ONLY = AnalyzerConfig(templates=False)
TEMPLATES_ONLY = AnalyzerConfig(pii=False)


def _repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _json_list(item: str, size: int) -> str:
    return json.dumps([item] * max(1, size // (len(item) + 4)))


def _deep_json(item: str, size: int, depth: int = 900) -> str:
    items = ",".join([json.dumps(item)] * max(1, (size - 2 * depth) // (len(item) + 3)))
    return "[" * depth + items + "]" * depth


def _fields_config() -> AnalyzerConfig:
    return AnalyzerConfig(
        pii=False,
        templates=False,
        shell_fields=(parse_field_path("branch"), parse_field_path("tags[*]")),
        path_fields=(parse_field_path("file"), parse_field_path("tags[*]")),
    )


def _records_config() -> AnalyzerConfig:
    check = RecordCheck(parse_field_path("contacts[*].email"), 0.2)
    return AnalyzerConfig(pii=False, templates=False, record_checks=(check,))


# (analyzer, input, build(size) -> (payload, config))
ADVERSARIAL: list[tuple[str, str, Callable[[int], tuple[str, AnalyzerConfig]]]] = [
    ("sql", "stacked UPDATE statements", lambda n: (
        _repeat("UPDATE a SET x=1 WHERE id=7; ", n), SQL_ONLY)),
    ("sql", "DELETE ... WHERE 1+1+1... (grouping depth)", lambda n: (
        "DELETE FROM t WHERE 1" + _repeat("+1", n - 21), SQL_ONLY)),
    ("sql", "long INSERT, DROP at the end", lambda n: (
        "INSERT INTO t VALUES " + _repeat("(1,'x'),", n - 40) + "(2,'y'); DROP TABLE t",
        SQL_ONLY)),
    ("sql", "';' only (one token per character)", lambda n: (_repeat(";", n), SQL_ONLY)),
    ("sql", "nested parentheses in WHERE", lambda n: (
        "DELETE FROM t WHERE " + "(" * (n // 2 - 12) + "1=1" + ")" * (n // 2 - 12), SQL_ONLY)),
    ("sql", "'$' (dollar-quote delimiters)", lambda n: (
        "DROP TABLE t; " + _repeat("$", n), SQL_ONLY)),
    ("sql", "unclosed '/*!' MySQL comments", lambda n: (
        "DROP TABLE t; " + _repeat("/*!", n), SQL_ONLY)),
    ("sql", "JSON list of 'DROP TABLE t;' strings", lambda n: (
        _json_list("DROP TABLE t; SELECT 1", n), SQL_ONLY)),
    ("sql", "JSON nested 900 deep, many strings", lambda n: (
        _deep_json("DELETE FROM t", n), SQL_ONLY)),
    ("sql", "JSON list of strings with no SQL", lambda n: (_json_list("a", n), SQL_ONLY)),
    ("pii", "SSNs", lambda n: (_repeat("123-45-6789 ", n), PII_ONLY)),
    ("pii", "card numbers", lambda n: (_repeat("4111 1111 1111 1111 ", n), PII_ONLY)),
    ("pii", "IBANs", lambda n: (_repeat("DE89370400440532013000 ", n), PII_ONLY)),
    ("pii", "'at]' needles (spelled e-mail)", lambda n: (_repeat("at]", n), PII_ONLY)),
    ("pii", "16-letter words (secret windows)", lambda n: (
        _repeat("aaaaaaaaaaaaaaaa ", n), PII_ONLY)),
    ("pii", "'@' only", lambda n: (_repeat("@", n), PII_ONLY)),
    ("pii", "every decoding at once", lambda n: (
        _repeat("+1 23 @a.b [at] 4111-1111-1111-1111 {{x}} %40 &#1; ４ ", n), PII_ONLY)),
    ("templates", "'{{' openers", lambda n: (_repeat("{{", n), TEMPLATES_ONLY)),
    ("templates", "placeholders, every decoding", lambda n: (
        _repeat("{{a}} ${b} %7B%7Bc%7D%7D &#123;&#123;d}} ", n), TEMPLATES_ONLY)),
    ("shell/path", "one field, every encoding (at most 65,000)", lambda n: (
        json.dumps({"branch": _repeat("%c0%ae%2e\\x2e．/;", min(n, 65_000)), "file": "a"}),
        _fields_config())),
    ("shell/path", "1,490 list values (x2 paths: at the limit)", lambda n: (
        json.dumps({"branch": "main", "file": "a", "tags": ["%2e%2e/;x"] * 1490}),
        _fields_config())),
    ("shell/path", "many short list values", lambda n: (
        json.dumps({"branch": "main", "file": "a", "tags": ["a;b/.."] * (n // 10)}),
        _fields_config())),
    ("records", "14,900 empty records (at the limit)", lambda n: (
        json.dumps({"contacts": [{"email": ""}] * 14_900}), _records_config())),
    ("records", "a batch of empty records", lambda n: (
        json.dumps({"contacts": [{"email": ""}] * (n // 15)}), _records_config())),
]  # fmt: skip


def _cpu_ms(payload: str, config: AnalyzerConfig, rounds: int) -> tuple[float, str]:
    """Best CPU time of `rounds` analyze() calls, and the finding types (or the error)."""
    best, outcome = float("inf"), ""
    for _ in range(rounds):
        gc.collect()
        start = time.process_time()
        try:
            found = analyze(payload, None, config=config)
            outcome = ", ".join(sorted({f.type for f in found})) or "(none)"
        except Exception as error:  # report, do not stop: the old code raises here
            outcome = f"RAISED {type(error).__name__}"
        best = min(best, time.process_time() - start)
    return best * 1000, outcome


def adversarial(sizes: list[int], rounds: int, markdown: bool) -> None:
    rows: list[list[object]] = []
    worst: dict[str, float] = {}
    for size in sizes:
        for analyzer, name, build in ADVERSARIAL:
            payload, config = build(size)
            ms, outcome = _cpu_ms(payload, config, rounds)
            worst[analyzer] = max(worst.get(analyzer, 0.0), ms)
            label = f"{len(payload.encode()) / 1024:,.0f} KiB"
            rows.append([analyzer, name, label, f"{ms:.1f}", outcome])
    if markdown:
        print(header("Content analyzers: adversarial inputs (security issue 9)"))
        print(f"- CPU time of one analyze() call with one analyzer on, best of {rounds}")
        print()
    print(md_table(["analyzer", "input", "size", "CPU ms", "findings"], rows))
    print()
    for analyzer, ms in worst.items():
        target = ADVERSARIAL_TARGET_MS_BY_ANALYZER.get(analyzer, ADVERSARIAL_TARGET_MS)
        verdict = "within" if ms <= target else "OVER"
        print(f"{analyzer}: worst {ms:.1f} ms ({verdict} the {target:.0f} ms target)")


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--iterations", type=int, default=20_000)
    arguments.add_argument("--rounds", type=int, default=5)
    arguments.add_argument("--markdown", action="store_true", help="print a docs section")
    arguments.add_argument(
        "--adversarial", action="store_true", help="worst-case inputs per analyzer (issue 9)"
    )
    arguments.add_argument(
        "--sizes", default="98000,100000,262000,1048576", help="adversarial input sizes in bytes"
    )
    options = arguments.parse_args()
    if options.iterations < 100 or options.rounds < 1:
        arguments.error("--iterations must be >= 100 and --rounds >= 1")
    if options.adversarial:
        sizes = [int(size) for size in options.sizes.split(",")]
        if not sizes or min(sizes) < 1000 or max(sizes) > 10 * 1024 * 1024:
            arguments.error("--sizes must be between 1000 and 10485760 bytes")
        adversarial(sizes, min(options.rounds, 3), options.markdown)
        return

    load = background_load()
    payload = build_payload()
    clean = build_payload(contacts=False)
    size = len(payload.encode())
    facts = IntentFacts(
        destination="sendgrid.send",
        payload=payload,
        record_count=3,
        estimated_value_usd=250.0,
        sensitivity_tags=("pii",),
        environment="production",
    )
    rates = RateCounts(last_hour=3, last_day=10)

    rows: list[list[object]] = []
    p50_added: dict[str, float] = {}
    for name, yaml_text in (
        ("evaluate(), every rule on", POLICY_YAML + TERMS_YAML + CHECKS_YAML),
        ("evaluate(), every rule on except block_if_terms", POLICY_YAML + CHECKS_YAML),
    ):
        on = parse_policy(yaml_text, "bench-everything.yaml")
        off = without_analyzers(parse_policy(yaml_text, "bench-everything.yaml"))
        decision = evaluate(on, facts, rates)
        if decision.status != "approved" or [f.type for f in decision.findings] != ["pii.email"]:
            raise SystemExit(f"unexpected decision for the benchmark body: {decision}")
        off_runs, on_runs = [], []
        for _ in range(options.rounds):  # alternate, so drift hits both sides alike
            off_runs.append(timed(lambda p=off: evaluate(p, facts, rates), options.iterations))
            on_runs.append(timed(lambda p=on: evaluate(p, facts, rates), options.iterations))
        off_stats, on_stats = summary(off_runs), summary(on_runs)
        p50_added[name] = on_stats[0] - off_stats[0]
        for label, stats in (("analyzers off", off_stats), ("analyzers on", on_stats)):
            rows.append([f"{name}, {label}", f"{size} B JSON", *(f"{v:.1f}" for v in stats)])
        added = [on - off for on, off in zip(on_stats, off_stats, strict=True)]
        rows.append(
            [f"{name}: **added by the analyzers**", "", f"**{added[0]:+.1f}**",
             f"{added[1]:+.1f}", f"{added[2]:+.1f}"]
        )  # fmt: skip

    parsed, parsed_clean = decode_json(payload), decode_json(clean)
    sql_text = json.dumps({"query": "UPDATE accounts SET note = 'x' WHERE id = 7; " * 45})
    sql_config = AnalyzerConfig(sql=True, sql_fields=(parse_field_path("query"),))
    fields_config = AnalyzerConfig(
        pii=False,
        templates=False,
        shell_fields=(parse_field_path("subject"), parse_field_path("tags[*]")),
        path_fields=(parse_field_path("to"),),
        record_checks=(RecordCheck(parse_field_path("contacts[*].email"), 0.2),),
    )
    alone = [
        ("analyze(), default analyzers, body with 9 e-mails", lambda: analyze(payload, parsed)),
        ("analyze(), default analyzers, nothing to find", lambda: analyze(clean, parsed_clean)),
        ("analyze(), shell + path fields + a record check", lambda: analyze(
            payload, parsed, config=fields_config)),
        ("analyze(), SQL (sqlparse) on a 2 KB statement list", lambda: analyze(
            sql_text, decode_json(sql_text), config=sql_config)),
        ("mask_pii(), the same body (previews, dashboard)", lambda: mask_pii(payload)),
    ]  # fmt: skip
    for name, fn in alone:
        iterations = options.iterations if "SQL" not in name else max(100, options.iterations // 50)
        runs = [timed(fn, iterations) for _ in range(options.rounds)]
        length = len(sql_text.encode()) if "SQL" in name else size
        rows.append([name, f"{length} B", *(f"{v:.1f}" for v in summary(runs))])

    table = md_table(["what", "input", "p50 µs", "p90 µs", "p99 µs"], rows)
    if options.markdown:
        print(header("Content analyzers (issue #6)"))
        print(f"- background: {load}")
        print(f"- {options.rounds} rounds × {options.iterations} calls, alternating off/on")
        print()
    else:
        print(f"background: {load}")
    print(table)
    print()
    for name, added in p50_added.items():
        verdict = "within" if added <= 30 else "OVER"
        print(f"{name}: analyzers add {added:.1f} µs p50 ({verdict} the 30 µs target)")


if __name__ == "__main__":
    main()
