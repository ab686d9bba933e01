import json
from pathlib import Path
from textwrap import dedent

import pytest
from test_urlnorm import ADMIN_SPELLINGS, REFUND_SPELLINGS, REFUSED_SPELLINGS

from gate_proxy.core.body import count_records
from gate_proxy.core.registry import (
    REASON_BLOCKED,
    REASON_INVALID_HOST,
    REASON_INVALID_PATH,
    REASON_UNKNOWN,
    Registry,
    RegistryError,
    RouteTarget,
    build_registry,
)
from gate_proxy.core.terms import decode_json
from gate_proxy.loaders.registry_file import load_registry, parse_registry_text

ROOT = Path(__file__).resolve().parents[1]


def reg(text: str) -> Registry:
    return parse_registry_text(dedent(text), source="test.yaml")


def dest(r: Registry, host: str, method: str, path: str, port: int | None = 443) -> str | None:
    """The decision as one string: 'BLOCK:<reason>', 'PASS' or the destination."""
    m = r.match(host, port, method, path)
    if m.blocked:
        return f"BLOCK:{m.reason_code}"
    if m.passthrough:
        return "PASS"
    return m.destination


STRIPE = reg(
    """
    api.stripe.com:
      paths:
        /v1/refunds:
          method: POST
          destination: stripe.refund
          policy: finance-high-risk
    """
)


# --------------------------------------------------------------------- normalisation bypasses


@pytest.mark.parametrize("raw", REFUND_SPELLINGS)
def test_every_normalisation_bypass_hits_the_refund_rule(raw: str) -> None:
    assert dest(STRIPE, "api.stripe.com", "POST", raw) == "stripe.refund"


@pytest.mark.parametrize(
    "raw",
    [
        "/v1/refunds/re_123",
        "/v1/refunds/",
        "/v1/refunds?limit=1",
        "/v1/refunds#x",
        "/v1/refunds/re_1/../re_2",
        "/v1/refunds;jsessionid=1/re_123",
    ],
)
def test_refund_rule_is_a_segment_prefix(raw: str) -> None:
    assert dest(STRIPE, "api.stripe.com", "POST", raw) == "stripe.refund"


@pytest.mark.parametrize(
    "raw",
    [
        "/v1/refundsX",
        "/v1/refund",
        "/v1/Refunds",
        "/v1%2Frefunds",
        "/v1/refunds/../charges",
        "/v2/refunds",
        "/",
    ],
)
def test_refund_rule_does_not_over_match(raw: str) -> None:
    assert dest(STRIPE, "api.stripe.com", "POST", raw) == f"BLOCK:{REASON_UNKNOWN}"


@pytest.mark.parametrize(
    "host", ["api.stripe.com", "API.STRIPE.COM", "api.stripe.com.", "Api.Stripe.Com."]
)
def test_host_spellings(host: str) -> None:
    assert dest(STRIPE, host, "post", "/v1/refunds") == "stripe.refund"


# --------------------------------------------------------------------- hosts, ports, methods

HOSTS = reg(
    """
    "*.zendesk.com":
      destination: zendesk.other
      policy: p
      paths:
        /api/v2/tickets/*:
          method: PUT
          destination: zendesk.reply
          policy: support-reply
    "*.eu.zendesk.com":
      destination: zendesk.eu
      policy: p
    vip.zendesk.com:
      destination: zendesk.vip
      policy: p
    api.local:
      destination: local.any
      policy: p
    api.local:8443:
      destination: local.8443
      policy: p
    "[::1]:9000":
      destination: v6.9000
      policy: p
    10.0.0.5:
      destination: ten
      policy: p
    "b\u00fccher.example":
      destination: idn
      policy: p
    """
)


@pytest.mark.parametrize(
    ("host", "port", "method", "path", "expected"),
    [
        ("acme.zendesk.com", 443, "PUT", "/api/v2/tickets/123", "zendesk.reply"),
        ("acme.zendesk.com", 443, "put", "/api/v2/tickets/123.json", "zendesk.reply"),
        ("ACME.Zendesk.com.", 443, "PUT", "/api/v2/tickets/123", "zendesk.reply"),
        ("a.b.zendesk.com", 443, "PUT", "/api/v2/tickets/123", "zendesk.reply"),
        ("acme.zendesk.com", 443, "POST", "/api/v2/tickets/123", "zendesk.other"),
        ("acme.zendesk.com", 443, "PUT", "/api/v2/tickets", "zendesk.other"),
        ("acme.zendesk.com", 443, "PUT", "/api/v2/tickets/1/comments", "zendesk.other"),
        ("zendesk.com", 443, "PUT", "/api/v2/tickets/123", f"BLOCK:{REASON_UNKNOWN}"),
        ("evilzendesk.com", 443, "PUT", "/api/v2/tickets/123", f"BLOCK:{REASON_UNKNOWN}"),
        ("acme.zendesk.com.evil.com", 443, "PUT", "/", f"BLOCK:{REASON_UNKNOWN}"),
        # exact host beats wildcard, even a wildcard with a more specific path
        ("vip.zendesk.com", 443, "PUT", "/api/v2/tickets/123", "zendesk.vip"),
        # longer wildcard suffix beats shorter
        ("acme.eu.zendesk.com", 443, "GET", "/", "zendesk.eu"),
        ("acme.eu.zendesk.com", 443, "PUT", "/api/v2/tickets/1", "zendesk.eu"),
        # ports
        ("api.local", 8443, "GET", "/", "local.8443"),
        ("api.local", 443, "GET", "/", "local.any"),
        ("api.local", 80, "GET", "/", "local.any"),
        ("::1", 9000, "GET", "/", "v6.9000"),
        ("[::1]", 9000, "GET", "/", "v6.9000"),
        ("::1", 9001, "GET", "/", f"BLOCK:{REASON_UNKNOWN}"),
        # IPv4 spellings resolve to the same address
        ("10.5", 443, "GET", "/", "ten"),
        ("0xa.0.0.5", 443, "GET", "/", "ten"),
        ("167772165", 443, "GET", "/", "ten"),
        # IDNA
        ("xn--bcher-kva.example", 443, "GET", "/", "idn"),
        ("B\u00dcCHER.example", 443, "GET", "/", "idn"),
        # garbage host
        ("a/b@c", 443, "GET", "/", f"BLOCK:{REASON_INVALID_HOST}"),
    ],
)
def test_host_port_method_matching(host, port, method, path, expected) -> None:
    assert dest(HOSTS, host, method, path, port) == expected


