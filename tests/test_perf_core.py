"""The hot-path shortcuts of the pure core (issue #13) decide exactly what the plain
algorithms they replace decide.

Each shortcut is checked against a reference: the straightforward scan or computation it
replaced, written out here, on generated inputs (hypothesis, derandomized and bounded):

* registry matching by literal-prefix index vs the scan of every rule of the host, blocks
  (sticky, over every path variant), methods, globs and case modes included;
* reverse-route lookup by prefix vs the longest-prefix scan;
* value-only field selection and the per-record key lookup vs `select`;
* the shell analyzer's character prefilter vs the full check of every decoded form;
* the PII scanner's lazily read "ssn"/"social" flag vs reading it first;
* a decision with the content analysis done ahead vs done in the call, and decide() vs
  evaluate(), for generated policies, bodies and counts.
"""

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gate_proxy.core.analyzers import shell
from gate_proxy.core.analyzers.fields import parse_field_path, select, select_values
from gate_proxy.core.analyzers.pii import detect
from gate_proxy.core.analyzers.pii.kinds import _PRECEDENCE
from gate_proxy.core.analyzers.records import RecordCheck, analyze_records
from gate_proxy.core.decide import AgentScope, Counts, DescribedRequest, decide
from gate_proxy.core.intents import Intent
from gate_proxy.core.policy import (
    Counters,
    IntentFacts,
    RateCounts,
    analyze_intent,
    evaluate,
)
from gate_proxy.core.registry import Registry, RegistryError, build_registry
from gate_proxy.core.registry.model import ProxyRoute, RouteTarget
from gate_proxy.core.registry.routes import longest_prefix_first, match_route, path_prefixes
from gate_proxy.core.terms import decode_json
from gate_proxy.core.urlnorm import normalize_host, normalize_path
from gate_proxy.loaders.policy_file import parse_policy

SETTINGS = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- registry: the index finds what the scan finds ------------------------------------------------

RULE_SEGMENTS = ["a", "b", "A", "v1", "x", "*", "**", "a*", "caf\u00e9"]
REQUEST_SEGMENTS = [
    "a",
    "b",
    "A",
    "B",
    "v1",
    "x",
    "ab",
    "%2F",
    "a%2Fb",
    "..",
    "",
    "caf%C3%A9",
    "a;p",
]


def rule_paths() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(RULE_SEGMENTS), min_size=1, max_size=3).map(
        lambda segments: "/" + "/".join(segments)
    )


def entries() -> st.SearchStrategy[dict[str, Any]]:
    entry = st.fixed_dictionaries(
        {"block": st.booleans()},
        optional={
            "method": st.sampled_from(["POST", ["GET", "POST"], "GET"]),
            "path_case": st.sampled_from(["sensitive", "insensitive"]),
        },
    )
    return st.dictionaries(rule_paths(), entry, min_size=1, max_size=8)


def registry_data(paths: dict[str, dict[str, Any]], host_block: bool) -> dict[str, Any]:
    built: dict[str, Any] = {}
    for index, (path, entry) in enumerate(paths.items()):
        if entry["block"]:
            built[path] = {k: v for k, v in entry.items()}
        else:
            rest = {k: v for k, v in entry.items() if k != "block"}
            built[path] = {**rest, "destination": f"d{index}", "policy": "p"}
    host: dict[str, Any] = {"paths": built}
    if host_block:
        host["block"] = True
    return {
        "default": {"action": "block"},
        "api.example.com": host,
        "*.example.com": {"paths": {"/v1": {"destination": "wild", "policy": "p"}}},
    }


def scanned(candidates: Any, method: str, norm: str, p: str, lower: str) -> tuple[str, Any]:
    """Registry.match's rule choice before the index: every rule of the host in order."""
    best = None
    forms: dict[bool, tuple[str, ...]] = {}
    for c in candidates.items:
        if c.block:
            if c.blocks(method, norm, forms):
                return ("block", c.route)
            continue
        if not c.matches(method, p, lower):
            continue
        if best is None:
            best = c
            if not candidates.any_block:
                break
    return ("allow", best.route if best is not None else None)


