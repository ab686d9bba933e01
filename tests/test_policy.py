"""Policy parsing (strict, with file/line/field errors), evaluate() order, and the risk score."""

import json
import pickle
import textwrap

import pytest

from gate_proxy.core.policy import (
    Decision,
    IntentFacts,
    Policy,
    PolicyError,
    RateCounts,
    RateLimits,
    detect_payload_type,
    evaluate,
    validate_policy_id,
)
from gate_proxy.core.risk import destination_category, risk_level, risk_score
from gate_proxy.loaders.policy_file import parse_policy


def parse(text: str, filename: str = "p.yaml") -> Policy:
    return parse_policy(textwrap.dedent(text), filename)


SUPPORT_REPLY = """
    id: support-reply
    destinations: [zendesk.reply, intercom.reply, freshdesk.reply]
    allowed_types: [text, json]
    block_if_terms: ["refund guaranteed", "legal action", "sue"]
    auto_approve_under: 1
    expiry_minutes: 30
"""

SCHEMA_CHECKED = r"""
    id: schema-checked-email
    destinations: [sendgrid.send, loops.send]
    field_checks:
      - path: "to"
        required: true
        pattern: "^[^@]+@[^@]+\\.[^@]+$"
      - path: "amount"
        min: 1
        max: 100
    rate_limits:
      per_agent_per_hour: 50
      per_agent_per_day: 200
    environments:
      production:
        require_approval: always
      development:
        require_approval: never
        auto_approve_under: 1
"""

OK_RATES = RateCounts(last_hour=0, last_day=0)


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


def test_parse_full_policy() -> None:
    policy = parse(
        """
        id: everything
        description: all fields
        destinations: [a.send, b.send]
        allowed_types: [CSV, .json, text]
        block_if_terms: [sue]
        require_approval: never
        auto_approve_under: 5
        require_approval_over: 10
        expiry_minutes: 90
        require_approvals: 2
        field_checks:
          - {path: contacts.0.email, required: true, max_length: 254, pattern: "@"}
          - {path: amount, min: 0.5, max: 10}
        rate_limits: {per_agent_per_hour: 5}
        """,
        "everything.yaml",
    )
    assert policy.id == "everything"
    assert policy.source == "everything.yaml"
    assert policy.description == "all fields"
    assert policy.destinations == ("a.send", "b.send")
    assert policy.allowed_types == ("csv", "json", "text")
    assert policy.block_if_terms == ("sue",)
    assert policy.require_approval == "never"
    assert (policy.auto_approve_under, policy.require_approval_over) == (5, 10)
    assert (policy.expiry_minutes, policy.require_approvals) == (90, 2)
    first, second = policy.field_checks
    assert first.segments == ("contacts", "0", "email")
    assert first.required and first.max_length == 254
    assert first.pattern is not None and first.pattern.pattern == "@"
    assert (second.min, second.max, second.required) == (0.5, 10, False)
    assert policy.rate_limits == RateLimits(per_agent_per_hour=5, per_agent_per_day=None)
    assert policy.uses_rate_limits
    assert policy.term_matcher is not None


def test_defaults() -> None:
    policy = parse("id: bare")
    assert policy.destinations is None and policy.allowed_types is None
    assert policy.block_if_terms == () and policy.term_matcher is None
    assert policy.require_approval is None
    assert policy.expiry_minutes == 60 and policy.require_approvals == 1
    assert policy.field_checks == () and policy.rate_limits is None
    assert not policy.uses_rate_limits
    assert dict(policy.environments) == {}


def test_policies_are_hashable_and_compare_by_value() -> None:
    text = "id: h\nblock_if_terms: [sue]\nenvironments:\n  prod: {expiry_minutes: 5}\n"
    first, second = parse(text), parse(text)
    assert first == second and hash(first) == hash(second)
    assert first != parse(text.replace("sue", "sued"))


def test_empty_destination_list_blocks_everything() -> None:
    decision = _decide("id: none\ndestinations: []", destination="any.thing")
    assert decision.reason_code == "destination_not_allowed"