def test_port_none_only_matches_portless_entries() -> None:
    assert dest(HOSTS, "api.local", "GET", "/", None) == "local.any"


METHODS = reg(
    """
    api.x.com:
      destination: x.any
      policy: p
      paths:
        /items:
          - method: [post, PUT]
            destination: x.write
          - method: DELETE
            destination: x.delete
          - destination: x.items-any
        /items/*:
          method: GET
          destination: x.item-get
    """
)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/items", "x.write"),
        ("put", "/items", "x.write"),
        ("DELETE", "/items", "x.delete"),
        ("GET", "/items", "x.items-any"),
        ("PATCH", "/items/1", "x.items-any"),
        ("GET", "/items/1", "x.item-get"),
        ("GET", "/other", "x.any"),
    ],
)
def test_method_matching_and_specificity(method: str, path: str, expected: str) -> None:
    assert dest(METHODS, "api.x.com", method, path) == expected


def test_method_policy_is_inherited_from_host() -> None:
    m = METHODS.match("api.x.com", 443, "POST", "/items")
    assert m.policy == "p"
    assert m.route is not None and m.route.methods == frozenset({"POST", "PUT"})


# --------------------------------------------------------------------- paths and specificity

PATHS = reg(
    """
    api.x.com:
      paths:
        /v1:
          destination: v1
          policy: p
        /v1/users:
          destination: users
          policy: p
        /v1/users/*:
          destination: user-one
          policy: p
        /v1/users/*/posts/**:
          destination: user-posts
          policy: p
        /files/*.json:
          destination: json-file
          policy: p
        /files/**:
          destination: files
          policy: p
        /tie:
          destination: first
          policy: p
        /tie/:
          method: GET
          destination: tie-get
          policy: p
    """
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1", "v1"),
        ("/v1/other", "v1"),
        ("/v1/users", "users"),
        ("/v1/users/", "users"),
        ("/v1/users/42", "user-one"),
        ("/v1/users/42/", "user-one"),
        ("/v1/users/42/settings", "users"),
        ("/v1/users/42/posts", "user-posts"),
        ("/v1/users/42/posts/1/comments", "user-posts"),
        ("/files/a.json", "json-file"),
        ("/files/a.xml", "files"),
        ("/files/dir/a.json", "files"),
        ("/files", "files"),
        ("/tie/x", "first"),
        ("/nothing", f"BLOCK:{REASON_UNKNOWN}"),
    ],
)
def test_most_specific_path_wins(path: str, expected: str) -> None:
    assert dest(PATHS, "api.x.com", "POST", path) == expected


def test_method_specific_beats_any_for_same_path() -> None:
    assert dest(PATHS, "api.x.com", "GET", "/tie") == "tie-get"


def test_ties_go_to_first_in_file() -> None:
    r = reg(
        """
        "*.a.com":
          destination: wild-first
          policy: p
        "*.a.com:443":
          destination: wild-port
          policy: p
        x.a.com:
          paths:
            /p/*:
              destination: glob-first
              policy: p
            /*/1:
              destination: glob-second
              policy: p
        """
    )
    # Same host pattern/port class and same path rank: first written wins.
    assert (r.routes[2].path, r.routes[3].path) == ("/p/*", "/*/1")
    assert dest(r, "x.a.com", "GET", "/p/1") == "glob-first"
    assert dest(r, "x.a.com", "GET", "/q/1") == "glob-second"
    # Explicit port beats any port within the same host pattern.
    assert dest(r, "y.a.com", "GET", "/") == "wild-port"
    assert dest(r, "y.a.com", "GET", "/", port=80) == "wild-first"


