"""MCP governance, the pure core: strict JSON-RPC reading, routing headers, the tools: rules,
the call fingerprint, and the loaders' located errors for the new fields. Table-driven,
with the evasions an agent would try (odd case and Unicode tool names, arguments as a JSON
string, duplicate keys, deep nesting, batches)."""

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gate_proxy.core.body import decode_body
from gate_proxy.core.decide import AgentScope, DescribedRequest, decide
from gate_proxy.core.fingerprint import mcp_call_fingerprint
from gate_proxy.core.intents import Intent, Status
from gate_proxy.core.mcp import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_BATCH,
    MAX_DEPTH,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    McpBody,
    McpProblem,
    MessageKind,
    ToolPattern,
    ToolRules,
    ToolRuling,
    check_routing_headers,
    decode_header_value,
    parse_mcp_body,
    rule_for_tool,
)
from gate_proxy.core.mcp.record import intent_tool, tool_metadata
from gate_proxy.core.policy import IntentFacts, PolicyError, evaluate
from gate_proxy.core.registry import RegistryError
from gate_proxy.dashboard.views import dashboard_view
from gate_proxy.loaders.policy_file import parse_policy
from gate_proxy.loaders.registry_file import parse_registry_text


def call(name: Any = "issue_refund", arguments: Any = None, **params: Any) -> str:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    body["params"] = {"name": name, **({"arguments": arguments} if arguments is not None else {})}
    body["params"].update(params)
    return json.dumps(body)


def parsed(text: str) -> McpBody:
    result = parse_mcp_body(text)
    assert isinstance(result, McpBody), result
    return result


def problem(text: str) -> McpProblem:
    result = parse_mcp_body(text)
    assert isinstance(result, McpProblem), f"accepted: {text[:120]}"
    return result


# -- JSON-RPC reading -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kinds", "methods"),
    [
        ('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}', ["request"], ["initialize"]),
        ('{"jsonrpc":"2.0","method":"notifications/initialized"}', ["notification"], [None]),
        ('{"jsonrpc":"2.0","id":"a","method":"tools/list"}', ["request"], ["tools/list"]),
        (
            '{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"x"}}',
            ["request"],
            [None],
        ),
        ('{"jsonrpc":"2.0","id":3,"method":"server/discover","params":{}}', ["request"], [None]),
        ('{"jsonrpc":"2.0","id":4,"result":{}}', ["response"], [None]),
        ('{"jsonrpc":"2.0","id":5,"error":{"code":1,"message":"x"}}', ["response"], [None]),
        (
            '[{"jsonrpc":"2.0","id":1,"method":"ping"},'
            '{"jsonrpc":"2.0","method":"notifications/progress","params":{}}]',
            ["request", "notification"],
            [None, None],
        ),
    ],
)
def test_protocol_traffic_is_read_as_protocol(
    text: str, kinds: list[str], methods: list[str | None]
) -> None:
    body = parsed(text)
    assert [m.kind.value for m in body.messages] == kinds
    assert body.calls == ()
    assert all(m.is_protocol for m in body.messages)
    assert body.batch is text.startswith("[")


def test_a_tool_call_is_read_with_its_arguments_and_a_binding_without_id_and_meta() -> None:
    first = parsed(call(arguments={"charge": "ch_1", "amount": 500}, _meta={"progressToken": 1}))
    (tool,) = first.calls
    assert tool.name == "issue_refund" and tool.request_id == 7
    assert json.loads(tool.arguments_json) == {"charge": "ch_1", "amount": 500}
    # Another id, other _meta, keys in another order, 500.0 for 500: the same call.
    again = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": "other-id",
            "method": "tools/call",
            "params": {
                "_meta": {"progressToken": 99},
                "arguments": {"amount": 500.0, "charge": "ch_1"},
                "name": "issue_refund",
            },
        }
    )
    assert parsed(again).calls[0].binding == tool.binding
    # Other arguments, or another member of params that changes what runs: another call.
    other = parsed(call(arguments={"charge": "ch_1", "amount": 501})).calls[0]
    assert other.binding != tool.binding
    extra = parsed(call(arguments={"charge": "ch_1", "amount": 500}, task={"ttl": 1})).calls[0]
    assert extra.binding != tool.binding


