"""Content analyzers: pure functions over a request body that yield findings. PURE.

    analyze(payload_text, parsed_json, *, destination_tags, config) -> tuple[Finding, ...]

| analyzer  | runs on                                                | finding types |
|---|---|---|
| SQL       | destinations tagged ``sql`` (a policy ``sql:`` block tags its own) | ``sql.*`` |
| shell     | the fields in ``shell_check_fields``                   | ``shell.*`` |
| paths     | the fields in ``path_check_fields``                    | ``path.*`` |
| PII       | every payload                                          | ``pii.*``, ``secret.*`` |
| templates | every payload                                          | ``template.unresolved`` |
| records   | the ``record_checks`` of the policy                    | ``record.*`` |

Findings become sensitivity tags (``finding_tags``), which feed the risk score, and the
policy fields that name them decide (``core/policy.py``). No I/O, no mitmproxy: the same
input always gives the same findings. See docs/analyzers.md.

``analyze()`` never raises and its work is bounded (the MAX_* limits below, and the SQL
analyzer's ``SqlBudget``): past a limit, or on an unexpected error, an analyzer reports
``<analyzer>.too_large`` (records: ``record.unchecked``) instead of reading on, and the
policy fails closed on that finding.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gate_proxy.core.analyzers import sql as sql_analyzer
from gate_proxy.core.analyzers.base import SEVERITIES, Finding, JsonPath, walk_strings
from gate_proxy.core.analyzers.fields import FieldPath, form_pairs, parse_field_path, select
from gate_proxy.core.analyzers.paths import analyze_path
from gate_proxy.core.analyzers.pii import analyze_pii, mask_pii, prepare
from gate_proxy.core.analyzers.records import RecordCheck, analyze_records
from gate_proxy.core.analyzers.shell import analyze_shell
from gate_proxy.core.analyzers.templates import analyze_templates
from gate_proxy.core.terms import NOT_JSON, decode_json, json_strings

__all__ = [
    "DEFAULT_CONFIG",
    "MAX_DECODE_CHARS",
    "MAX_FIELD_CHARS",
    "MAX_FIELD_VALUES",
    "MAX_FINDINGS_PER_ANALYZER",
    "MAX_FORM_CHARS",
    "MAX_RECORDS",
    "MAX_SCAN_BYTES",
    "SEVERITIES",
    "TAG_FOR_ANALYZER",
    "AnalyzerConfig",
    "FieldPath",
    "Finding",
    "RecordCheck",
    "analyze",
    "finding_tags",
    "mask_pii",
    "parse_field_path",
]

# The sensitivity tag each analyzer's findings add to the risk score (+0.1 each, distinct).
TAG_FOR_ANALYZER: Final = {
    "sql": "sql",
    "pii": "pii",
    "secret": "secret",
    "template": "template_error",
    "shell": "shell_injection",
    "path": "path_traversal",
    "record": "record_quality",
}


@dataclass(frozen=True, slots=True)
class AnalyzerConfig:
    """Which analyzers run where; built once per policy (``Policy.analyzer_config``)."""

    sql: bool = False  # analyse SQL even without the destination tag
    sql_fields: tuple[FieldPath, ...] = ()  # empty: the whole body / every JSON string
    shell_fields: tuple[FieldPath, ...] = ()
    path_fields: tuple[FieldPath, ...] = ()
    record_checks: tuple[RecordCheck, ...] = ()
    pii: bool = True
    templates: bool = True


DEFAULT_CONFIG: Final = AnalyzerConfig()


# -- work bounds -------------------------------------------------------------------------
# Each analyzer reads at most this much of a payload (chosen so that the worst input found
# costs about 50 ms of CPU on the 2-core benchmark machine: bench/bench_analyzers.py
# --adversarial). Past a bound the analyzer does not read at all and reports
# "<analyzer>.too_large" (records: "record.unchecked"), which the policy rules fail closed on.
# PII and templates: the payload and its decoded readings. ~150 ms of CPU at worst; bodies
# this large are analysed off the event loop (usecases.proposals.analyze_off_loop).
MAX_SCAN_BYTES: Final = 512 * 1024
MAX_FIELD_VALUES: Final = 3000  # shell and path: values checked per payload (both together)
MAX_FIELD_CHARS: Final = 64 * 1024  # shell and path: characters checked per payload
MAX_RECORDS: Final = 15_000  # record checks: values per check
MAX_DECODE_CHARS: Final = 1024 * 1024  # analyze() decodes JSON itself only up to this
MAX_FORM_CHARS: Final = 64 * 1024  # a non-JSON body is read as a form only up to this
# At most this many findings per analyzer, but always the first of each kind: policy rules
# decide on kinds, and a payload of 100,000 "DROP TABLE x" strings must not carry 100,000
# findings into the decision and the ledger.
MAX_FINDINGS_PER_ANALYZER: Final = 20


class _OverLimit(Exception):
    """An analyzer's input is over its bound (internal: becomes a finding)."""


