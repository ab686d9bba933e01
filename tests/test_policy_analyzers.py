"""The analyzer-backed policy fields: parsing (strict), deciding (in the documented order),
and, through the real API, budgets and the duplicate window surviving a restart."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate

from gate_proxy.core.analyzers import MAX_FIELD_VALUES, MAX_RECORDS, MAX_SCAN_BYTES
from gate_proxy.core.policy import (
    Counters,
    Decision,
    IntentFacts,
    Policy,
    PolicyError,
    RateCounts,
    evaluate,
)
from gate_proxy.loaders.policy_file import parse_policy

NO_DUP = Counters(duplicate_within_window=False)


def policy(text: str) -> Policy:
    return parse_policy(text, "p.yaml")


def decide(
    text: str,
    payload: object = None,
    *,
    counters: Counters | None = None,
    rates: RateCounts | None = None,
    **facts: Any,
) -> Decision:
    body = payload if payload is None or isinstance(payload, str) else json.dumps(payload)
    facts.setdefault("destination", "db.query")
    return evaluate(policy("id: p\n" + text), IntentFacts(payload=body, **facts), rates, counters)


# -- parsing --------------------------------------------------------------------------------

PARSE_ERRORS = [
    ("sql: {}", "2: sql: set block and/or require_approval"),
    ("sql: {block: [drop_table]}", "sql.block[0]: unknown field 'drop_table'"),
    ("sql: {block: [drop], require_approval: [drop]}", "drop already blocks"),
    ("sql: {block: [drop], where: [x]}", "sql.where: unknown field 'where'"),
    ("sql: {block: drop}", "sql.block: expected a list, got a string"),
    ("sql: {block: [drop], fields: ['a..b']}", "sql.fields[0]: invalid field path"),
    ("block_if_pii: [ssn, passport]", "block_if_pii[1]: unknown field 'passport'"),
    ("require_approval_if_pii: email", "require_approval_if_pii: expected a list"),
    ("require_approval_if_template_error: 1", "expected true or false, got an integer"),
    ("require_approval_if_template_error: 'true'", "expected true or false, got a string"),
    ("record_checks: [{path: 'a[*].b'}]", "record_checks[0].max_empty_ratio: required"),
    ("record_checks: [{path: 'a[*].b', max_empty_ratio: 1.5}]", "between 0 and 1"),
    ("record_checks: [{path: 'a[*].b', max_empty_ratio: 0.1, on_fail: warn}]", "on_fail"),
    ("record_checks: [{path: 'a[x]', max_empty_ratio: 0.1}]", "record_checks[0].path"),
    (
        "record_checks: [{path: a, max_empty_ratio: 0.1}, {path: a, max_empty_ratio: 0.2}]",
        "checked twice",
    ),
    ("record_checks: [{path: a, max_empty_ratio: 0.1, max: 3}]", "unknown field 'max'"),
    ("dedupe_window_seconds: 0", "dedupe_window_seconds: must be >= 1"),
    ("dedupe_window_seconds: 30.5", "expected an integer"),
    ("dedupe_window_seconds: 99999999", "must be <= 604800"),
    ("budgets: {}", "budgets: set per_agent and/or per_policy"),
    ("budgets: {per_agent: {}}", "set hourly_max_value_usd and/or daily_max_value_usd"),
    ("budgets: {per_agent: {hourly_max_value_usd: -1}}", "must be >= 0"),
    ("budgets: {per_agent: {hourly_max_usd: 5}}", "did you mean 'hourly_max_value_usd'"),
    ("budgets: {per_agent: {daily_max_value_usd: '5'}}", "expected a number, got a string"),
    ("budgets: {per_policy: {daily_max_value_usd: 5}, on_exceed: warn}", "on_exceed"),
    ("budgets: {per_policy: {daily_max_value_usd: 5}, value_scale: 0}", "must be > 0"),
    ("budgets: {per_policy: {daily_max_value_usd: 5}, value_path: ''}", "must not be empty"),
    ("shell_check_fields: []", "list at least one field path"),
    ("path_check_fields: ['a[']", "unclosed"),
    ("fingerprint_headers: ['x y']", "not a valid header name"),
    ("fingerprint_headers: []", "list at least one header name"),
    ("environments: {prod: {fingerprint_headers: [a]}}", "unknown field 'fingerprint_headers'"),
    ("block_if_pi: [ssn]", "did you mean 'block_if_pii'"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS)
def test_parse_errors_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        policy("id: p\n" + text)
    assert str(info.value).startswith("p.yaml:")
    assert message in str(info.value)


def test_parsed_fields() -> None:
    parsed = policy(
        """id: p