def test_path_case() -> None:
    r = reg(
        """
        path_case: insensitive
        api.x.com:
          paths:
            /V1/Refunds:
              destination: refunds
              policy: p
            /Exact:
              path_case: sensitive
              destination: exact
              policy: p
        api.y.com:
          path_case: sensitive
          paths:
            /Y:
              destination: y
              policy: p
        """
    )
    assert dest(r, "api.x.com", "POST", "/v1/REFUNDS/x") == "refunds"
    assert dest(r, "api.x.com", "POST", "/V1/refunds") == "refunds"
    assert dest(r, "api.x.com", "POST", "/Exact") == "exact"
    assert dest(r, "api.x.com", "POST", "/exact") == f"BLOCK:{REASON_UNKNOWN}"
    assert dest(r, "api.y.com", "POST", "/Y") == "y"
    assert dest(r, "api.y.com", "POST", "/y") == f"BLOCK:{REASON_UNKNOWN}"
    assert r.match("api.x.com", 443, "POST", "/v1/refunds").path_case == "insensitive"


def test_path_case_default_is_sensitive() -> None:
    assert dest(STRIPE, "api.stripe.com", "POST", "/V1/REFUNDS") == f"BLOCK:{REASON_UNKNOWN}"


# --------------------------------------------------------------------- block is sticky

BLOCKS = reg(
    """
    evil.com:
      block: true
      paths:
        /public:
          destination: evil.public
          policy: p
    "*.bad.com":
      block: true
    ok.bad.com:
      destination: ok
      policy: p
    bad.local:
      block: true
    bad.local:8443:
      passthrough: true
    api.x.com:
      destination: x.any
      policy: p
      paths:
        /admin:
          block: true
        /admin/public:
          destination: x.admin-public
          policy: p
        /items:
          - method: DELETE
            block: true
          - destination: x.items
    """
)


@pytest.mark.parametrize(
    ("host", "port", "method", "path", "expected"),
    [
        ("evil.com", 443, "GET", "/", f"BLOCK:{REASON_BLOCKED}"),
        ("evil.com", 443, "POST", "/public", f"BLOCK:{REASON_BLOCKED}"),
        ("evil.com", 443, "POST", "/public/x", f"BLOCK:{REASON_BLOCKED}"),
        ("x.bad.com", 443, "GET", "/", f"BLOCK:{REASON_BLOCKED}"),
        ("ok.bad.com", 443, "GET", "/", f"BLOCK:{REASON_BLOCKED}"),  # wildcard block wins
        ("bad.local", 8443, "GET", "/", f"BLOCK:{REASON_BLOCKED}"),  # any-port block wins
        ("api.x.com", 443, "GET", "/admin", f"BLOCK:{REASON_BLOCKED}"),
        ("api.x.com", 443, "GET", "/admin/public", f"BLOCK:{REASON_BLOCKED}"),
        ("api.x.com", 443, "GET", "/%61dmin/public", f"BLOCK:{REASON_BLOCKED}"),
        ("api.x.com", 443, "GET", "/x/../admin", f"BLOCK:{REASON_BLOCKED}"),
        ("api.x.com", 443, "DELETE", "/items", f"BLOCK:{REASON_BLOCKED}"),
        ("api.x.com", 443, "POST", "/items", "x.items"),
        ("api.x.com", 443, "GET", "/adminx", "x.any"),
    ],
)
def test_block_cannot_be_overridden_by_a_more_specific_entry(
    host, port, method, path, expected
) -> None:
    assert dest(BLOCKS, host, method, path, port) == expected


def test_block_match_names_the_blocking_entry() -> None:
    m = BLOCKS.match("evil.com", 443, "POST", "/public")
    assert m.blocked and not m.passthrough
    assert m.route is not None and m.route.block and m.route.field == 'evil.com.paths["/public"]'
    m = BLOCKS.match("ok.bad.com", 443, "GET", "/")
    assert m.route is not None and m.route.host == "*.bad.com"


# ----------------------------------------------------------- blocks hold for every spelling

# Everything that is not blocked passes through, so a block that misses a spelling shows.
ADMIN = reg(
    """
    api.x.com:
      paths:
        /admin:
          block: true
        /api/*/delete:
          block: true
        /:
          passthrough: true
    allow.x.com:
      paths:
        /read:
          passthrough: true
        /Public:
          destination: x.public
          policy: p
    sensitive.x.com:
      paths:
        /Admin:
          block: true
          path_case: sensitive
        /:
          passthrough: true
    host-sensitive.x.com:
      path_case: sensitive
      paths:
        /Admin:
          block: true
        /:
          passthrough: true
    """
)


@pytest.mark.parametrize(("raw", "why"), ADMIN_SPELLINGS)
def test_block_holds_for_every_spelling_of_the_path(raw: str, why: str) -> None:
    assert dest(ADMIN, "api.x.com", "GET", raw) == f"BLOCK:{REASON_BLOCKED}", why