def _field_values(
    root: object, paths: tuple[FieldPath, ...], budget: list[int]
) -> Iterable[tuple[str, object]]:
    """Every value at each path; a list selected as a whole contributes its elements.

    `budget` is [values left, characters left]; past it, _OverLimit.
    """
    for path in paths:
        selection = select(root, path, limit=budget[0])
        if selection.truncated:
            raise _OverLimit(f"more than {MAX_FIELD_VALUES} values selected")
        for location, value in selection.matches:
            items = (
                [(f"{location}[{i}]", item) for i, item in enumerate(value[: budget[0] + 1])]
                if isinstance(value, list)
                else [(location, value)]
            )
            for where, item in items:
                budget[0] -= 1
                budget[1] -= len(item) if isinstance(item, str) else 0
                if budget[0] < 0:
                    raise _OverLimit(f"more than {MAX_FIELD_VALUES} values selected")
                if budget[1] < 0:
                    raise _OverLimit(f"more than {MAX_FIELD_CHARS} characters selected")
                yield where, item


def _sql_field_texts(root: object, paths: tuple[FieldPath, ...]) -> list[tuple[None, str, object]]:
    """sql.fields values as (None, location, value); the SQL budget bounds the reading."""
    values: list[tuple[None, str, object]] = []
    for path in paths:
        selection = select(root, path, limit=sql_analyzer.MAX_SQL_TOKENS)
        if selection.truncated:
            raise sql_analyzer.SqlTooLarge(f"more than {sql_analyzer.MAX_SQL_TOKENS} values")
        for location, value in selection.matches:
            if isinstance(value, list):
                if len(value) > sql_analyzer.MAX_SQL_TOKENS:
                    raise sql_analyzer.SqlTooLarge(f"a list of {len(value)} values")
                values.extend((None, f"{location}[{i}]", item) for i, item in enumerate(value))
            else:
                values.append((None, location, value))
    return values


class _TooLargeToDecode:
    """`parsed` for a payload analyze() would not decode (over MAX_DECODE_CHARS)."""

    __slots__ = ()


_NOT_DECODED: Final = _TooLargeToDecode()


def analyze(
    payload_text: str | None,
    parsed_json: object = None,
    *,
    destination_tags: Iterable[str] = (),
    config: AnalyzerConfig = DEFAULT_CONFIG,
) -> tuple[Finding, ...]:
    """All findings for one payload. Never raises, and its work is bounded (above).

    `parsed_json` is ``terms.decode_json(payload_text)`` if the caller already has it
    (``NOT_JSON`` for other text); None means decode here, and only if an analyzer needs
    the structure.
    """
    findings: list[Finding] = []
    try:
        _analyze(payload_text, parsed_json, set(destination_tags), config, findings)
    except Exception as error:  # a last guard; each analyzer has its own
        findings.extend(_failed(config, destination_tags, type(error).__name__))
    return _capped(findings)