def test_absent_or_null_arguments_are_an_empty_object() -> None:
    assert parsed(call()).calls[0].arguments_json == "{}"
    text = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":null}}'
    assert parsed(text).calls[0].arguments_json == "{}"


NOT_JSON = (PARSE_ERROR, "mcp_invalid_json")
NOT_RPC = (INVALID_REQUEST, "mcp_invalid_request")
UNKNOWN = (METHOD_NOT_FOUND, "mcp_method_not_governed")
BAD_PARAMS = (INVALID_PARAMS, "mcp_invalid_params")
NOTIFY = '{"jsonrpc":"2.0","method":"notifications/x"}'
DEEP = '{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1)
VERY_DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("text", "code", "reason"),
    [
        # Not JSON at all, or JSON no two servers read alike.
        ("", *NOT_JSON),
        ("{", *NOT_JSON),
        (
            '{"jsonrpc":"2.0","id":1,"method":"tools/list"} trailing',
            PARSE_ERROR,
            "mcp_invalid_json",
        ),
        (
            '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}',
            PARSE_ERROR,
            "mcp_duplicate_key",
        ),
        (
            call(arguments={"amount": 1})[:-3] + ',"amount":999999}}}',
            PARSE_ERROR,
            "mcp_duplicate_key",
        ),
        (
            call(arguments={"x": "__NAN__"}).replace('"__NAN__"', "NaN"),
            PARSE_ERROR,
            "mcp_invalid_json",
        ),
        (
            call(arguments={"x": "__INF__"}).replace('"__INF__"', "1e400"),
            PARSE_ERROR,
            "mcp_invalid_json",
        ),
        (
            call(arguments={"x": "__BIG__"}).replace('"__BIG__"', "9" * 5000),
            PARSE_ERROR,
            "mcp_invalid_json",
        ),
        (
            call(arguments={"x": "__S__"}).replace('"__S__"', '"\\ud800"'),
            PARSE_ERROR,
            "mcp_invalid_json",
        ),
        (call(arguments={"deep": "__D__"}).replace('"__D__"', DEEP), PARSE_ERROR, "mcp_too_deep"),
        (VERY_DEEP, PARSE_ERROR, "mcp_too_deep"),
        # JSON, but not JSON-RPC.
        ("42", *NOT_RPC),
        ("[]", *NOT_RPC),
        ("[1]", *NOT_RPC),
        ('{"id":1,"method":"tools/list"}', *NOT_RPC),
        ('{"jsonrpc":"2.1","id":1,"method":"tools/list"}', *NOT_RPC),
        (
            '{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}',
            *NOT_RPC,
        ),
        (
            '{"jsonrpc":"2.0","id":true,"method":"tools/list"}',
            *NOT_RPC,
        ),
        (
            '{"jsonrpc":"2.0","id":null,"method":"tools/call"}',
            *NOT_RPC,
        ),
        ('{"jsonrpc":"2.0","id":1,"method":5}', *NOT_RPC),
        ('{"jsonrpc":"2.0","id":1}', *NOT_RPC),
        ('{"jsonrpc":"2.0","id":1,"result":{},"error":{}}', *NOT_RPC),
        # A second spelling of a member beside the real one.
        (
            '{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}',
            *NOT_RPC,
        ),
        (
            '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[]}',
            *BAD_PARAMS,
        ),
        # A notification cannot carry a call: a lax server might still run it.
        (
            '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"issue_refund"}}',
            *NOT_RPC,
        ),
        # Methods are matched exactly; unknown ones are not passed.
        (
            '{"jsonrpc":"2.0","id":1,"method":"TOOLS/CALL"}',
            *UNKNOWN,
        ),
        (
            '{"jsonrpc":"2.0","id":1,"method":"tools/call "}',
            *UNKNOWN,
        ),
        (
            '{"jsonrpc":"2.0","id":1,"method":"tools/ｃall"}',
            *UNKNOWN,
        ),
        (
            '{"jsonrpc":"2.0","id":1,"method":"admin/exec"}',
            *UNKNOWN,
        ),
        # tools/call params.
        ('{"jsonrpc":"2.0","id":1,"method":"tools/call"}', *BAD_PARAMS),
        (call(name=5), *BAD_PARAMS),
        (call(arguments='{"amount": 999999}'), *BAD_PARAMS),
        (call(arguments=[1, 2]), *BAD_PARAMS),
        (call(arguments=5), *BAD_PARAMS),
        (call(arguments={"a": 1}, Arguments={"a": 2}), *BAD_PARAMS),
        (call(NAME="delete_all"), *BAD_PARAMS),
        # Batches.
        (
            "["
            + ",".join(['{"jsonrpc":"2.0","method":"notifications/x"}'] * (MAX_BATCH + 1))
            + "]",
            *NOT_RPC,
        ),
        (
            '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":"ping"}]',
            *NOT_RPC,
        ),
        (
            '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"x/y"}]',
            *UNKNOWN,
        ),
    ],
)
def test_bodies_servers_could_read_differently_are_refused(
    text: str, code: int, reason: str
) -> None:
    refused = problem(text)
    assert (refused.code, refused.reason_code) == (code, reason), refused