def test_environment_blocks_are_merged_over_base() -> None:
    policy = parse(
        """
        id: merged
        destinations: [a.send]
        auto_approve_under: 10
        require_approval_over: 10
        rate_limits: {per_agent_per_hour: 50, per_agent_per_day: 200}
        environments:
          production:
            auto_approve_under: 2
            require_approval_over: 2
            rate_limits: {per_agent_per_hour: 5}
          staging: {}
        """
    )
    production = policy.for_environment("production")
    assert production.destinations == ("a.send",)  # inherited
    assert (production.auto_approve_under, production.require_approval_over) == (2, 2)
    # rate_limits merge key by key: the hour limit is overridden, the day limit kept
    assert production.rate_limits == RateLimits(per_agent_per_hour=5, per_agent_per_day=200)
    assert policy.for_environment("staging").auto_approve_under == 10
    assert policy.for_environment("unknown") is policy
    assert policy.for_environment(None) is policy
    assert policy.for_environment("production") is production  # built once, at parse time


def test_uses_rate_limits_when_only_an_environment_sets_them() -> None:
    policy = parse(
        """
        id: env-rate
        environments:
          production:
            rate_limits: {per_agent_per_day: 10}
        """
    )
    assert policy.rate_limits is None
    assert policy.uses_rate_limits