sql: {fields: [query], block: [drop, truncate], require_approval: [delete_without_where]}
block_if_pii: [secret, ssn]
require_approval_if_pii: [pii]
require_approval_if_template_error: true
record_checks: [{path: "contacts[*].email", max_empty_ratio: 0.2}]
shell_check_fields: [branch, "args[*]"]
path_check_fields: [file]
dedupe_window_seconds: 30
budgets:
  per_agent: {hourly_max_value_usd: 100, daily_max_value_usd: 500}
  value_path: amount
  value_scale: 0.01
  on_exceed: block
fingerprint_headers: [Content-Type, Idempotency-Key, idempotency-key]
environments:
  dev: {dedupe_window_seconds: 5}
"""
    )
    assert parsed.sql is not None and parsed.sql.block == ("drop", "truncate")
    assert parsed.block_if_pii == ("aws_access_key", "private_key", "api_key", "ssn")
    assert parsed.require_approval_if_pii == ("ssn", "card", "iban", "email", "phone")
    assert parsed.fingerprint_headers == ("content-type", "idempotency-key")
    assert parsed.budgets is not None and parsed.budgets.value_scale == 0.01
    dev = parsed.for_environment("dev")
    assert dev.dedupe_window_seconds == 5 and dev.budgets == parsed.budgets
    assert dev.fingerprint_headers == parsed.fingerprint_headers  # top level, inherited
    assert parsed.uses_counters and not policy("id: q").uses_counters
    assert policy("id: q\nenvironments: {e: {dedupe_window_seconds: 1}}").uses_counters
    assert policy("id: q").fingerprint_headers is None


# -- deciding -------------------------------------------------------------------------------

SQL = "sql: {block: [drop, truncate, stacked], require_approval: [delete_without_where]}\n"
NEVER = "require_approval: never\n"


@pytest.mark.parametrize(
    ("payload", "status", "reason_code"),
    [
        ({"query": "SELECT 1"}, "approved", "approved_by_policy"),
        ({"query": "drop/**/table users"}, "blocked", "sql_blocked"),
        ({"query": "SELECT 1; SELECT 2"}, "blocked", "sql_blocked"),
        ({"query": "DELETE FROM users"}, "pending_approval", "sql_review_required"),
        ({"query": "DELETE FROM users WHERE 1=1"}, "pending_approval", "sql_review_required"),
        ({"query": "DELETE FROM users WHERE id = 3"}, "approved", "approved_by_policy"),
        ({"query": "UPDATE users SET a = 1"}, "approved", "approved_by_policy"),  # not listed
        ("TRUNCATE users", "blocked", "sql_blocked"),  # plain-text body
    ],
)
def test_sql_rules(payload: object, status: str, reason_code: str) -> None:
    decision = decide(SQL + NEVER, payload)
    assert (decision.status, decision.reason_code) == (status, reason_code)


def test_sql_block_reason_names_the_kind_and_where() -> None:
    decision = decide(SQL + NEVER, {"query": "DROP TABLE users"})
    assert decision.block_reason == "SQL not allowed: sql.drop at $.query (DROP TABLE)"
    assert "sql" in decision.tags and decision.rule == "sql.block"


def test_sql_too_large_counts_as_every_kind() -> None:
    huge = "SELECT 1 " * 40_000
    assert decide(SQL + NEVER, {"query": huge}).reason_code == "sql_blocked"
    only_review = "sql: {require_approval: [drop]}\n" + NEVER
    assert decide(only_review, {"query": huge}).status == "pending_approval"


ONE_LONG_INSERT = (
    "INSERT INTO t VALUES " + ",".join(f"({i},'x')" for i in range(9000)) + "; DROP TABLE t"
)  # ~100 KB, one statement: sqlparse's grouping raised on it before issue 9


@pytest.mark.parametrize(
    "payload",
    [
        {"query": ONE_LONG_INSERT},
        ONE_LONG_INSERT,
        {"query": "SELECT 1" + "+1" * 1000 + "; DROP TABLE t"},  # grouping depth (2 KB)
        {"query": "UPDATE a SET x = 1 WHERE id = 7; " * 9000},  # 300 KB
    ],
)
def test_sql_that_broke_the_analyzer_is_decided(payload: object) -> None:
    decision = decide(SQL + NEVER, payload)
    assert (decision.status, decision.reason_code) == ("blocked", "sql_blocked")
    only_review = "sql: {require_approval: [drop]}\n" + NEVER
    assert decide(only_review, payload).status == "pending_approval"


def test_analyzers_over_their_limits_fail_closed() -> None:
    big = {"branch": "main", "tags": ["ok"] * (MAX_FIELD_VALUES + 1), "text": "x"}
    shell = decide("shell_check_fields: [tags]\n" + NEVER, big)
    assert (shell.status, shell.reason_code) == ("blocked", "shell_injection_detected")
    assert "shell.too_large" in shell.block_reason
    templates = decide("require_approval_if_template_error: true\n" + NEVER, LARGE_TEXT)
    assert (templates.status, templates.reason_code) == ("pending_approval", "template_error")
    record = "record_checks: [{path: 'r[*].e', max_empty_ratio: 0.5, on_fail: block}]\n"
    records = decide(record + NEVER, {"r": [{"e": "x"}] * (MAX_RECORDS + 1)})
    assert (records.status, records.reason_code) == ("blocked", "record_check_failed")


LARGE_TEXT = "ordinary text " * (MAX_SCAN_BYTES // 14 + 1)


def test_pii_over_its_limit_fails_closed() -> None:
    decision = decide("block_if_pii: [ssn]\n" + NEVER, LARGE_TEXT + " 123-45-6789")
    assert [f.type for f in decision.findings if f.analyzer == "pii"] == ["pii.too_large"]
    assert (decision.status, decision.reason_code) == ("blocked", "pii_detected")


def test_sql_is_not_analysed_without_a_sql_block_or_tag() -> None:
    decision = decide(NEVER, {"query": "DROP TABLE users"})
    assert decision.findings == ()
    tagged = decide(NEVER, {"query": "DROP TABLE users"}, destination_tags=("sql",))
    assert [f.type for f in tagged.findings] == ["sql.drop"]
    assert tagged.status == "approved" and "sql" in tagged.tags  # risk only, no rule


@pytest.mark.parametrize(
    ("text", "payload", "reason_code"),
    [
        ("shell_check_fields: [branch]\n", {"branch": "main"}, "approved_by_policy"),
        ("shell_check_fields: [branch]\n", {"branch": "main;id"}, "shell_injection_detected"),
        ("shell_check_fields: [branch]\n", {"branch": "main%3Bid"}, "shell_injection_detected"),
        ("shell_check_fields: [branch]\n", {"note": "a; b"}, "approved_by_policy"),
        ("shell_check_fields: [branch]\n", "plain text", "shell_injection_detected"),
        ("path_check_fields: [file]\n", {"file": "a/b.txt"}, "approved_by_policy"),
        ("path_check_fields: [file]\n", {"file": "..%252f..%252fetc"}, "path_traversal_detected"),
        (
            "path_check_fields: ['files[*]']\n",
            {"files": ["a", "/etc/x"]},
            "path_traversal_detected",
        ),
    ],
)
def test_shell_and_path_fields_block(text: str, payload: object, reason_code: str) -> None:
    assert decide(text + NEVER, payload).reason_code == reason_code


@pytest.mark.parametrize(
    ("payload", "status", "reason_code"),
    [
        ({"body": "thanks"}, "approved", "approved_by_policy"),
        ({"body": "card 4111 1111 1111 1111"}, "blocked", "pii_detected"),
        ({"body": "key AKIAIOSFODNN7EXAMPLE"}, "blocked", "pii_detected"),
        ({"body": "mail ada@example.com"}, "pending_approval", "pii_review_required"),
        ({"body": "call +1 415 555 0100"}, "approved", "approved_by_policy"),  # not listed
        ({"body": "ssn 123-45-6789 and ada@example.com"}, "blocked", "pii_detected"),
        ('{"body": "mail ada\\u0040example.com"}', "pending_approval", "pii_review_required"),
    ],
)
def test_pii_rules(payload: object, status: str, reason_code: str) -> None:
    text = "block_if_pii: [ssn, card, secret]\nrequire_approval_if_pii: [email]\n" + NEVER
    decision = decide(text, payload)
    assert (decision.status, decision.reason_code) == (status, reason_code)
    assert decision.block_reason is None or "4111" not in decision.block_reason


def test_template_error_needs_review_even_when_auto_approved() -> None:
    text = "require_approval_if_template_error: true\nauto_approve_under: 1000\n"
    held = decide(text, {"subject": "Hi", "body": "Hello {{customer_name}}"})
    assert (held.status, held.reason_code, held.rule) == (
        "pending_approval",
        "template_error",
        "require_approval_if_template_error",
    )
    assert decide(text, {"body": "Hello Ada"}).status == "approved"
    off = decide("require_approval_if_template_error: false\n" + NEVER, {"body": "Hi {{x}}"})
    assert off.status == "approved" and "template_error" in off.tags


@pytest.mark.parametrize(
    ("check", "contacts", "status", "reason_code"),
    [
        ("", [{"email": "a@x.io"}] * 4, "approved", "approved_by_policy"),
        (
            "",
            [{"email": "a@x.io"}] * 3 + [{"email": ""}],
            "pending_approval",
            "record_check_failed",
        ),
        (", on_fail: block", [{}] * 4, "blocked", "record_check_failed"),
    ],
)
def test_record_checks(check: str, contacts: list[object], status: str, reason_code: str) -> None:
    text = f'record_checks: [{{path: "contacts[*].email", max_empty_ratio: 0.2{check}}}]\n'
    decision = decide(text + NEVER, {"contacts": contacts})
    assert (decision.status, decision.reason_code) == (status, reason_code)


def test_record_checks_fail_closed_on_other_payloads() -> None:
    text = 'record_checks: [{path: "contacts[*].email", max_empty_ratio: 0.2}]\n' + NEVER
    assert decide(text, "not json").reason_code == "record_check_failed"
    assert decide(text, None).reason_code == "record_check_failed"


DEDUPE = "dedupe_window_seconds: 30\n" + NEVER


def test_duplicate_within_window() -> None:
    duplicate = decide(DEDUPE, "x", counters=Counters(duplicate_within_window=True,
                                                       duplicate_of="int_1"))  # fmt: skip
    assert (duplicate.status, duplicate.reason_code, duplicate.rule) == (
        "duplicate_blocked",
        "duplicate_within_window",
        "dedupe_window_seconds",
    )
    assert "int_1" in (duplicate.block_reason or "")
    assert decide(DEDUPE, "x", counters=NO_DUP).status == "approved"


def test_duplicate_check_fails_closed_without_counts() -> None:
    for counters in (None, Counters(agent_spent_day_usd=1.0)):
        decision = decide(DEDUPE, "x", counters=counters)
        assert (decision.status, decision.reason_code) == ("blocked", "duplicate_check_unavailable")


BUDGET = """budgets:
  per_agent: {hourly_max_value_usd: 100, daily_max_value_usd: 300}
  per_policy: {daily_max_value_usd: 1000}
  value_path: amount
  value_scale: 0.01