def test_a_refusal_names_the_request_id_when_it_was_readable() -> None:
    assert problem(call(arguments="{}")).request_id == 7
    assert problem('{"jsonrpc":"2.0","id":"q","method":"nope"}').request_id == "q"
    assert problem("{").request_id is None


def test_a_string_id_and_an_integer_id_are_different_ids_in_a_batch() -> None:
    body = parsed(
        '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":"1","method":"ping"}]'
    )
    assert [m.request_id for m in body.requests] == [1, "1"]


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (call(arguments={"a": "é"}).encode("utf-16-le"), "application/json"),
        (b"\xef\xbb\xbf" + call(arguments={"a": "é"}).encode(), "application/json"),
        (call(arguments={"a": "é"}).encode("utf-32-be"), "application/json"),
        (b"\xff\xfe" + call(arguments={"a": "é"}).encode("utf-16-le"), "application/json"),
    ],
)
def test_bodies_are_read_as_the_gate_reads_every_body(raw: bytes, content_type: str) -> None:
    # BOMs, UTF-16/32 without a BOM: the same text the upstream reads (core/body.py).
    decoded = decode_body(raw, content_type)
    assert decoded.ok
    assert parsed(decoded.text or "").calls[0].arguments == {"a": "é"}


def test_a_charset_that_contradicts_the_bytes_is_in_doubt_before_parsing() -> None:
    raw = call().encode("utf-16-le")
    assert decode_body(raw, "application/json; charset=utf-8").problem == "ambiguous_charset"


# -- routing headers (2026-07-28) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ([], False),
        ([("Mcp-Method", "tools/call"), ("Mcp-Name", "issue_refund")], False),
        ([("mcp-method", "tools/call")], False),
        ([("Mcp-Method", "tools/list")], True),
        ([("Mcp-Method", "tools/call"), ("Mcp-Name", "lookup")], True),
        ([("Mcp-Method", "tools/call"), ("Mcp-Method", "tools/call")], True),
        ([("Mcp-Name", "=?base64?aXNzdWVfcmVmdW5k?=")], False),  # "issue_refund"
        ([("Mcp-Name", "=?base64?bG9va3Vw?=")], True),  # "lookup"
        ([("Mcp-Name", "=?base64?not base64?=")], True),
        ([("MCP-Protocol-Version", "a"), ("mcp-protocol-version", "b")], True),
    ],
)
def test_routing_headers_must_say_what_the_body_says(
    headers: list[tuple[str, str]], refused: bool
) -> None:
    body = parsed(call(arguments={"charge": "ch_1"}))
    problem_found = check_routing_headers(body, headers)
    assert (problem_found is not None) is refused, problem_found
    if problem_found is not None:
        assert problem_found.reason_code == "mcp_header_mismatch"
        assert problem_found.request_id == 7


def test_routing_headers_on_a_batch_are_refused() -> None:
    body = parsed(f"[{call()}]")
    assert check_routing_headers(body, [("Mcp-Method", "tools/call")]) is not None