def indexed(candidates: Any, method: str, norm: str, p: str, lower: str) -> tuple[str, Any]:
    block = candidates.first_block(method, norm) if candidates.any_block else None
    if block is not None:
        return ("block", block.route)
    best = candidates.first_allow(method, p, lower)
    return ("allow", best.route if best is not None else None)


def requests_for(paths: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Requests near the rules: a rule's path made concrete (with a suffix, another case,
    an encoded slash) or one made of the request segments."""
    concrete = [p.replace("**", "x/y").replace("*", "z") for p in paths]
    near = st.tuples(
        st.sampled_from(concrete),
        st.sampled_from(["", "/", "/more", "/A", ";p", "%2Fx", "/../a"]),
        st.booleans(),
    ).map(lambda t: (t[0].upper() if t[2] else t[0]) + t[1])
    other = st.lists(st.sampled_from(REQUEST_SEGMENTS), max_size=4).map(
        lambda segments: "/" + "/".join(segments)
    )
    method = st.sampled_from(["GET", "POST", "PUT"])
    return st.lists(st.tuples(method, st.one_of(near, other)), min_size=1, max_size=8)


@SETTINGS
@given(paths=entries(), host_block=st.booleans(), data=st.data())
def test_the_registry_index_chooses_what_the_scan_chooses(
    paths: dict[str, dict[str, Any]], host_block: bool, data: st.DataObject
) -> None:
    try:
        registry = build_registry(registry_data(paths, host_block))
    except RegistryError:
        assume(False)
        return
    requests = data.draw(requests_for(list(paths)))
    for host in ("api.example.com", "eu.example.com"):
        candidates = registry._candidates(normalize_host(host), 443)
        for method, raw in requests:
            normalized = normalize_path(raw)
            if normalized.refusal is not None:
                continue
            norm = normalized.path
            p = norm.rstrip("/") or "/"
            expected = scanned(candidates, method, norm, p, p.lower())
            assert indexed(candidates, method, norm, p, p.lower()) == expected, (raw, method)
            match = registry.match(host, 443, method, raw)
            kind, route = expected
            assert match.blocked == (kind == "block" or route is None)
            if route is not None:
                assert match.route == route


def test_a_thousand_paths_on_one_host_are_looked_up_not_scanned() -> None:
    paths = {
        f"/v1/r{i}": {"method": "POST", "destination": f"d{i}", "policy": "p"} for i in range(1000)
    }
    registry = build_registry({"api.example.com": {"paths": {**paths, "/admin": {"block": True}}}})
    candidates = registry._candidates("api.example.com", 443)
    assert len(candidates.items) == 1001
    assert len(candidates.allow_scanned) == 0 and len(candidates.block_scanned) == 0
    assert registry.match("api.example.com", 443, "POST", "/v1/r999").destination == "d999"
    assert registry.match("api.example.com", 443, "POST", "/ADMIN/x").blocked
    assert registry.match("api.example.com", 443, "POST", "/v1/r1000").blocked  # unknown


# -- reverse routes --------------------------------------------------------------------------------


def scanned_route(routes: tuple[ProxyRoute, ...], path: str) -> ProxyRoute | None:
    p = normalize_path(path).path
    for route in routes:
        prefix = route.prefix
        if prefix != "/" and p != prefix and not p.startswith(prefix + "/"):
            continue
        return route
    return None


@SETTINGS
@given(
    prefixes=st.lists(
        st.lists(st.sampled_from(["a", "b", "ab", "v1"]), max_size=3).map(
            lambda s: "/" + "/".join(s)
        ),
        min_size=1,
        max_size=8,
        unique=True,
    ),
    paths=st.lists(
        st.lists(st.sampled_from(["a", "b", "ab", "v1", "", "c"]), max_size=4).map(
            lambda s: "/" + "/".join(s)
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_the_route_index_finds_the_longest_prefix(prefixes: list[str], paths: list[str]) -> None:
    routes = longest_prefix_first(
        ProxyRoute(prefix, "https", f"up{i}.example", 443, "/") for i, prefix in enumerate(prefixes)
    )
    registry = Registry(proxy_routes=routes)
    for path in paths:
        expected = scanned_route(registry.proxy_routes, path)
        got = registry.match_route(path)
        if expected is None:
            assert got is None
        else:
            assert isinstance(got, RouteTarget) and got.host == expected.host
        assert match_route(registry.proxy_routes, path) == got


@pytest.mark.parametrize(
    ("path", "prefixes"),
    [
        ("/", ["/"]),
        ("/a", ["/a"]),
        ("/a/b/c", ["/a/b/c", "/a/b", "/a"]),
        ("/a/", ["/a/", "/a"]),
        ("/a//b", ["/a//b", "/a/", "/a"]),
    ],
)
def test_path_prefixes(path: str, prefixes: list[str]) -> None:
    assert path_prefixes(path) == prefixes
    for candidate in {path[:k] for k in range(1, len(path) + 1)}:
        covers = path == candidate or path.startswith(candidate + "/")
        assert (candidate in prefixes) == covers or candidate == "/"


# -- field selection -------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "0", "1", "email"])
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.integers(-2, 2), st.sampled_from(["", " ", "x", "a@b.co"])),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        # objects as the decoder makes them: (key, value) pairs, duplicates possible
        st.lists(st.tuples(KEYS, children), max_size=3).map(tuple),
    ),
    max_leaves=12,
)
FIELD_PATHS = st.sampled_from(
    ["a", "a.b", "a[*]", "a[*].b", "a[*].0", "a.0.b", "a[0]", "a[*][*].email", "b[*].email",
     "a[1].b", "0", "a[*].b[*]"]
)  # fmt: skip


@SETTINGS
@given(root=JSON_VALUES, path=FIELD_PATHS, limit=st.sampled_from([None, 0, 1, 2, 5]))
def test_select_values_selects_what_select_selects(
    root: object, path: str, limit: int | None
) -> None:
    field_path = parse_field_path(path)
    located = select(root, field_path, limit=limit)
    values = select_values(root, field_path.segments, limit=limit)
    assert [v for _, v in values.matches] == [v for _, v in located.matches]
    assert (values.duplicate_key, values.lists, values.truncated) == (
        located.duplicate_key,
        located.lists,
        located.truncated,
    )


def records_by_select(
    root: object, path: str, limit: int | None
) -> tuple[list[object], str | None]:
    """Record values through one `select` per record (before the per-key shortcut)."""
    split = path.rindex("[*]") + 3
    records = select(root, parse_field_path(path[:split]), limit=limit)
    values: list[object] = []
    for _, record in records.matches:
        inner = select(record, parse_field_path(path[split + 1 :]), limit=limit)
        if inner.truncated:
            return [], "too many"
        if inner.duplicate_key is not None:
            return [], "duplicate"
        values.append(inner.matches[0][1] if inner.matches else None)
    return values, None


@SETTINGS
@given(root=JSON_VALUES, path=st.sampled_from(["a[*].b", "a[*].0", "b[*].email", "a[*][*].email"]))
def test_record_checks_read_each_record_as_select_does(root: object, path: str) -> None:
    check = RecordCheck(parse_field_path(path), 0.5, "block")
    findings = analyze_records(root, (check,), max_records=15_000)
    values, problem = records_by_select(root, path, 15_000)
    records = select(root, parse_field_path(path[: path.rindex("[*]") + 3]), limit=15_000)
    if records.duplicate_key is not None or records.lists == 0:
        assert [f.type for f in findings] == ["record.unchecked"]
    elif problem is not None:
        assert [f.type for f in findings] == ["record.unchecked"]
        assert "duplicate" in findings[0].detail
    else:
        empty = sum(1 for v in values if v is None or v == "" or v == " " or v in ([], ()))
        failed = bool(values) and empty / len(values) > 0.5
        assert [f.type for f in findings] == (["record.empty_ratio"] if failed else [])


# -- the shell analyzer's prefilter ----------------------------------------------------------------

SHELL_TEXT = st.lists(
    st.sampled_from([*"ab -$`<>;|&%\\(){}\n\r_x0u2Fc", "%3B", "\\x3b", "%25", "%u003b"]),
    max_size=10,
).map("".join)


@SETTINGS
@given(value=SHELL_TEXT)
def test_the_shell_prefilter_skips_only_values_without_findings(value: str) -> None:
    assert shell.analyze_shell(value, "$.f") == shell.check_every_form(value, "$.f")


# -- the PII scanner reads "ssn"/"social" only when it could matter --------------------------------


def scan_reading_the_flag_first(data: bytes) -> list[Any]:
    """detect._scan as it was: the "ssn"/"social" flag read before anything else."""
    found: list[Any] = []
    shape = data.translate(detect.NUMBER_SHAPE)
    iban_regions = []
    lowered = data.lower()
    ssn_keys = b"ssn" in lowered or b"social" in lowered
    for start, end in detect._number_windows(shape):
        found.extend(detect._number_matches(data, shape, start, end, ssn_keys))
        low, high = max(0, start - 36), min(len(data), end + 36)
        if shape.count(b"9", low, high) >= 10:
            iban_regions.append((low, high))
    for low, high in detect._merged(iban_regions):
        found.extend(detect._iban_matches(data, low, high))
    emails = len(found)
    found.extend(detect._email_matches(data, True))
    if len(found) == emails:
        found.extend(detect._spelled_email_matches(data, shape))
    word_shape = data.translate(detect._WORD_SHAPE)
    for start, end in detect._merged(detect._word_windows(word_shape)):
        found.extend(detect._secret_matches(data, start, end))
    if len(found) <= 1:
        return found
    found.sort(key=lambda f: (f[1], _PRECEDENCE[f[0]], -f[2]))
    kept: list[Any] = []
    for item in found:
        if kept and item[1] < kept[-1][2]:
            continue
        kept.append(item)
    return kept


PII_TEXT = st.lists(
    st.sampled_from(
        ["ssn: ", "Social ", "123456789", "123-45-6789", " ", '"ssn": ', "4111 1111 1111 1111",
         "x", "555 123 4567", "a@b.co", "SSN=", "987654321"]
    ),
    max_size=8,
).map("".join)  # fmt: skip


@SETTINGS
@given(text=PII_TEXT)
def test_the_ssn_flag_read_late_finds_the_same(text: str) -> None:
    data = text.encode()
    assert detect._scan(data, first_only=True) == scan_reading_the_flag_first(data)


# -- decisions: analysis ahead == analysis in the call; decide() == evaluate() --------------------

POLICY_PARTS = [
    "destinations: [d.send, d.other]\n",
    "allowed_types: [json]\n",
    'block_if_terms: ["wire transfer", "sue"]\n',
    "field_checks:\n  - {path: amount, max: 100}\n",
    "block_if_pii: [card]\n",
    "require_approval_if_pii: [email]\n",
    "require_approval_if_template_error: true\n",
    "shell_check_fields: [name]\n",
    "path_check_fields: [file]\n",
    "record_checks:\n  - {path: 'rows[*].email', max_empty_ratio: 0.5, on_fail: block}\n",
    "rate_limits: {per_agent_per_hour: 5}\n",
    "dedupe_window_seconds: 60\n",
    "budgets:\n  per_agent: {hourly_max_value_usd: 100}\n  value_path: amount\n",
    "auto_approve_under: 3\n",
    "require_approval: always\n",
    "environments:\n  production: {auto_approve_under: 1, require_approval_over: 1}\n",
]
TEXTS = ["hello", "wire transfer now", "s u e", "Hi {{name}}", "4111 1111 1111 1111"]
ROW = st.fixed_dictionaries({}, optional={"email": st.sampled_from(["", "a@b.co"])})
BODY_PARTS = {
    "amount": st.sampled_from([5, 150, "7", -1]),
    "text": st.sampled_from(TEXTS),
    "to": st.sampled_from(["a@b.co", "nobody"]),
    "name": st.sampled_from(["report", "a;b", "-x"]),
    "file": st.sampled_from(["a.txt", "../etc/passwd"]),
    "rows": st.lists(ROW, max_size=3),
}


@settings(max_examples=250, derandomize=True, database=None, deadline=None)
@given(
    parts=st.lists(st.sampled_from(POLICY_PARTS), unique=True, max_size=8),
    body=st.fixed_dictionaries({}, optional=BODY_PARTS),
    destination=st.sampled_from(["d.send", "d.nope"]),
    environment=st.sampled_from([None, "production"]),
    record_count=st.sampled_from([None, 1, 4]),
    last_hour=st.sampled_from([None, 0, 9]),
    spent=st.sampled_from([None, (0.0, 0.0, 0.0, 0.0), (99.0, 99.0, 0.0, 0.0)]),
    duplicate=st.booleans(),
)
def test_a_decision_is_the_same_with_the_analysis_ahead(
    parts: list[str],
    body: dict[str, Any],
    destination: str,
    environment: str | None,
    record_count: int | None,
    last_hour: int | None,
    spent: tuple[float, float, float, float] | None,
    duplicate: bool,
) -> None:
    policy = parse_policy("id: p\n" + "".join(parts), "p.yaml")
    facts = IntentFacts(
        destination=destination,
        payload=json.dumps(body),
        record_count=record_count,
        estimated_value_usd=12.0,
        environment=environment,
    )
    earlier = Intent(id="int_earlier", agent_id="a", agent_name="a", source="api",
                     destination=destination, policy="p", status="approved", risk_score=0.0,
                     risk_level="low", created_at="2026-01-01T00:00:00.000Z")  # fmt: skip
    counts = Counts(
        last_hour=last_hour,
        last_day=None if last_hour is None else last_hour + 1,
        spent=spent,
        duplicate_of=earlier if duplicate else None,
    )
    request = DescribedRequest(destination, "p", facts, source="proxy")
    scope = AgentScope()
    in_call = decide(request, policy, scope, counts)
    ahead = decide(request, policy, scope, counts, analyze_intent(policy, facts))
    assert ahead == in_call
    # The decider and the policy alone agree on everything the policy decides.
    effective = policy.for_environment(environment)
    windowed = effective.dedupe_window_seconds is not None
    decision = evaluate(
        policy,
        facts,
        None if last_hour is None else RateCounts(last_hour, last_hour + 1),
        Counters(
            *(spent or (None, None, None, None)),
            duplicate_within_window=duplicate if windowed else None,
            duplicate_of="int_earlier" if duplicate else None,
        ),
    )
    assert (decision.status, decision.reason_code, decision.rule) == (
        in_call.status,
        in_call.reason_code,
        in_call.rule,
    )
    assert (decision.risk_score, decision.tags, decision.findings, decision.value_usd) == (
        in_call.risk_score,
        in_call.tags,
        in_call.findings,
        in_call.value_usd,
    )
    assert decision.block_reason == in_call.message


def test_every_character_a_shell_check_finds_is_prefiltered() -> None:
    """Every character a shell check looks for is one the prefilter looks for."""
    for char in string.printable:
        findings = shell.check_every_form(f"a{char}b", "$.f")
        if findings:
            assert shell._RELEVANT.search(char) or char == "-", repr(char)


def test_decoded_json_is_what_the_selection_sees() -> None:
    parsed = decode_json('{"a": [{"b": 1}, {"b": 2, "b": 3}]}')
    selection = select_values(parsed, parse_field_path("a[*].b").segments)
    assert [v for _, v in selection.matches] == [1, 2, 3]
    assert selection.duplicate_key == "b"
