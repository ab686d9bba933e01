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
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gate_proxy.core.analyzers.base import SEVERITIES, Finding, iter_strings
from gate_proxy.core.analyzers.fields import FieldPath, form_pairs, parse_field_path, select
from gate_proxy.core.analyzers.paths import analyze_path
from gate_proxy.core.analyzers.pii import analyze_pii, mask_pii, prepare
from gate_proxy.core.analyzers.records import RecordCheck, analyze_records
from gate_proxy.core.analyzers.shell import analyze_shell
from gate_proxy.core.analyzers.sql import analyze_sql
from gate_proxy.core.analyzers.templates import analyze_templates
from gate_proxy.core.terms import NOT_JSON, decode_json, json_strings

__all__ = [
    "DEFAULT_CONFIG",
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


def _field_values(root: object, paths: tuple[FieldPath, ...]) -> Iterable[tuple[str, object]]:
    """Every value at each path; a list selected as a whole contributes its elements."""
    for path in paths:
        for location, value in select(root, path).matches:
            if isinstance(value, list):
                yield from ((f"{location}[{i}]", item) for i, item in enumerate(value))
            else:
                yield location, value


def analyze(
    payload_text: str | None,
    parsed_json: object = None,
    *,
    destination_tags: Iterable[str] = (),
    config: AnalyzerConfig = DEFAULT_CONFIG,
) -> tuple[Finding, ...]:
    """All findings for one payload.

    `parsed_json` is ``terms.decode_json(payload_text)`` if the caller already has it
    (``NOT_JSON`` for other text); None means decode here, and only if an analyzer needs
    the structure.
    """
    parsed: object = parsed_json
    if parsed is None and payload_text is not None:
        needs_structure = (
            config.record_checks or config.shell_fields or config.path_fields
            or config.sql_fields or "\\" in payload_text
            or ((config.sql or "sql" in destination_tags) and _looks_like_json(payload_text))
        )  # fmt: skip
        if needs_structure:
            parsed = decode_json(payload_text)
    findings: list[Finding] = []
    if config.record_checks:
        findings.extend(
            analyze_records(NOT_JSON if parsed is None else parsed, config.record_checks)
        )
    if not payload_text:
        return tuple(findings)

    is_json = parsed is not NOT_JSON if parsed is not None else _looks_like_json(payload_text)
    # A form body (a=1&b=2) is one flat object for the field-based analyzers.
    fields_root: object = parsed if is_json and parsed is not None else None
    if not is_json and (config.shell_fields or config.path_fields or config.sql_fields):
        fields_root = form_pairs(payload_text)

    if config.pii or config.templates:
        decoded = None
        if is_json and parsed is not None and "\\" in payload_text:
            decoded = json_strings(payload_text, parsed)  # \u escapes decoded
        prepared = prepare(payload_text, decoded)
        if config.pii:
            findings.extend(analyze_pii(payload_text, is_json=is_json, prepared=prepared))
        if config.templates:
            findings.extend(analyze_templates(prepared, is_json=is_json))

    if config.sql or "sql" in destination_tags:
        texts: list[tuple[str, object]]
        if config.sql_fields and fields_root is not None:
            texts = list(_field_values(fields_root, config.sql_fields))
        elif is_json and parsed is not None:
            texts = list(iter_strings(parsed))
        else:
            texts = [("payload", payload_text)]
        for location, value in texts:
            if isinstance(value, str) and value.strip():
                findings.extend(analyze_sql(value, location))

    for analyzer, paths, check in (
        ("shell", config.shell_fields, analyze_shell),
        ("path", config.path_fields, analyze_path),
    ):
        if not paths:
            continue
        if fields_root is None:
            # Fail closed, as field_checks do: the named fields cannot be found in this body.
            detail = f"{analyzer} checks need a JSON or form payload"
            findings.append(Finding(f"{analyzer}.unchecked", "high", "payload", detail))
            continue
        for location, value in _field_values(fields_root, paths):
            findings.extend(check(value, location))
    return tuple(findings)


def _looks_like_json(text: str) -> bool:
    return text.lstrip(" \t\r\n\ufeff")[:1] in ("{", "[")


def finding_tags(findings: Iterable[Finding]) -> tuple[str, ...]:
    """Distinct sensitivity tags of the findings, in a stable order."""
    tags = {TAG_FOR_ANALYZER.get(f.analyzer, f.analyzer) for f in findings}
    return tuple(sorted(tags))