def _error(text: str, filename: str = "p.yaml") -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse(text, filename)
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("", None, None, "empty"),
        ("# only a comment\n", None, None, "empty"),
        ("- id: x\n", 1, None, "must be a mapping"),
        ("just text\n", 1, None, "must be a mapping"),
        ("id: x\n  bad: [\n", 2, None, "invalid YAML"),
        ("id: x\n---\nid: y\n", 2, None, "invalid YAML"),
        ("description: no id\n", 1, "id", "required field is missing"),
        ("id: 42\n", 1, "id", "expected a string, got an integer"),
        ("id: ../etc\n", 1, "id", "invalid policy id"),
        ("id: x\nid: y\n", 2, "id", "duplicate key (first at line 1)"),
        (
            "id: x\nrequire_aproval: always\n",
            2,
            "require_aproval",
            "did you mean 'require_approval'",
        ),
        ("id: x\n1: y\n", 2, None, "keys must be strings"),
        ("id: x\n<<: {expiry_minutes: 5}\n", 2, None, "merge keys (<<) are not supported"),
        ("id: x\ndestinations: zendesk.reply\n", 2, "destinations", "expected a list"),
        ("id: x\ndestinations: [a, 3]\n", 2, "destinations[1]", "expected a string"),
        ("id: x\ndestinations: [' a.send']\n", 2, "destinations[0]", "whitespace"),
        ("id: x\ndestinations: ['']\n", 2, "destinations[0]", "must not be empty"),
        ("id: x\nallowed_types: [csv, no]\n", 2, "allowed_types[1]", "booleans"),
        ("id: x\nblock_if_terms:\n  - ok\n  - '---'\n", 4, "block_if_terms[1]", "no letters"),
        ("id: x\nrequire_approval: yes\n", 2, "require_approval", "quote it"),
        ("id: x\nrequire_approval: sometimes\n", 2, "require_approval", '"always" or "never"'),
        ("id: x\nauto_approve_under: -1\n", 2, "auto_approve_under", "must be >= 0"),
        ("id: x\nauto_approve_under: 1.5\n", 2, "auto_approve_under", "expected an integer"),
        ("id: x\nauto_approve_under: true\n", 2, "auto_approve_under", "expected an integer"),
        ("id: x\nrequire_approval_over: '5'\n", 2, "require_approval_over", "expected an integer"),
        ("id: x\nexpiry_minutes: 0\n", 2, "expiry_minutes", "must be >= 1"),
        ("id: x\nexpiry_minutes: 99999999\n", 2, "expiry_minutes", "must be <="),
        ("id: x\nrequire_approvals: 0\n", 2, "require_approvals", "must be >= 1"),
        ("id: x\ndescription: [a]\n", 2, "description", "expected a string"),
        (
            "id: x\nauto_approve_under: 10\nrequire_approval_over: 5\n",
            2,
            "auto_approve_under",
            "would be auto-approved",
        ),
        ("id: x\nfield_checks: {path: a}\n", 2, "field_checks", "expected a list"),
        ("id: x\nfield_checks:\n  - required: true\n", 3, "field_checks[0].path", "missing"),
        ("id: x\nfield_checks:\n  - path: a\n", 3, "field_checks[0]", "needs at least one"),
        (
            "id: x\nfield_checks:\n  - path: a\n    required: false\n",
            3,
            "field_checks[0]",
            "needs at least one",
        ),
        ("id: x\nfield_checks:\n  - path: a..b\n    required: true\n", 3, None, "empty path"),
        (
            "id: x\nfield_checks:\n  - path: a\n    required: true\n"
            "  - path: b\n    pattern: '('\n",
            6,
            "field_checks[1].pattern",
            "invalid regular expression",
        ),
        (
            "id: x\nfield_checks:\n  - path: a\n    requried: true\n",
            4,
            "field_checks[0].requried",
            "did you mean 'required'",
        ),
        ("id: x\nfield_checks:\n  - {path: a, min: yes}\n", 3, "field_checks[0].min", "number"),
        ("id: x\nfield_checks:\n  - {path: a, max: .nan}\n", 3, "field_checks[0].max", "finite"),
        (
            "id: x\nfield_checks:\n  - {path: a, min: 5, max: 1}\n",
            3,
            "field_checks[0].min",
            "> max",
        ),
        ("id: x\nfield_checks:\n  - {path: a, required: 1}\n", 3, None, "true or false"),
        ("id: x\nrate_limits: {}\n", 2, "rate_limits", "per_agent_per_hour"),
        ("id: x\nrate_limits: {per_hour: 5}\n", 2, "rate_limits.per_hour", "unknown field"),
        (
            "id: x\nrate_limits:\n  per_agent_per_day: -1\n",
            3,
            "rate_limits.per_agent_per_day",
            "must be >= 0",
        ),
        ("id: x\nenvironments: [production]\n", 2, "environments", "expected a mapping"),
        (
            "id: x\nenvironments:\n  production:\n    id: y\n",
            4,
            "environments.production.id",
            "unknown field",
        ),
        (
            "id: x\nenvironments:\n  production:\n    environments: {}\n",
            4,
            "environments.production.environments",
            "unknown field",
        ),
        (
            "id: x\nenvironments:\n  production:\n    require_approval: maybe\n",
            4,
            "environments.production.require_approval",
            '"always" or "never"',
        ),
        (
            "id: x\nenvironments:\n  production:\n    require_approval: always\n"
            "  production:\n    require_approval: never\n",
            5,
            "environments.production",
            "duplicate key",
        ),
        (
            "id: x\nrequire_approval_over: 5\nenvironments:\n  dev:\n    auto_approve_under: 9\n",
            5,
            "environments.dev.auto_approve_under",
            "would be auto-approved",
        ),
        (
            "id: x\nenvironments:\n  dev:\n    field_checks:\n      - {path: a, pattern: '['}\n",
            5,
            "environments.dev.field_checks[0].pattern",
            "invalid regular expression",
        ),
        ("id: x\nenvironments:\n  production:\n", 3, "environments.production", "mapping"),
        ("id: x\ndestinations: !!python/object:os.system [a]\n", 2, "destinations", "list"),
    ],
)
def test_parse_errors_name_line_and_field(
    text: str, line: int | None, field: str | None, message: str
) -> None:
    error = _error(text)
    assert error.file == "p.yaml"
    assert error.line == line
    if field is not None:
        assert error.field == field
    assert message in error.message
    assert str(error).startswith("p.yaml")