def _analyze(
    payload_text: str | None,
    parsed_json: object,
    destination_tags: set[str],
    config: AnalyzerConfig,
    findings: list[Finding],
) -> None:
    sql_on = config.sql or "sql" in destination_tags
    parsed: object = parsed_json
    if parsed is None and payload_text is not None:
        scanned = config.pii or config.templates
        needs_structure = (
            config.record_checks or config.shell_fields or config.path_fields
            or config.sql_fields
            or (scanned and "\\" in payload_text and len(payload_text) <= MAX_SCAN_BYTES)
            or (sql_on and _looks_like_json(payload_text)
                and len(payload_text) <= sql_analyzer.MAX_SQL_CHARS)
        )  # fmt: skip
        if needs_structure:
            too_large = len(payload_text) > MAX_DECODE_CHARS
            parsed = _NOT_DECODED if too_large else decode_json(payload_text)
    if parsed is _NOT_DECODED:
        _report_undecoded(config, sql_on, findings)
        return
    if config.record_checks:
        root = NOT_JSON if parsed is None else parsed
        findings.extend(_guarded_records(root, config.record_checks))
    if not payload_text:
        return

    is_json = parsed is not NOT_JSON if parsed is not None else _looks_like_json(payload_text)
    # A form body (a=1&b=2) is one flat object for the field-based analyzers.
    fields_root: object = parsed if is_json and parsed is not None else None
    # parse_qsl costs ~1 µs a pair: past the limit the body is not read as a form (the
    # field checks then fail closed, and SQL reads the whole body).
    wants_form = config.shell_fields or config.path_fields or config.sql_fields
    if not is_json and wants_form and len(payload_text) <= MAX_FORM_CHARS:
        fields_root = form_pairs(payload_text)

    if config.pii or config.templates:
        findings.extend(_scanned(payload_text, parsed, is_json, config))
    if sql_on:
        findings.extend(_guarded_sql(payload_text, parsed, is_json, fields_root, config))
    findings.extend(_guarded_fields(fields_root, config))


def _scanned(
    payload_text: str, parsed: object, is_json: bool, config: AnalyzerConfig
) -> list[Finding]:
    """PII and template findings; the two share the decoded readings of the payload."""
    wanted = [name for name, on in (("pii", config.pii), ("template", config.templates)) if on]
    try:
        if len(payload_text) > MAX_SCAN_BYTES:  # characters: at least as many bytes
            raise _OverLimit(f"{len(payload_text)} characters")
        decoded = None
        if is_json and parsed is not None and "\\" in payload_text:
            decoded = json_strings(payload_text, parsed)  # \u escapes decoded
        prepared = prepare(payload_text, decoded)
        total = sum(len(reading.data) for reading in prepared)
        if total > MAX_SCAN_BYTES:
            raise _OverLimit(f"{total} bytes with its decoded readings")
        found: list[Finding] = []
        if config.pii:
            found.extend(analyze_pii(payload_text, is_json=is_json, prepared=prepared))
        if config.templates:
            found.extend(analyze_templates(prepared, is_json=is_json))
        return found
    except _OverLimit as error:
        detail = f"{error}: over the {MAX_SCAN_BYTES} bytes scanned"
        return [_too_large(name, "payload", detail) for name in wanted]
    except Exception as error:  # fail closed, never raise
        return [_too_large(name, "payload", _failure(error)) for name in wanted]


def _guarded_sql(
    payload_text: str,
    parsed: object,
    is_json: bool,
    fields_root: object,
    config: AnalyzerConfig,
) -> list[Finding]:
    budget = sql_analyzer.SqlBudget()
    found: list[Finding] = []
    seen: set[str] = set()
    try:
        texts: Iterable[tuple[JsonPath | None, str | int, object]]
        if config.sql_fields and fields_root is not None:
            texts = _sql_field_texts(fields_root, config.sql_fields)
        elif is_json and parsed is not None:
            if len(payload_text) > sql_analyzer.MAX_SQL_CHARS:
                raise sql_analyzer.SqlTooLarge(
                    f"{len(payload_text)} characters of JSON: over the "
                    f"{sql_analyzer.MAX_SQL_CHARS} the analyzer reads"
                )
            texts = walk_strings(parsed)
        else:
            texts = [(None, "payload", payload_text)]
        for parent, key, value in texts:
            if not isinstance(value, str) or not value.strip():
                continue
            kinds = sql_analyzer.sql_kinds(value, budget)
            for kind, detail in kinds.items():
                # The first of each kind, then up to the cap: spelling out a location
                # costs its depth, so it is done only for findings that are kept.
                if len(found) < MAX_FINDINGS_PER_ANALYZER or kind not in seen:
                    where = key if parent is None else JsonPath(parent, key)
                    found.append(sql_analyzer.finding(kind, where, detail))
                    seen.add(kind)
            if "too_large" in kinds:
                break  # the budget is spent: fail closed, read no further
    except sql_analyzer.SqlTooLarge as error:
        found.append(sql_analyzer.too_large("payload", str(error)))
    except Exception as error:  # fail closed, never raise
        found.append(sql_analyzer.too_large("payload", _failure(error)))
    return found