@pytest.mark.parametrize(
    "raw",
    [
        "/api/v1/delete",
        "/API/V1/DELETE",
        "/api/v1/Delete.",
        "/api/v1/delete;x=1",
        "/api/v1%2Fx/delete",  # one segment for servers that keep %2F encoded
        "/api/v1%5Cx/delete",
        "/api/%EF%BD%96%EF%BC%91/%EF%BC%A4ELETE",  # fullwidth
    ],
)
def test_glob_block_holds_for_every_spelling(raw: str) -> None:
    assert dest(ADMIN, "api.x.com", "POST", raw) == f"BLOCK:{REASON_BLOCKED}"


@pytest.mark.parametrize(
    "raw",
    [
        "/adminx",
        "/administrator",
        "/x/admin",
        "/ad/min",
        "/admin-panel",
        "/%C3%A0dminx",
        "/api/v1/deleted",
        "/api/delete",
        "/",
    ],
)
def test_block_does_not_over_match(raw: str) -> None:
    assert dest(ADMIN, "api.x.com", "GET", raw) == "PASS"


@pytest.mark.parametrize(("raw", "problem"), REFUSED_SPELLINGS)
def test_ambiguous_paths_are_refused(raw: str, problem: str) -> None:
    m = ADMIN.match("api.x.com", 443, "GET", raw)
    assert (m.blocked, m.reason_code) == (True, REASON_INVALID_PATH)
    assert m.refusal is not None and problem in m.refusal


def test_ambiguous_paths_are_refused_even_where_everything_passes() -> None:
    r = reg("any.com:\n  passthrough: true\n")
    assert dest(r, "any.com", "GET", "/x/..%2Fy") == f"BLOCK:{REASON_INVALID_PATH}"
    assert dest(r, "any.com", "GET", "/x/y") == "PASS"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/read", "PASS"),
        ("/read/x", "PASS"),
        ("/%72ead", "PASS"),  # the same bytes by RFC 3986: %72 is "r"
        ("/read;x=1", "PASS"),
        ("/READ", f"BLOCK:{REASON_UNKNOWN}"),
        ("/Read/x", f"BLOCK:{REASON_UNKNOWN}"),
        ("/read.", f"BLOCK:{REASON_UNKNOWN}"),
        ("/read%20", f"BLOCK:{REASON_UNKNOWN}"),
        ("/%EF%BD%92ead", f"BLOCK:{REASON_UNKNOWN}"),  # fullwidth r
        ("/re%C3%A0d", f"BLOCK:{REASON_UNKNOWN}"),
        ("/read%2Fx", f"BLOCK:{REASON_UNKNOWN}"),
        ("/Public", "x.public"),
        ("/public", f"BLOCK:{REASON_UNKNOWN}"),
        ("/PUBLIC", f"BLOCK:{REASON_UNKNOWN}"),
    ],
)
def test_allow_rules_stay_strict(raw: str, expected: str) -> None:
    assert dest(ADMIN, "allow.x.com", "GET", raw) == expected


@pytest.mark.parametrize("host", ["sensitive.x.com", "host-sensitive.x.com"])
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/Admin", f"BLOCK:{REASON_BLOCKED}"),
        ("/Admin/x", f"BLOCK:{REASON_BLOCKED}"),
        ("/%41dmin", f"BLOCK:{REASON_BLOCKED}"),
        ("/Admin.", f"BLOCK:{REASON_BLOCKED}"),  # the other folds still apply
        ("/Admin;x=1", f"BLOCK:{REASON_BLOCKED}"),
        ("/x%2FAdmin", "PASS"),
        ("/%2FAdmin", f"BLOCK:{REASON_BLOCKED}"),
        ("/%EF%BC%A1dmin", f"BLOCK:{REASON_BLOCKED}"),  # fullwidth A is still an A
        ("/admin", "PASS"),  # case-sensitive on request
        ("/ADMIN", "PASS"),
    ],
)
def test_block_case_sensitive_only_when_the_entry_says_so(
    host: str, raw: str, expected: str
) -> None:
    assert dest(ADMIN, host, "GET", raw) == expected


def test_top_level_path_case_does_not_make_blocks_case_sensitive() -> None:
    r = reg(
        """
        path_case: sensitive
        api.x.com:
          paths:
            /admin: {block: true}
            /read: {passthrough: true}
        """
    )
    assert dest(r, "api.x.com", "GET", "/ADMIN") == f"BLOCK:{REASON_BLOCKED}"
    assert dest(r, "api.x.com", "GET", "/READ") == f"BLOCK:{REASON_UNKNOWN}"
    assert r.routes[0].path_case == "insensitive"
    assert r.routes[1].path_case == "sensitive"
    assert r.match("api.x.com", 443, "GET", "/Admin").path_case == "insensitive"


def test_block_rule_written_in_another_spelling() -> None:
    r = reg(
        """
        api.x.com:
          paths:
            /ADMIN/: {block: true}
            /files/secret.: {block: true}
            /%EF%BD%90anel: {block: true}
            /: {passthrough: true}
        """
    )
    assert dest(r, "api.x.com", "GET", "/admin") == f"BLOCK:{REASON_BLOCKED}"
    assert dest(r, "api.x.com", "GET", "/files/secret") == f"BLOCK:{REASON_BLOCKED}"
    assert dest(r, "api.x.com", "GET", "/files/SECRET..") == f"BLOCK:{REASON_BLOCKED}"
    assert dest(r, "api.x.com", "GET", "/Panel") == f"BLOCK:{REASON_BLOCKED}"
    assert dest(r, "api.x.com", "GET", "/files/secrets") == "PASS"