@pytest.mark.parametrize(
    ("error", "rendered"),
    [
        (PolicyError("a.yaml", 3, "id", "bad"), "a.yaml:3: id: bad"),
        (PolicyError("a.yaml", None, "id", "bad"), "a.yaml: id: bad"),
        (PolicyError("a.yaml", 3, None, "bad"), "a.yaml:3: bad"),
        (PolicyError("a.yaml", None, None, "bad"), "a.yaml: bad"),
        (PolicyError("", 7, "x", "bad"), "line 7: x: bad"),
    ],
)
def test_policy_error_rendering(error: PolicyError, rendered: str) -> None:
    assert str(error) == rendered
    assert isinstance(error, ValueError)


def test_policy_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(PolicyError("a.yaml", 3, "id", "bad")))
    assert (error.file, error.line, error.field, error.message) == ("a.yaml", 3, "id", "bad")


def test_parse_policy_expected_id() -> None:
    assert parse_policy("id: a\n", "a.yaml", expected_id="a").id == "a"
    with pytest.raises(PolicyError, match=r"^b\.yaml:1: id: .*must match the file name 'b'"):
        parse_policy("id: a\n", "b.yaml", expected_id="b")


@pytest.mark.parametrize(
    ("policy_id", "valid"),
    [
        ("support-reply", True),
        ("crm_low.risk-2", True),
        ("A", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("-leading-dash", False),
        (".hidden", False),
        ("a..b", False),
        ("a/b", False),
        ("a\\b", False),
        ("a b", False),
        ("ünïcode", False),
        ("a\n", False),
    ],
)
def test_validate_policy_id(policy_id: str, valid: bool) -> None:
    assert validate_policy_id(policy_id) is valid


# --------------------------------------------------------------------------------------
# Payload type
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"a": 1}', "json"),
        ("  [1, 2]\n", "json"),
        ('"a string"', "text"),
        ("42", "text"),
        ("{not json", "text"),
        ('{"a": NaN}', "text"),
        ("./leads.csv", "csv"),
        ("/tmp/export/Leads.CSV", "csv"),
        ("C:\\data\\report.xlsx", "xlsx"),
        ("leads.csv", "csv"),
        ("Thanks, your issue has been resolved.", "text"),
        ("Please see leads.csv", "text"),
        ("version 1.2", "text"),
        ("v1.2", "text"),
        ("line one\n./two.csv", "text"),
        ("", "text"),
        (None, "text"),
    ],
)
def test_detect_payload_type(payload: str | None, expected: str) -> None:
    assert detect_payload_type(payload) == expected


# --------------------------------------------------------------------------------------
# evaluate(): the seed examples
# --------------------------------------------------------------------------------------


def _decide(
    policy_text: str | None, rates: RateCounts | None = OK_RATES, **facts: object
) -> Decision:
    policy = None if policy_text is None else parse(policy_text)
    return evaluate(policy, IntentFacts(**facts), rates)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "status", "reason", "rule"),
    [
        (
            {"destination": "zendesk.reply", "payload": "Your issue is resolved."},
            "approved",
            "approved_by_policy",
            "auto_approve_under",
        ),
        (
            {"destination": "zendesk.reply", "payload": "We will s.u.e"},
            "blocked",
            "blocked_term_detected",
            "block_if_terms",
        ),
        (
            {"destination": "slack.post", "payload": "hi"},
            "blocked",
            "destination_not_allowed",
            "destinations",
        ),
        (
            {"destination": "zendesk.reply", "payload": "./leads.csv"},
            "blocked",
            "payload_type_not_allowed",
            "allowed_types",
        ),
        (
            {"destination": "zendesk.reply", "payload": "hi", "record_count": 2},
            "pending_approval",
            "manual_review_required",
            "default",
        ),
        (
            {"destination": "zendesk.reply", "payload": '{"body": "hi"}', "record_count": 0},
            "approved",
            "approved_by_policy",
            "auto_approve_under",
        ),
    ],
)
def test_support_reply(facts: dict[str, object], status: str, reason: str, rule: str) -> None:
    decision = _decide(SUPPORT_REPLY, **facts)
    assert (decision.status, decision.reason_code, decision.rule) == (status, reason, rule)
    assert decision.expiry_minutes == 30
    assert (decision.block_reason is not None) == (status == "blocked")