def _guarded_fields(fields_root: object, config: AnalyzerConfig) -> list[Finding]:
    found: list[Finding] = []
    budget = [MAX_FIELD_VALUES, MAX_FIELD_CHARS]  # shared: bounds the two analyzers together
    for analyzer, paths, check in (
        ("shell", config.shell_fields, analyze_shell),
        ("path", config.path_fields, analyze_path),
    ):
        if not paths:
            continue
        if fields_root is None:
            # Fail closed, as field_checks do: the named fields cannot be found in this body.
            detail = f"{analyzer} checks need a JSON or form payload"
            found.append(Finding(f"{analyzer}.unchecked", "high", "payload", detail))
            continue
        try:
            for location, value in _field_values(fields_root, paths, budget):
                found.extend(check(value, location))
        except _OverLimit as error:
            found.append(_too_large(analyzer, "payload", str(error)))
        except Exception as error:  # fail closed, never raise
            found.append(_too_large(analyzer, "payload", _failure(error)))
    return found


def _guarded_records(root: object, checks: tuple[RecordCheck, ...]) -> list[Finding]:
    try:
        return analyze_records(root, checks, max_records=MAX_RECORDS)
    except Exception as error:  # fail closed, never raise
        return [_unchecked_record(check, _failure(error)) for check in checks]


def _report_undecoded(config: AnalyzerConfig, sql_on: bool, findings: list[Finding]) -> None:
    """A payload too large to decode: every analyzer that needs it fails closed."""
    detail = f"over the {MAX_DECODE_CHARS} characters analyze() decodes"
    findings.extend(_unchecked_record(check, detail) for check in config.record_checks)
    named = [
        ("pii", config.pii),
        ("template", config.templates),
        ("sql", sql_on),
        ("shell", bool(config.shell_fields)),
        ("path", bool(config.path_fields)),
    ]
    findings.extend(_too_large(name, "payload", detail) for name, on in named if on)


def _failed(config: AnalyzerConfig, destination_tags: Iterable[str], error: str) -> list[Finding]:
    detail = f"could not be analysed ({error})"
    sql_on = config.sql or "sql" in destination_tags
    found = [_unchecked_record(check, detail) for check in config.record_checks]
    for name, on in (
        ("pii", config.pii),
        ("template", config.templates),
        ("sql", sql_on),
        ("shell", bool(config.shell_fields)),
        ("path", bool(config.path_fields)),
    ):
        if on:
            found.append(_too_large(name, "payload", detail))
    return found


def _too_large(analyzer: str, location: str, detail: str) -> Finding:
    return Finding(f"{analyzer}.too_large", "high", location, detail)


def _unchecked_record(check: RecordCheck, detail: str) -> Finding:
    return Finding("record.unchecked", "high", check.path.text, detail)


def _failure(error: Exception) -> str:
    return f"could not be analysed ({type(error).__name__})"


def _capped(findings: list[Finding]) -> tuple[Finding, ...]:
    """At most MAX_FINDINGS_PER_ANALYZER per analyzer, always the first of each type."""
    if len(findings) <= MAX_FINDINGS_PER_ANALYZER:
        return tuple(findings)
    kept: list[Finding] = []
    per_analyzer: dict[str, int] = {}
    types: set[str] = set()
    for finding in findings:
        count = per_analyzer.get(finding.analyzer, 0)
        if finding.type in types and count >= MAX_FINDINGS_PER_ANALYZER:
            continue
        types.add(finding.type)
        per_analyzer[finding.analyzer] = count + 1
        kept.append(finding)
    return tuple(kept)


def _looks_like_json(text: str) -> bool:
    return text.lstrip(" \t\r\n\ufeff")[:1] in ("{", "[")


def finding_tags(findings: Iterable[Finding]) -> tuple[str, ...]:
    """Distinct sensitivity tags of the findings, in a stable order."""
    tags = {TAG_FOR_ANALYZER.get(f.analyzer, f.analyzer) for f in findings}
    return tuple(sorted(tags))