def test_header_values_decode_like_the_sdk() -> None:
    assert decode_header_value("plain") == "plain"
    assert decode_header_value("=?base64?w6k=?=") == "é"
    assert decode_header_value("=?base64?w6l=?=") is None  # non-canonical padding bits


# -- the tools: rules -------------------------------------------------------------------------

RULES = ToolRules(
    read=(ToolPattern("lookup"), ToolPattern("list_*")),
    require_approval=(ToolPattern("issue_refund"),),
    block=(ToolPattern("delete_*"), ToolPattern("drop_database")),
)
ALLOW = ToolRules(
    read=(ToolPattern("lookup"),),
    allow=(ToolPattern("lookup"), ToolPattern("send_*")),
)


@pytest.mark.parametrize(
    ("rules", "name", "ruling"),
    [
        (RULES, "lookup", ToolRuling.READ),
        (RULES, "list_orders", ToolRuling.READ),
        (RULES, "issue_refund", ToolRuling.REVIEW),
        (RULES, "delete_customer", ToolRuling.BLOCK),
        (RULES, "send_email", ToolRuling.POLICY),
        (None, "anything", ToolRuling.POLICY),
        # Odd case: restrictive rules match any case, lenient ones only the exact name.
        (RULES, "Delete_Customer", ToolRuling.BLOCK),
        (RULES, "DROP_DATABASE", ToolRuling.BLOCK),
        (RULES, "ISSUE_REFUND", ToolRuling.REVIEW),
        (RULES, "LOOKUP", ToolRuling.POLICY),
        (RULES, "List_orders", ToolRuling.POLICY),
        # Unicode look-alikes, widths, zero-width and control characters: never read alike.
        (RULES, "delete_custоmer", ToolRuling.INVALID),  # Cyrillic o
        (RULES, "ｄｅｌｅｔｅ_x", ToolRuling.INVALID),  # fullwidth
        (RULES, "delete\u200b_x", ToolRuling.INVALID),  # zero-width space
        (RULES, "lookup\u0000", ToolRuling.INVALID),
        (RULES, "look up", ToolRuling.INVALID),
        (RULES, "lookup ", ToolRuling.INVALID),
        (RULES, "", ToolRuling.INVALID),
        (RULES, "x" * 129, ToolRuling.INVALID),
        (None, "ǅ", ToolRuling.INVALID),
        # allow: anything it does not list exactly is blocked.
        (ALLOW, "lookup", ToolRuling.READ),
        (ALLOW, "send_email", ToolRuling.POLICY),
        (ALLOW, "Send_email", ToolRuling.NOT_ALLOWED),
        (ALLOW, "issue_refund", ToolRuling.NOT_ALLOWED),
    ],
)
def test_tool_rules(rules: ToolRules | None, name: str, ruling: ToolRuling) -> None:
    assert rule_for_tool(rules, name).ruling is ruling


def test_refusing_rulings_carry_reason_codes() -> None:
    assert rule_for_tool(RULES, "delete_x").refusal == (
        "tool_blocked",
        "the policy blocks this tool (tools.block: delete_*)",
    )
    assert rule_for_tool(ALLOW, "other").refusal[0] == "tool_not_allowed"  # type: ignore[index]
    assert rule_for_tool(RULES, "deleté").refusal[0] == "mcp_tool_name_invalid"  # type: ignore[index]
    assert rule_for_tool(RULES, "issue_refund").refusal is None


def test_globs_match_any_run_of_characters_and_nothing_else() -> None:
    pattern = ToolPattern("a.b*")
    assert pattern.matches_exactly("a.b") and pattern.matches_exactly("a.bcd")
    assert not pattern.matches_exactly("aXb")  # the dot is literal
    assert ToolPattern("*").matches_exactly("anything")


def test_record_paths_per_tool() -> None:
    rules = ToolRules(records=((ToolPattern("import_*"), "contacts.length"),))
    assert rules.record_path("import_contacts") == "contacts.length"
    assert rules.record_path("IMPORT_contacts") == "contacts.length"
    assert rules.record_path("export") is None


# -- every policy rule applies to the arguments ----------------------------------------------