"""


def spent(agent_hour: float = 0, agent_day: float = 0, policy_day: float = 0) -> Counters:
    return Counters(
        agent_spent_hour_usd=agent_hour,
        agent_spent_day_usd=agent_day,
        policy_spent_hour_usd=0.0,
        policy_spent_day_usd=policy_day,
    )


@pytest.mark.parametrize(
    ("payload", "counters", "status", "value"),
    [
        ({"amount": 5000}, spent(), "approved", 50.0),  # 5000 cents
        ({"amount": 5000}, spent(agent_hour=50), "approved", 50.0),  # exactly at the limit
        ({"amount": 5001}, spent(agent_hour=50), "pending_approval", 50.01),
        ({"amount": 5000}, spent(agent_day=260), "pending_approval", 50.0),
        ({"amount": 5000}, spent(policy_day=960), "pending_approval", 50.0),
        ({"amount": "5000"}, spent(), "approved", 50.0),  # numeric string
        ("amount=5000&charge=ch_1", spent(), "approved", 50.0),  # form body (Stripe)
        ({"amount": -5}, spent(), "pending_approval", None),  # negative: unknown value
        ({"amount": "lots"}, spent(), "pending_approval", None),
        ('{"amount": 1, "amount": 90000}', spent(), "pending_approval", None),  # duplicate key
        ({"note": "no amount"}, spent(), "pending_approval", None),  # no value at all
    ],
)
def test_budgets(payload: object, counters: Counters, status: str, value: float | None) -> None:
    decision = decide(BUDGET + NEVER, payload, counters=counters)
    assert (decision.status, decision.value_usd) == (status, value)
    if status == "pending_approval":
        assert (decision.reason_code, decision.rule) == ("budget_exceeded", "budgets")


def test_budget_value_falls_back_to_the_estimate_and_sums_wildcards() -> None:
    text = "budgets: {per_agent: {daily_max_value_usd: 100}, value_path: 'payouts[*].usd'}\n"
    fallback = decide(text + NEVER, {"x": 1}, counters=spent(), estimated_value_usd=99.0)
    assert (fallback.status, fallback.value_usd) == ("approved", 99.0)
    summed = decide(text + NEVER, {"payouts": [{"usd": 60}, {"usd": 50}]}, counters=spent())
    assert (summed.status, summed.value_usd) == ("pending_approval", 110.0)


def test_budget_on_exceed_block_and_missing_counters_block() -> None:
    blocking = BUDGET + "  on_exceed: block\n" + NEVER
    over = decide(blocking, {"amount": 99999}, counters=spent())
    assert (over.status, over.reason_code) == ("blocked", "budget_exceeded")
    assert "$999.99" in (over.block_reason or "")
    missing = decide(BUDGET + NEVER, {"amount": 1}, counters=None)
    assert (missing.status, missing.block_reason) == ("blocked", "budget counters unavailable")
    partial = decide(BUDGET + NEVER, {"amount": 1}, counters=Counters(agent_spent_hour_usd=0))
    assert partial.status == "blocked"


def test_budget_value_feeds_the_risk_score() -> None:
    cheap = decide(BUDGET + NEVER, {"amount": 100}, counters=spent())
    dear = decide(
        "budgets: {per_agent: {daily_max_value_usd: 1000000000}, value_path: amount}\n" + NEVER,
        {"amount": 5000},
        counters=spent(),
    )
    assert round(dear.risk_score - cheap.risk_score, 2) == 0.2  # value > $1000


def test_blocks_run_before_approvals_whatever_the_order_in_the_file() -> None:
    text = (
        "require_approval_if_template_error: true\n"
        "require_approval_if_pii: [email]\n"
        "block_if_pii: [card]\n" + SQL + BUDGET + "  on_exceed: block\n" + NEVER
    )
    payload: dict[str, Any] = {
        "query": "DELETE FROM t",
        "body": "Hi {{x}} ada@example.com 4111111111111111",
        "amount": 1,
    }
    assert decide(text, payload, counters=spent()).reason_code == "pii_detected"
    payload["body"] = "Hi {{x}} ada@example.com"
    assert decide(text, payload, counters=spent()).reason_code == "sql_review_required"
    payload["amount"] = 10**9
    assert decide(text, payload, counters=spent()).reason_code == "budget_exceeded"


def test_order_of_the_analyzer_approval_rules() -> None:
    text = (
        "sql: {require_approval: [delete_without_where]}\n"
        "require_approval_if_pii: [email]\n"
        "require_approval_if_template_error: true\n"
        'record_checks: [{path: "rows[*].v", max_empty_ratio: 0}]\n'
    )
    payload: dict[str, Any] = {
        "query": "DELETE FROM t",
        "body": "Hi {{x}} ada@example.com",
        "rows": [{"v": ""}],
    }
    order = []
    for key in ("query", "body", "rows"):
        order.append(decide(text, payload).reason_code)
        payload.pop(key)
    assert order == ["sql_review_required", "pii_review_required", "record_check_failed"]


def test_duplicates_are_decided_before_counted_rules() -> None:
    text = DEDUPE + "rate_limits: {per_agent_per_hour: 0}\n"
    counters = Counters(duplicate_within_window=True, duplicate_of="int_1")
    assert decide(text, "x", counters=counters, rates=RateCounts(5, 5)).status == (
        "duplicate_blocked"
    )


def test_findings_add_sensitivity_tags_to_the_risk_score() -> None:
    clean = decide(NEVER, {"body": "hello"})
    flagged = decide(NEVER, {"body": "hello ada@example.com {{name}}"})
    assert flagged.tags == ("pii", "template_error")
    assert round(flagged.risk_score - clean.risk_score, 2) == 0.2
    kept = decide(NEVER, {"body": "ada@example.com"}, sensitivity_tags=("PII", "legal"))
    assert kept.tags == ("PII", "legal", "pii")  # the risk score counts PII once


# -- through the API: budgets and duplicates, across a restart --------------------------------

API_POLICIES = {
    "payouts": """id: payouts