def test_blocked_term_reason_names_the_term() -> None:
    decision = _decide(SUPPORT_REPLY, destination="zendesk.reply", payload="LEGAL-ACTION!")
    assert decision.block_reason == "Payload contains blocked term: legal action"


@pytest.mark.parametrize(
    ("record_count", "status", "reason", "rule"),
    [
        (None, "approved", "approved_by_policy", "auto_approve_under"),  # None means 1
        (1, "approved", "approved_by_policy", "auto_approve_under"),
        (100, "approved", "approved_by_policy", "auto_approve_under"),
        (101, "pending_approval", "record_threshold_exceeded", "require_approval_over"),
        (10_000, "pending_approval", "record_threshold_exceeded", "require_approval_over"),
    ],
)
def test_crm_thresholds(record_count: int | None, status: str, reason: str, rule: str) -> None:
    policy = """
        id: crm-low-risk
        destinations: [salesforce.import, hubspot.contacts]
        allowed_types: [csv, json]
        auto_approve_under: 100
        require_approval_over: 100
    """
    decision = _decide(
        policy, destination="salesforce.import", payload="./leads.csv", record_count=record_count
    )
    assert (decision.status, decision.reason_code, decision.rule) == (status, reason, rule)


def test_require_approval_always_wins_over_low_risk_and_auto_approve() -> None:
    policy = """
        id: finance-high-risk
        destinations: [stripe.refund]
        require_approval: always
        auto_approve_under: 1000
        expiry_minutes: 15
    """
    decision = _decide(policy, destination="stripe.refund", payload="refund 5 USD")
    assert (decision.status, decision.reason_code) == ("pending_approval", "manual_review_required")
    assert decision.rule == "require_approval"
    assert decision.expiry_minutes == 15


GOOD_EMAIL = '{"to": "a@b.co", "amount": 5}'
APPROVED_BY_NEVER = "approved / approved_by_policy / require_approval"
PENDING_BY_ALWAYS = "pending_approval / manual_review_required / require_approval"
PENDING_BY_DEFAULT = "pending_approval / manual_review_required / default"
FIELD_CHECK_FAILED = "blocked / field_check_failed / field_checks"
RATE_LIMITED = "blocked / rate_limited / rate_limits"


@pytest.mark.parametrize(
    ("environment", "payload", "rates", "expected"),
    [
        ("development", GOOD_EMAIL, OK_RATES, APPROVED_BY_NEVER),
        ("production", GOOD_EMAIL, OK_RATES, PENDING_BY_ALWAYS),
        (None, GOOD_EMAIL, OK_RATES, PENDING_BY_DEFAULT),
        ("staging", GOOD_EMAIL, OK_RATES, PENDING_BY_DEFAULT),  # unlisted: base policy
        # blocking checks run before approval rules, even before require_approval: never
        ("development", '{"to": "not-an-email", "amount": 5}', OK_RATES, FIELD_CHECK_FAILED),
        ("development", '{"to": "a@b.co", "amount": 500}', OK_RATES, FIELD_CHECK_FAILED),
        ("development", '{"amount": 5}', OK_RATES, FIELD_CHECK_FAILED),
        ("development", "to=a@b.co&amount=5", OK_RATES, FIELD_CHECK_FAILED),
        ("development", GOOD_EMAIL, RateCounts(50, 50), RATE_LIMITED),
        ("development", GOOD_EMAIL, RateCounts(0, 200), RATE_LIMITED),
        ("development", GOOD_EMAIL, RateCounts(49, 199), APPROVED_BY_NEVER),
        ("development", GOOD_EMAIL, None, RATE_LIMITED),
    ],
)
def test_schema_checked_email(
    environment: str | None, payload: str, rates: RateCounts | None, expected: str
) -> None:
    decision = _decide(
        SCHEMA_CHECKED, rates, destination="sendgrid.send", payload=payload, environment=environment
    )
    assert f"{decision.status} / {decision.reason_code} / {decision.rule}" == expected