POLICY = parse_policy(
    """id: payments-tools
block_if_terms: [chargeback]
field_checks:
  - {path: amount, max: 1000}
  - {path: customer.email, pattern: "@example\\\\.com$"}
require_approval_over: 10
auto_approve_under: 10
tools:
  read: [lookup]
  require_approval: [issue_refund]
""",
    "payments-tools.yaml",
)


def evaluate_call(text: str, record_count: int | None = None) -> str:
    (tool,) = parsed(text).calls
    facts = IntentFacts(
        destination="payments.mcp", payload=tool.arguments_json, record_count=record_count
    )
    return evaluate(POLICY, facts).reason_code


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"amount": 500, "customer": {"email": "a@example.com"}}, "approved_by_policy"),
        ({"amount": 5000}, "field_check_failed"),
        ({"amount": "5000"}, "field_check_failed"),  # a number check on a string
        ({"amount": 5, "customer": {"email": "a@evil.test"}}, "field_check_failed"),
        ({"amount": 5, "note": "open a chargeback"}, "blocked_term_detected"),
        # A JSON string where the check expects structure: some servers parse it.
        ({"customer": '{"email": "a@evil.test"}'}, "field_check_failed"),
    ],
)
def test_policy_rules_read_the_arguments(arguments: dict[str, Any], reason: str) -> None:
    assert evaluate_call(call(arguments=arguments)) == reason


def test_thresholds_count_records_in_the_arguments() -> None:
    assert evaluate_call(call(arguments={"amount": 1}), record_count=50) == (
        "record_threshold_exceeded"
    )


def test_decide_turns_tool_findings_into_the_verdict() -> None:
    facts = IntentFacts(destination="payments.mcp", payload='{"amount":5}')
    scope = AgentScope()
    blocked = DescribedRequest(
        "payments.mcp", "payments-tools", facts, refusal=("tool_blocked", "no")
    )
    assert decide(blocked, POLICY, scope).reason_code == "tool_blocked"
    review = DescribedRequest(
        "payments.mcp", "payments-tools", facts, review_reason="tool_review_required"
    )
    verdict = decide(review, POLICY, scope)
    assert (verdict.status, verdict.reason_code) == ("pending_approval", "tool_review_required")


# -- fingerprints ----------------------------------------------------------------------------


def test_the_call_fingerprint_ignores_the_session_and_binds_the_rest() -> None:
    binding = parsed(call(arguments={"amount": 5})).calls[0].binding
    url = "http://mcp.example.com/mcp"
    bound = ("x-tenant-id",)
    base = mcp_call_fingerprint(url, binding, [("Mcp-Session-Id", "a")], bound)
    assert mcp_call_fingerprint(url, binding, [("Mcp-Session-Id", "b")], bound) == base
    assert mcp_call_fingerprint(url, binding, [], bound) == base
    assert mcp_call_fingerprint(url, binding, [("X-Tenant-Id", "t2")], bound) != base
    assert mcp_call_fingerprint("http://mcp.example.com/other", binding, [], bound) != base
    other = parsed(call(arguments={"amount": 6})).calls[0].binding
    assert mcp_call_fingerprint(url, other, [], bound) != base