@pytest.mark.parametrize(
    ("host", "port", "method", "path", "expected"),
    [
        ("acme.w.com", 443, "GET", "/ADMIN", f"BLOCK:{REASON_BLOCKED}"),
        ("A.B.W.COM", 80, "GET", "/%41dmin.", f"BLOCK:{REASON_BLOCKED}"),
        ("w.com", 443, "GET", "/ADMIN", f"BLOCK:{REASON_UNKNOWN}"),  # not under *.w.com
        ("acme.w.com", 443, "GET", "/other", "PASS"),
        ("p.local", 8443, "DELETE", "/Items/1", f"BLOCK:{REASON_BLOCKED}"),
        ("p.local", 8443, "GET", "/Items/1", "PASS"),  # method-specific block
        ("p.local", 9000, "DELETE", "/Items/1", "PASS"),  # port-specific block
        ("gone.com", 443, "GET", "/ANY/%2Fthing", f"BLOCK:{REASON_BLOCKED}"),
    ],
)
def test_wildcards_ports_and_methods_keep_their_meaning(
    host: str, port: int, method: str, path: str, expected: str
) -> None:
    r = reg(
        """
        "*.w.com":
          passthrough: true
          paths:
            /admin: {block: true}
        p.local:
          passthrough: true
        p.local:8443:
          paths:
            /items:
              - {method: DELETE, block: true}
              - {passthrough: true}
        gone.com:
          block: true
        """
    )
    assert dest(r, host, method, path, port) == expected


@pytest.mark.parametrize(
    ("host", "port", "allow", "reason"),
    [
        ("evil.com", 443, False, REASON_BLOCKED),
        ("ok.bad.com", 443, False, REASON_BLOCKED),
        ("bad.local", 8443, False, REASON_BLOCKED),
        ("api.x.com", 443, True, None),  # only some paths are blocked
        ("unknown.example", 443, False, REASON_UNKNOWN),
        ("not a host", 443, False, REASON_INVALID_HOST),
    ],
)
def test_host_decision(host: str, port: int, allow: bool, reason: str | None) -> None:
    d = BLOCKS.host_decision(host, port)
    assert (d.allow, d.reason_code) == (allow, reason)


def test_host_decision_passthrough_only() -> None:
    r = reg(
        """
        localhost:
          passthrough: true
        api.github.com:
          method: GET
          passthrough: true
        mixed.com:
          passthrough: true
          paths:
            /write:
              destination: mixed.write
              policy: p
        """
    )
    assert r.host_decision("localhost", 3000).passthrough_only is True
    assert r.host_decision("localhost", 3000).known is True
    # Only GET passes; other methods fall to default block, so interception is needed.
    d = r.host_decision("api.github.com", 443)
    assert (d.allow, d.passthrough_only) == (True, False)
    assert r.host_decision("mixed.com", 443).passthrough_only is False


def test_passthrough_on_blocked_host_is_a_load_error() -> None:
    with pytest.raises(RegistryError, match="passthrough is not allowed on a blocked entry"):
        reg(
            """
            evil.com:
              block: true
              paths:
                /x:
                  passthrough: true
            """
        )


# --------------------------------------------------------------------- defaults


def test_unknown_host_is_blocked_by_default() -> None:
    m = STRIPE.match("unknown.example", 443, "POST", "/v1/refunds")
    assert m.blocked and m.reason_code == REASON_UNKNOWN and not m.known and m.route is None
    assert STRIPE.default.action == "block"


def test_empty_default_block() -> None:
    r = Registry.empty_default_block()
    assert len(r) == 0
    assert dest(r, "api.stripe.com", "POST", "/v1/refunds") == f"BLOCK:{REASON_UNKNOWN}"
    d = r.host_decision("api.stripe.com", 443)
    assert (d.allow, d.known, d.reason_code) == (False, False, REASON_UNKNOWN)
    assert r.match_route("/stripe/x") is None


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file_is_default_block(text: str) -> None:
    r = reg(text)
    assert dest(r, "a.com", "GET", "/") == f"BLOCK:{REASON_UNKNOWN}"


def test_default_passthrough() -> None:
    r = reg("default: {action: passthrough}\n")
    assert dest(r, "a.com", "GET", "/") == "PASS"
    assert r.host_decision("a.com", 443).passthrough_only is True
    assert r.match("a.com", 443, "GET", "/").known is False


def test_default_evaluate_with_host_template() -> None:
    r = reg(
        """
        default:
          action: evaluate
          policy: crm-low-risk
          require_approval: true
        api.x.com:
          paths:
            /only:
              destination: x.only
              policy: p
        """
    )
    m = r.match("API.Unknown.com", 443, "POST", "/")
    assert (m.blocked, m.destination, m.policy, m.require_approval, m.known) == (
        False,
        "api.unknown.com.http",
        "crm-low-risk",
        True,
        False,
    )
    # A known host whose entries do not match the request also falls to the default.
    assert r.match("api.x.com", 443, "POST", "/other").destination == "api.x.com.http"
    assert r.host_decision("api.unknown.com", 443).allow is True