@pytest.mark.parametrize(
    ("rates", "block_reason"),
    [
        (None, "rate counts unavailable"),
        (RateCounts(50, 60), "Rate limit exceeded: 50 intents in the last hour (limit 50)"),
        (RateCounts(3, 201), "Rate limit exceeded: 201 intents in the last day (limit 200)"),
    ],
)
def test_rate_limit_reasons(rates: RateCounts | None, block_reason: str) -> None:
    decision = _decide(
        SCHEMA_CHECKED, rates, destination="sendgrid.send", payload='{"to": "a@b.co"}'
    )
    assert decision.block_reason == block_reason


def test_policy_not_found_is_blocked() -> None:
    decision = _decide(None, destination="anything")
    assert (decision.status, decision.reason_code, decision.rule) == (
        "blocked",
        "policy_not_found",
        "policy",
    )
    assert decision.expiry_minutes == 60 and decision.require_approvals == 1


def test_default_is_pending() -> None:
    decision = _decide("id: empty-rules", destination="x.y", payload="hello")
    assert (decision.status, decision.reason_code, decision.rule) == (
        "pending_approval",
        "manual_review_required",
        "default",
    )


def test_require_approvals_is_reported() -> None:
    decision = _decide("id: two-reviewers\nrequire_approvals: 2", destination="x.y")
    assert decision.require_approvals == 2


def test_blocking_checks_come_in_order() -> None:
    # Every check fails; the destination allowlist is first, so it decides.
    policy = """
        id: order
        destinations: [ok.send]
        allowed_types: [json]
        block_if_terms: [sue]
        field_checks: [{path: to, required: true}]
        rate_limits: {per_agent_per_hour: 0}
        require_approval: never
    """
    bad = {"payload": "sue", "record_count": 1}
    order = [
        ({"destination": "bad.send", **bad}, "destination_not_allowed"),
        ({"destination": "ok.send", **bad}, "payload_type_not_allowed"),
        ({"destination": "ok.send", "payload": '{"body": "sue"}'}, "blocked_term_detected"),
        ({"destination": "ok.send", "payload": '{"body": "hi"}'}, "field_check_failed"),
        ({"destination": "ok.send", "payload": '{"to": "x"}'}, "rate_limited"),
    ]
    for facts, reason in order:
        assert _decide(policy, **facts).reason_code == reason


@pytest.mark.parametrize(
    ("allowed", "facts", "status"),
    [
        ("[csv]", {"payload": "./leads.csv"}, "pending_approval"),
        ("[csv]", {"payload": "hello"}, "blocked"),  # text is a type too: fail closed
        ("[csv]", {"payload": None}, "blocked"),
        ("[text]", {"payload": None}, "pending_approval"),
        ("[json]", {"payload": '[{"a": 1}]'}, "pending_approval"),
        ("[csv]", {"payload": "whatever", "payload_type": ".CSV"}, "pending_approval"),
        ("[json]", {"payload": '{"a": 1}', "payload_type": "csv"}, "blocked"),
    ],
)
def test_allowed_types(allowed: str, facts: dict[str, object], status: str) -> None:
    decision = _decide(f"id: t\nallowed_types: {allowed}", destination="x.y", **facts)
    assert decision.status == status