# -- loaders: located errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ("tools: {reed: [a]}", "t.yaml:2: tools.reed: unknown field 'reed'"),
        ("tools:\n  read: [a b]", "t.yaml:3: tools.read[0]: 'a b' is not a tool name"),
        (
            "tools:\n  read: [lookup]\n  block: [LOOKUP]",
            "t.yaml:3: tools.read[0]: 'lookup' is already",
        ),
        ("tools:\n  block: []", "t.yaml:3: tools.block: list at least one tool name"),
        ("tools:\n  allow: [a]\n  read: [b]", "t.yaml:4: tools.read[0]: 'b' is not in tools.allow"),
        ("tools:\n  records: {x: 'a b'}", "t.yaml:3: tools.records.x: must be a dot path"),
        ("tools:\n  read: lookup", "t.yaml:3: tools.read: expected a list"),
        ("tools: {}", "t.yaml:2: tools: set at least one of"),
        (
            "environments:\n  production:\n    tools:\n      block: ['é']",
            "t.yaml:5: environments.production.tools.block[0]: 'é' is not a tool name",
        ),
    ],
)
def test_tools_block_errors_are_located(tools: str, expected: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(f"id: t\n{tools}\n", "t.yaml")
    assert str(raised.value).startswith(expected), str(raised.value)


def test_an_environment_replaces_the_tools_block() -> None:
    policy = parse_policy(
        "id: t\ntools: {read: [lookup]}\n"
        "environments:\n  production:\n    tools: {block: [lookup]}\n",
        "t.yaml",
    )
    assert rule_for_tool(policy.tools, "lookup").ruling is ToolRuling.READ
    production = policy.for_environment("production").tools
    assert rule_for_tool(production, "lookup").ruling is ToolRuling.BLOCK


REGISTRY = """
mcp.example.com:
  protocol: mcp
  paths:
    /mcp: {destination: payments.mcp, policy: payments-tools}
    /health: {passthrough: true}
api.example.com:
  paths:
    /mcp: {destination: plain.http, policy: p}
"""


def test_protocol_mcp_is_inherited_and_reaches_the_match() -> None:
    registry = parse_registry_text(REGISTRY, "d.yaml")
    assert registry.match("mcp.example.com", 443, "POST", "/mcp").protocol == "mcp"
    assert registry.match("mcp.example.com", 443, "GET", "/health").protocol == "http"
    assert registry.match("api.example.com", 443, "POST", "/mcp").protocol == "http"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "h.example:\n  paths:\n    /mcp: {destination: d, policy: p, protocol: grpc}\n",
            "d.yaml:3: h.example.paths[\"/mcp\"].protocol: must be 'http' or 'mcp'",
        ),
        (
            "h.example:\n  paths:\n    /mcp: {passthrough: true, protocol: mcp}\n",
            'd.yaml:3: h.example.paths["/mcp"].protocol: protocol: mcp cannot be combined',
        ),
    ],
)
def test_registry_protocol_errors_are_located(text: str, expected: str) -> None:
    with pytest.raises(RegistryError) as raised:
        parse_registry_text(text, "d.yaml")
    assert str(raised.value).startswith(expected), str(raised.value)


def test_a_plain_request_is_not_parsed_as_mcp() -> None:
    # The decider sees no MCP field at all: a plain request's verdict is unchanged.
    facts = IntentFacts(destination="d", payload='{"jsonrpc":"2.0","method":"tools/call"}')
    verdict = decide(DescribedRequest("d", "payments-tools", facts), POLICY, AgentScope())
    assert verdict.reason_code == "approved_by_policy"
    assert MessageKind.REQUEST.value == "request"


# -- what reviewers see ----------------------------------------------------------------------


def intent_of(source: str, metadata: dict[str, Any]) -> Intent:
    return Intent(
        id="int_1",
        agent_id="agt_1",
        agent_name="agent",
        source=source,
        destination="payments.mcp",
        policy="payments-tools",
        status=Status.PENDING,
        risk_score=0.1,
        risk_level="low",
        created_at="2026-01-01T00:00:00Z",
        payload_preview='{"amount":50,"ssn":"123-45-6789"}',
        metadata=metadata,
    )


def test_the_dashboard_names_the_tool_of_a_proxied_call_only() -> None:
    view = dashboard_view(intent_of("proxy", tool_metadata("issue_refund")), held_until=None)
    assert view["tool"] == "issue_refund" and "metadata" not in view
    assert "123-45-6789" not in view["payload"]["preview"]
    # An API intent's metadata is the agent's own: it never names a tool.
    assert dashboard_view(intent_of("api", tool_metadata("x")), held_until=None)["tool"] is None
    assert intent_tool(intent_of("proxy", {"mcp": {"tool": 5}})) is None


def test_the_documented_examples_load() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "mcp.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", docs, re.DOTALL)
    policy = parse_policy(blocks[-1], "payments-tools.yaml", expected_id="payments-tools")
    assert rule_for_tool(policy.tools, "delete_everything").ruling is ToolRuling.BLOCK
    registry = parse_registry_text(textwrap.dedent(blocks[0]), "destinations.yaml")
    assert registry.match("mcp.payments.example.com", 443, "POST", "/mcp").protocol == "mcp"
    assert parse_policy(blocks[1], "payments-tools.yaml").tools is not None