def test_default_evaluate_custom_destination() -> None:
    r = reg('default: {action: evaluate, destination: "ext.{host}", policy: p}\n')
    assert dest(r, "a.com", "GET", "/") == "ext.a.com"


# --------------------------------------------------------------------- record counts


@pytest.mark.parametrize(
    ("body", "spec", "expected"),
    [
        ({"inputs": [{}, {}, {}]}, "inputs.length", 3),
        ({"inputs": []}, "inputs.length", 0),
        ({"records": 7}, "records", 7),
        ({"records": 7.0}, "records", 7),
        ({"a": {"b": [1, 2]}}, "a.b.length", 2),
        ({"data": [{"items": [1, 2, 3, 4]}]}, "data.0.items.length", 4),
        ([1, 2], "length", 2),
        ({"personalizations": [{"to": []}]}, "personalizations.length", 1),
        ({"inputs": "abc"}, "inputs.length", None),
        ({"inputs": {"length": 5}}, "inputs.length", 5),
        ({"records": True}, "records", None),
        ({"records": -1}, "records", None),
        ({"records": 1.5}, "records", None),
        ({"records": "7"}, "records", None),
        ({}, "inputs.length", None),
        ({"data": []}, "data.0.length", None),
        (None, "inputs.length", None),
        ("not json object", "inputs.length", None),
        ({"inputs": [1]}, "", None),
    ],
)
def test_extract_records_paths_count_like_the_proxy(body, spec, expected) -> None:
    # The proxy counts an entry's extract_records path with core.body.count_records.
    assert count_records(decode_json(json.dumps(body)), spec).count == expected


# --------------------------------------------------------------------- reverse-proxy routes

ROUTES = reg(
    """
    routes:
      - prefix: /stripe/
        upstream: https://api.stripe.com/
      - prefix: /stripe/connect
        target: https://connect.stripe.com:8443/base/
      - prefix: /sfdc
        upstream: http://Login.Salesforce.COM/services
    """
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/stripe/v1/refunds", ("https", "api.stripe.com", 443, "/v1/refunds")),
        ("/stripe/v1/refunds?a=1&b=2", ("https", "api.stripe.com", 443, "/v1/refunds?a=1&b=2")),
        ("/stripe", ("https", "api.stripe.com", 443, "/")),
        ("/stripe/", ("https", "api.stripe.com", 443, "/")),
        ("//stripe/./v1/%72efunds", ("https", "api.stripe.com", 443, "/v1/refunds")),
        ("/stripe;x=1/v1/refunds;y=2", ("https", "api.stripe.com", 443, "/v1/refunds;y=2")),
        ("/stripe/connect/x", ("https", "connect.stripe.com", 8443, "/base/x")),
        ("/stripe/connectx", ("https", "api.stripe.com", 443, "/connectx")),
        ("/sfdc/data", ("http", "login.salesforce.com", 80, "/services/data")),
        ("/sfdc", ("http", "login.salesforce.com", 80, "/services")),
        ("/stripex/v1", None),
        ("/stripe/../admin", None),
        ("/other", None),
    ],
)
def test_match_route(path: str, expected: tuple | None) -> None:
    got = ROUTES.match_route(path)
    assert got == (RouteTarget(*expected) if expected else None)


def test_root_route_catches_everything() -> None:
    r = reg("routes: [{prefix: /, upstream: 'https://up.example'}]\n")
    assert r.match_route("/a/b?x") == ("https", "up.example", 443, "/a/b?x")
    assert r.match_route("/") == ("https", "up.example", 443, "/")


# --------------------------------------------------------------------- shipped files


def test_zehrava_format_file_loads_unchanged() -> None:
    r = load_registry(ROOT / "tests/data/zehrava_destinations.yaml")
    stripe = "api.stripe.com"
    m = r.match(stripe, 443, "POST", "/v1/refunds")
    assert (m.destination, m.policy, m.require_approval) == (
        "stripe.refund",
        "finance-high-risk",
        True,
    )
    m = r.match(stripe, 443, "POST", "/v1/charges/ch_1")
    assert (m.destination, m.require_approval) == ("stripe.charge", False)
    assert dest(r, stripe, "POST", "/v1/payouts") == "stripe.payout"
    assert dest(r, stripe, "POST", "/v1/customers") == "stripe.api"
    m = r.match("api.sendgrid.com", 443, "POST", "/v3/mail/send")
    assert (m.destination, m.policy, m.extract_records) == (
        "sendgrid.send",
        "outbound-email",
        "personalizations.length",
    )
    assert r.match("hooks.slack.com", 443, "POST", "/x").require_approval is False  # never
    assert dest(r, "localhost", "GET", "/v1/intents", port=3001) == "PASS"
    assert dest(r, "127.0.0.1", "POST", "/", port=3001) == "PASS"
    m = r.match("unknown.example", 443, "POST", "/")
    assert (m.blocked, m.destination, m.policy, m.known) == (
        False,
        "unknown.outbound",
        "crm-low-risk",
        False,
    )