# --------------------------------------------------------------------------------------
# field_checks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "payload", "failure"),
    [
        ("{path: to, required: true}", {"to": "a"}, None),
        ("{path: to, required: true}", {}, "to: is required"),
        ("{path: to, required: true}", {"to": None}, "to: is required"),
        ("{path: to, required: true}", {"to": ""}, None),  # present, even if empty
        ("{path: to, pattern: '^a'}", {}, None),  # absent and not required: skipped
        ("{path: to, pattern: '^a'}", {"to": "abc"}, None),
        ("{path: to, pattern: 'b'}", {"to": "abc"}, None),  # re.search, not fullmatch
        ("{path: to, pattern: '^b'}", {"to": "abc"}, "to: does not match pattern"),
        ("{path: to, pattern: '^1'}", {"to": 1}, "to: must be a string"),
        ("{path: n, min: 1, max: 10}", {"n": 1}, None),
        ("{path: n, min: 1, max: 10}", {"n": 10.0}, None),
        ("{path: n, min: 1, max: 10}", {"n": 0}, "n: 0 is below the minimum 1"),
        ("{path: n, min: 1, max: 10}", {"n": 10.5}, "n: 10.5 is above the maximum 10"),
        ("{path: n, min: 1}", {"n": "5"}, "n: must be a number"),
        ("{path: n, max: 1}", {"n": True}, "n: must be a number"),  # bool is not a number
        ("{path: n, max: 1}", {"n": [1]}, "n: must be a number"),
        ("{path: s, max_length: 3}", {"s": "abc"}, None),
        ("{path: s, max_length: 3}", {"s": "abcd"}, "s: length 4 exceeds max_length 3"),
        ("{path: s, max_length: 2}", {"s": [1, 2, 3]}, "s: length 3 exceeds max_length 2"),
        ("{path: s, max_length: 2}", {"s": 12}, "s: must be a string or list"),
        ("{path: s, max_length: 2}", {"s": {"a": 1}}, "s: must be a string or list"),
        ("{path: c.0.email, required: true}", {"c": [{"email": "x"}]}, None),
        ("{path: c.1.email, required: true}", {"c": [{"email": "x"}]}, "c.1.email: is required"),
        ("{path: c.-1.email, required: true}", {"c": [{"email": "x"}]}, "is required"),
        ("{path: c.email, required: true}", {"c": [{"email": "x"}]}, "is required"),
        ("{path: a.b, required: true}", {"a": "not an object"}, "is required"),
        ("{path: a.0, required: true}", {"a": {"0": "key named 0"}}, None),
    ],
)
def test_field_checks(check: str, payload: dict[str, object], failure: str | None) -> None:
    decision = _decide(
        f"id: fc\nrequire_approval: never\nfield_checks: [{check}]",
        destination="x.y",
        payload=json.dumps(payload),
    )
    if failure is None:
        assert decision.status == "approved", decision.block_reason
    else:
        assert decision.reason_code == "field_check_failed"
        assert decision.block_reason is not None
        assert decision.block_reason.startswith("Field check failed: ")
        assert failure in decision.block_reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "field_checks require a JSON payload"),
        ("to=a@b.co", "field_checks require a JSON payload"),
        ('"a JSON string"', "field_checks require a JSON payload"),
        ('{"amount": NaN}', "field_checks require a JSON payload"),
        ('{"amount": 5, "amount": 500}', "Field check failed: amount: duplicate key 'amount'"),
        ('{"amount": 500, "amount": 5}', "Field check failed: amount: duplicate key 'amount'"),
    ],
)
def test_field_checks_fail_closed(payload: str | None, reason: str) -> None:
    decision = _decide(
        "id: fc\nrequire_approval: never\nfield_checks: [{path: amount, max: 100}]",
        destination="x.y",
        payload=payload,
    )
    assert (decision.status, decision.block_reason) == ("blocked", reason)


def test_duplicate_keys_elsewhere_do_not_block_field_checks() -> None:
    decision = _decide(
        "id: fc\nrequire_approval: never\nfield_checks: [{path: amount, max: 100}]",
        destination="x.y",
        payload='{"amount": 5, "note": "a", "note": "b"}',
    )
    assert decision.status == "approved"


def test_terms_see_every_duplicate_value() -> None:
    decision = _decide(
        "id: t\nblock_if_terms: [sue]", destination="x.y", payload='{"b": "sue", "b": "hi"}'
    )
    assert decision.reason_code == "blocked_term_detected"


