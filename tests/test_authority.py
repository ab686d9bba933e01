"""core/authority.py: every name a request gives for its target must be the decided one."""

import pytest

from gate_proxy.core.authority import (
    Authority,
    AuthorityClaims,
    check_authority,
    forwarded_hosts,
    parse_authority,
)


def claims(**overrides: object) -> AuthorityClaims:
    base: dict[str, object] = {
        "scheme": "https",
        "decided_host": "crm.example",
        "decided_port": 443,
    }
    base.update(overrides)
    return AuthorityClaims(**base)  # type: ignore[arg-type]


AGREEING = [
    claims(),
    claims(tunnel=("crm.example", 443), sni="crm.example", host_headers=("crm.example",)),
    claims(sni="CRM.Example.", host_headers=("CRM.EXAMPLE:443",)),
    claims(target="crm.example:443"),
    claims(target="crm.example", target_label=":authority"),
    claims(scheme="http", decided_port=80, host_headers=("crm.example:80",)),
    claims(decided_port=8443, host_headers=("crm.example:8443",)),
    claims(decided_host="::1", decided_port=8443, host_headers=("[::1]:8443",)),
    claims(decided_host="127.0.0.1", host_headers=("127.0.0.1",)),
    claims(forwarding=(("x-forwarded-host", "crm.example"),)),
    claims(forwarding=(("x-forwarded-host", "crm.example:443"),)),
    claims(decided_host="bücher.example", host_headers=("xn--bcher-kva.example",)),
    claims(sni=""),  # no SNI sent
]


@pytest.mark.parametrize("case", AGREEING)
def test_agreeing_names_pass(case: AuthorityClaims) -> None:
    assert check_authority(case) is None


REFUSED = [
    # (claims, status, which claim)
    (claims(tunnel=("other.example", 443)), 421, "CONNECT authority"),
    (claims(tunnel=("crm.example", 8443)), 421, "CONNECT authority"),
    (claims(sni="payments.example"), 421, "TLS SNI"),
    (claims(host_headers=("payments.example",)), 421, "Host header"),
    (claims(host_headers=("crm.example:8443",)), 421, "Host header"),
    # A Host without a port means the scheme's default port, not the decided one.
    (claims(decided_port=8443, host_headers=("crm.example",)), 421, "Host header"),
    (claims(scheme="http", decided_port=80, host_headers=("crm.example:443",)), 421, "Host header"),
    (claims(target="payments.example"), 421, "absolute-form target"),
    (claims(target="payments.example", target_label=":authority"), 421, ":authority"),
    (claims(host_headers=("crm.example", "crm.example")), 400, "host"),
    (claims(host_headers=("",)), 400, "Host header"),
    (claims(host_headers=("crm.example ",)), 400, "Host header"),
    (claims(host_headers=("user@crm.example",)), 400, "Host header"),
    (claims(host_headers=("crm.example/x",)), 400, "Host header"),
    (claims(host_headers=("crm.example:0",)), 400, "Host header"),
    (claims(host_headers=("crm.example:99999",)), 400, "Host header"),
    (claims(host_headers=("[::1",)), 400, "Host header"),
    (claims(forwarding=(("x-forwarded-host", "payments.example"),)), 421, "x-forwarded-host"),
    (claims(forwarding=(("x-forwarded-host", "crm.example:8443"),)), 421, "x-forwarded-host"),
    (claims(forwarding=(("x-host", "bad host"),)), 400, "x-host"),
    (claims(decided_host="bad host"), 400, "target host"),
    (claims(sni="bad sni!"), 400, "TLS SNI"),
]


@pytest.mark.parametrize(("case", "status", "claim"), REFUSED)
def test_disagreeing_or_malformed_names_are_refused(
    case: AuthorityClaims, status: int, claim: str
) -> None:
    problem = check_authority(case)
    assert problem is not None
    assert (problem.status, problem.claim) == (status, claim)
    expected = "authority_mismatch" if status == 421 else "invalid_authority"
    assert problem.reason_code == expected


def test_long_values_are_cut_in_messages() -> None:
    problem = check_authority(claims(host_headers=("a" * 5000 + ".example",)))
    assert problem is not None and len(problem.message) < 400


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("crm.example", 443, Authority("crm.example", 443)),
        ("CRM.example.:8080", 80, Authority("crm.example", 8080)),
        ("[::FFFF:7f00:1]:1", 80, Authority("::ffff:127.0.0.1", 1)),
        ("2130706433", 80, Authority("127.0.0.1", 80)),
    ],
)
def test_parse_authority(text: str, default: int, expected: Authority) -> None:
    assert parse_authority(text, default) == expected


def test_forwarded_hosts_reads_every_host_parameter() -> None:
    values = ['for=1.2.3.4;host="a.example";proto=https, for=5.6.7.8;HOST=b.example', "for=x"]
    assert forwarded_hosts(values) == ["a.example", "b.example"]