def test_zehrava_default_block_true() -> None:
    r = reg("__default__:\n  block: true\n")
    assert dest(r, "a.com", "GET", "/") == f"BLOCK:{REASON_UNKNOWN}"


def test_shipped_example_config() -> None:
    r = load_registry(ROOT / "config/destinations.yaml")
    m = r.match("api.stripe.com", 443, "POST", "/v1/refunds")
    assert (m.destination, m.policy) == ("stripe.refund", "finance-high-risk")
    m = r.match("api.sendgrid.com", 443, "POST", "/v3/mail/send")
    assert (m.destination, m.policy) == ("sendgrid.send", "schema-checked-email")
    m = r.match("api.hubapi.com", 443, "POST", "/crm/v3/objects/contacts/batch/create")
    assert (m.destination, m.policy, m.extract_records) == (
        "hubspot.contacts",
        "crm-low-risk",
        "inputs.length",
    )
    assert count_records(decode_json('{"inputs": [{}, {}]}'), m.extract_records).count == 2
    m = r.match("acme.zendesk.com", 443, "PUT", "/api/v2/tickets/42.json")
    assert (m.destination, m.policy) == ("zendesk.reply", "support-reply")
    assert dest(r, "api.github.com", "GET", "/repos/a/b") == "PASS"
    assert dest(r, "api.github.com", "POST", "/repos/a/b/issues") == f"BLOCK:{REASON_UNKNOWN}"
    assert dest(r, "pastebin.com", "GET", "/") == f"BLOCK:{REASON_BLOCKED}"
    assert r.host_decision("pastebin.com", 443).allow is False
    # Shipped: agents read freely (pass_reads), unknown writes are blocked.
    assert dest(r, "unknown.example", "GET", "/") == "PASS"
    assert dest(r, "unknown.example", "POST", "/") == f"BLOCK:{REASON_UNKNOWN}"
    assert r.host_decision("unknown.example", 443).allow is True
    assert r.match_route("/stripe/v1/refunds") == ("https", "api.stripe.com", 443, "/v1/refunds")


@pytest.mark.parametrize(
    ("method", "expected"),
    [("GET", "PASS"), ("HEAD", "PASS"), ("OPTIONS", "PASS"), ("POST", "BLOCK"), ("PUT", "BLOCK"),
     ("DELETE", "BLOCK"), ("PATCH", "BLOCK"), ("TRACE", "BLOCK")],
)  # fmt: skip
def test_pass_reads_passes_safe_methods_only(method: str, expected: str) -> None:
    r = reg("default:\n  action: block\n  pass_reads: true\n")
    assert dest(r, "unknown.example", method, "/x").startswith(expected)
    plain = reg("default:\n  action: block\n")
    assert dest(plain, "unknown.example", method, "/x").startswith("BLOCK")
    assert plain.host_decision("unknown.example", 443).allow is False