destinations: [bank.payout]
require_approval: never
budgets:
  per_agent: {hourly_max_value_usd: 100}
  value_path: amount
""",
    "emails": """id: emails
destinations: [email.send]
require_approval: never
dedupe_window_seconds: 3600
""",
}


def propose(client: httpx.Client, destination: str, policy_id: str, payload: object) -> Any:
    response = client.post(
        "/v1/intents",
        json={"destination": destination, "policy": policy_id, "payload": json.dumps(payload)},
    )
    assert response.status_code == 201, response.text
    return response.json()


def restart(gate: GateProcess) -> None:
    gate.stop()
    gate.start()


def test_budgets_and_duplicates_through_the_api_survive_a_restart(tmp_path: Path) -> None:
    with running_gate(tmp_path, policies=API_POLICIES) as gate:
        agent = gate.register("spender")
        other = gate.register("other-spender")
        with gate.client(agent["apiKey"]) as client:
            first = propose(client, "bank.payout", "payouts", {"amount": 60})
            assert first["status"] == "approved"
            second = propose(client, "bank.payout", "payouts", {"amount": 50})
            assert (second["status"], second["reason_code"]) == (
                "pending_approval",
                "budget_exceeded",
            )
            mail = propose(client, "email.send", "emails", {"to": "a", "body": "hi"})
            assert mail["status"] == "approved"
            again = propose(client, "email.send", "emails", {"to": "a", "body": "hi"})
            assert (again["status"], again["reason_code"]) == (
                "duplicate_blocked",
                "duplicate_within_window",
            )
            assert (
                first["intentId"] != mail["intentId"] and mail["intentId"] in again["blockReason"]
            )
            different = propose(client, "email.send", "emails", {"to": "b", "body": "hi"})
            assert different["status"] == "approved"

        restart(gate)  # the counters come from the database, not from memory

        with gate.client(agent["apiKey"]) as client:
            # 60 approved + 50 pending are spent: 110 of 100, even a small payout needs review
            small = propose(client, "bank.payout", "payouts", {"amount": 1})
            assert small["reason_code"] == "budget_exceeded"
            again = propose(client, "email.send", "emails", {"to": "a", "body": "hi"})
            assert again["status"] == "duplicate_blocked"
        with gate.client(other["apiKey"]) as client:  # per-agent: another agent has its own
            assert propose(client, "bank.payout", "payouts", {"amount": 90})["status"] == (
                "approved"
            )
            assert (
                propose(client, "email.send", "emails", {"to": "a", "body": "hi"})["status"]
                == "approved"
            )
        with gate.admin() as admin:
            stored = admin.get(f"/v1/intents/{first['intentId']}").json()
        assert stored["estimated_value_usd"] == 60.0  # the counted value is on the row


def test_analyzer_tags_and_masked_findings_are_recorded(tmp_path: Path) -> None:
    policies = {"review": "id: review\nrequire_approval_if_pii: [email]\nrequire_approval: never\n"}
    with running_gate(tmp_path, policies=policies) as gate:
        agent = gate.register("writer")
        with gate.client(agent["apiKey"]) as client:
            held = propose(client, "crm.note", "review", {"note": "mail ada@example.com"})
            assert (held["status"], held["reason_code"]) == (
                "pending_approval",
                "pii_review_required",
            )
        with gate.admin() as admin:
            stored = admin.get(f"/v1/intents/{held['intentId']}").json()
        assert stored["sensitivity_tags"] == ["pii"]