# --------------------------------------------------------------------------------------
# IntentFacts validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"record_count": -1},
        {"record_count": True},
        {"record_count": 1.5},
        {"estimated_value_usd": -0.01},
        {"estimated_value_usd": "100"},
        {"estimated_value_usd": False},
    ],
)
def test_intent_facts_rejects_malformed_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        IntentFacts(destination="x.y", **kwargs)  # type: ignore[arg-type]


def test_intent_facts_normalises_tags() -> None:
    assert IntentFacts("x.y", sensitivity_tags=["pii", "legal"]).sensitivity_tags == (  # type: ignore[arg-type]
        "pii",
        "legal",
    )
    assert IntentFacts("x.y", sensitivity_tags="pii").sensitivity_tags == ("pii",)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Risk score
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "category"),
    [
        ("stripe.refund", ("financial", 0.4)),
        ("netsuite.payment", ("financial", 0.4)),
        ("bank-transfer", ("financial", 0.4)),
        ("api/payments/create", ("financial", 0.4)),
        ("stripeRefund", ("financial", 0.4)),
        ("crm.ach_debit", ("financial", 0.4)),
        ("sendgrid.send", ("messaging", 0.3)),
        ("coaching.email", ("messaging", 0.3)),  # "coaching" contains "ach" but is not it
        ("salesforce.import", ("messaging", 0.3)),
        ("db:delete", ("messaging", 0.3)),
        ("blog.publish", ("messaging", 0.3)),
        ("zendesk.reply", ("general", 0.2)),
        ("teaching.notes", ("general", 0.2)),
        ("", ("general", 0.2)),
    ],
)
def test_destination_category(destination: str, category: tuple[str, float]) -> None:
    assert destination_category(destination) == category


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("zendesk.reply", 1, 1, None, ()), (0.2, "low")),
        (("zendesk.reply", None, None, None, ()), (0.2, "low")),
        (("sendgrid.send", 1, None, None, ()), (0.3, "medium")),
        (("salesforce.import", 50, 100, None, ()), (0.45, "medium")),
        (("salesforce.import", 100, 100, None, ()), (0.6, "high")),
        (("salesforce.import", 5000, 100, None, ()), (0.6, "high")),  # capped at 0.3
        (("salesforce.import", 50, None, None, ()), (0.45, "medium")),  # nominal 100
        (("x.y", 2, 0, None, ()), (0.5, "high")),  # threshold 0 counts as 1
        (("stripe.refund", 1, None, 1000.0, ()), (0.4, "medium")),  # > 1000, not >=
        (("stripe.refund", 1, None, 1000.01, ()), (0.6, "high")),
        (("stripe.refund", 1, None, float("nan"), ()), (0.6, "high")),
        (("stripe.refund", 1, None, None, ("pii",)), (0.5, "high")),
        (("stripe.refund", 1, None, None, ("pii", "PII ", "legal")), (0.6, "high")),
        (("stripe.refund", 500, 10, 5000.0, ("pii", "financial", "legal")), (1.0, "critical")),
    ],
)
def test_risk_score(args: tuple[object, ...], expected: tuple[float, str]) -> None:
    assert risk_score(*args) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("score", "level"),
    [(0.0, "low"), (0.24, "low"), (0.25, "medium"), (0.49, "medium"), (0.5, "high"),
     (0.74, "high"), (0.75, "critical"), (1.0, "critical")],
)  # fmt: skip
def test_risk_level_boundaries(score: float, level: str) -> None:
    assert risk_level(score) == level


def test_decision_carries_risk_and_it_never_changes_the_outcome() -> None:
    risky = _decide(
        SUPPORT_REPLY,
        destination="zendesk.reply",
        payload="Thanks!",
        estimated_value_usd=50_000.0,
        sensitivity_tags=("pii", "legal", "health"),
    )
    assert risky.status == "approved"  # auto-approve ignores the score (seed)
    assert (risky.risk_score, risky.risk_level) == (0.7, "high")