# --------------------------------------------------------------------- loader errors


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        (
            "a.com:\n  destination: d\n  policy: p\n  colour: red\n",
            4,
            "a.com.colour",
            "unknown key 'colour'",
        ),
        (
            "a.com:\n  paths:\n    /x:\n      destination: d\n      polcy: p\n",
            5,
            'a.com.paths["/x"].polcy',
            "unknown key 'polcy'",
        ),
        ("a.com:\n  block: 'yes'\n", 2, "a.com.block", "must be true or false"),
        (
            "a.com:\n  destination: d\n  policy: [p]\n",
            3,
            "a.com.policy",
            "must be a non-empty string",
        ),
        (
            "a.com:\n  destination: d\n  policy: p\n  method: [GET, 'B AD']\n",
            4,
            "a.com.method[1]",
            "invalid HTTP method",
        ),
        (
            "a.com:\n  destination: d\n  policy: p\n  require_approval: sometimes\n",
            4,
            "a.com.require_approval",
            "must be true, false, 'always' or 'never'",
        ),
        (
            "a.com:\n  destination: d\n  policy: p\n  enforce: loud\n",
            4,
            "a.com.enforce",
            "'shadow' or 'enforce'",
        ),
        ("path_case: upper\n", 1, "path_case", "'sensitive' or 'insensitive'"),
        ("a.com:\n  destination: d\n", 1, "a.com", "'policy' is required"),
        (
            "ok.com:\n  passthrough: true\n\na.com:\n  paths:\n    /x:\n      policy: p\n",
            6,
            'a.com.paths["/x"]',
            "'destination' is required",
        ),
        (
            "a.com:\n  block: true\n  passthrough: true\n",
            3,
            "a.com.passthrough",
            "not allowed on a blocked entry",
        ),
        ("a.com:\n  passthrough: true\n  policy: p\n", 3, "a.com.policy", "no effect"),
        (
            "a.com:\n  paths:\n    /x/..%2Fadmin:\n      block: true\n",
            3,
            'a.com.paths["/x/..%2Fadmin"]',
            "ambiguous path rule: dot segment",
        ),
        (
            "a.com:\n  paths:\n    /%20.:\n      block: true\n",
            3,
            'a.com.paths["/%20."]',
            "reads as '/'",
        ),
        (
            "routes:\n  - prefix: /a%00\n    upstream: http://a.com/\n",
            2,
            "routes[0].prefix",
            "ambiguous prefix: control character",
        ),
        ("a.com:\n  policy: p\n", 1, "a.com", "entry has no effect"),
        (
            "a.com:\n  passthrough: true\na.com:\n  block: true\n",
            3,
            "a.com",
            "duplicate key (first at line 1)",
        ),
        ("a/b.com:\n  passthrough: true\n", 1, "a/b.com", "invalid host key"),
        ("a.com:99999:\n  passthrough: true\n", 1, "a.com:99999", "invalid host key"),
        ('"*.0.0.1":\n  block: true\n', 1, "*.0.0.1", "not allowed on IP addresses"),
        (
            "a.com:\n  paths:\n    x:\n      passthrough: true\n",
            3,
            "a.com.paths.x",
            "must start with '/'",
        ),
        (
            "a.com:\n  paths:\n    /a**/b:\n      passthrough: true\n",
            3,
            'a.com.paths["/a**/b"]',
            "'**' must be a whole path segment",
        ),
        (
            "a.com:\n  paths:\n    /x:\n      passthrough: true\n    /%78/:\n      block: true\n",
            5,
            'a.com.paths["/%78/"]',
            "duplicate entry",
        ),
        (
            "a.com:\n  extract_records: 'inputs..length'\n  destination: d\n  policy: p\n",
            2,
            "a.com.extract_records",
            "dot path",
        ),
        ("a.com: [1, 2]\n", 1, "a.com", "must be a mapping"),
        ("- a.com\n", 1, "(document)", "must be a mapping"),
        ("8080:\n  passthrough: true\n", 1, "(document)", "must be strings"),
        ("default:\n  action: allow\n", 2, "default.action", "'block', 'passthrough' or"),
        ("default:\n  action: evaluate\n", 1, "default", "'policy' is required"),
        ("default: {action: block}\n__default__: {block: true}\n", 2, "__default__", "not both"),
        ("__default__:\n  block: false\n  nope: 1\n", 3, "__default__.nope", "unknown key"),
        ("routes:\n  - upstream: https://a.com/\n", 2, "routes[0]", "'prefix' is required"),
        (
            "routes:\n  - prefix: /a\n    upstream: ftp://a.com/\n",
            3,
            "routes[0].upstream",
            "http:// or https://",
        ),
        (
            "routes:\n  - prefix: /a\n    upstream: https://a.com/\n    target: https://b.com/\n",
            2,
            "routes[0]",
            "exactly one of",
        ),
        (
            "routes:\n  - {prefix: /a, upstream: 'https://a.com'}\n  - {prefix: /a/, upstream: "
            "'https://b.com'}\n",
            3,
            "routes[1].prefix",
            "duplicate prefix",
        ),
        (
            "routes:\n  - prefix: a\n    upstream: https://a.com/\n",
            2,
            "routes[0].prefix",
            "must start with '/'",
        ),
        (
            "routes:\n  - prefix: /a\n    upstream: https://u:pw@a.com/\n",
            3,
            "routes[0].upstream",
            "no credentials",
        ),
        ("a.com:\n  destination: d\n   policy: p\n", 3, "(yaml)", ""),
        ("*.a.com:\n  passthrough: true\n", 1, "(yaml)", ""),
    ],
)
def test_loader_errors_name_line_and_field(text: str, line: int, field: str, message: str):
    with pytest.raises(RegistryError) as info:
        parse_registry_text(text, source="bad.yaml")
    err = info.value
    assert (err.file, err.line, err.field) == ("bad.yaml", line, field)
    assert message in err.message
    assert str(err) == f"bad.yaml:{line}: {field}: {err.message}"


def test_load_registry_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RegistryError) as info:
        load_registry(missing)
    assert info.value.file == str(missing) and info.value.field == "(file)"
    assert str(info.value).startswith(f"{missing}: (file): ")


def test_load_registry_reads_a_file(tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text("api.x.com:\n  destination: x\n  policy: p\n  bogus: 1\n", encoding="utf-8")
    with pytest.raises(RegistryError, match=rf"^{f}:4: api\.x\.com\.bogus: unknown key"):
        load_registry(f)


def test_yaml_anchors_and_merge_keys_work() -> None:
    r = reg(
        """
        api.a.com: &finance
          destination: a.pay
          policy: finance-high-risk
        api.b.com:
          <<: *finance
          destination: b.pay
        """
    )
    m = r.match("api.b.com", 443, "POST", "/")
    assert (m.destination, m.policy) == ("b.pay", "finance-high-risk")


def test_build_registry_error_without_line_numbers() -> None:
    with pytest.raises(RegistryError) as info:
        build_registry({"a.com": {"destination": "d", "policy": "p", "junk": 1}}, source="mem")
    assert (info.value.line, info.value.field) == (None, "a.com.junk")
    assert str(info.value).startswith("mem: a.com.junk: unknown key")
