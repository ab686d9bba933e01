import unicodedata

import pytest

from gate_proxy.core.urlnorm import (
    NormalizedPath,
    normalize_host,
    normalize_path,
    normalize_url,
    path_variants,
    rule_variant,
    split_host_port,
)

# Every spelling below must reach the same resource as /v1/refunds.
REFUND_SPELLINGS = [
    "/v1/refunds",
    "//v1/refunds",
    "/v1//refunds",
    "///v1///refunds",
    "/v1/%72efunds",
    "/v1/%72%65%66%75%6e%64%73",
    "/%76%31/refunds",
    "/v1/./refunds",
    "/./v1/refunds",
    "/v1/x/../refunds",
    "/v1/x/y/../../refunds",
    "/../v1/refunds",
    "/v1/refunds;jsessionid=1",
    "/v1;a=b/refunds",
    "/v1/%2e/refunds",
    "/v1/%2E/refunds",
    "/v1/x/%2e%2e/refunds",
    "/v1/x/.%2e/refunds",
    "/v1/x/%2E./refunds",
    "/v1/x/..;/refunds",
    "/v1/x/..;jsessionid=1/refunds",
    "/v1/.;x/refunds",
]


@pytest.mark.parametrize("raw", REFUND_SPELLINGS)
def test_bypass_spellings_normalise_to_refunds(raw: str) -> None:
    assert normalize_path(raw).path == "/v1/refunds"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("", "/"),
        ("/", "/"),
        ("//", "/"),
        ("/..", "/"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/./", "/a/"),
        ("/a/b/c/./../../g", "/a/g"),  # RFC 3986 5.2.4 example
        ("/mid/content=5/../6", "/mid/6"),  # RFC 3986 5.2.4 example
        ("/v1/refunds/", "/v1/refunds/"),  # trailing slash is kept in the path
        ("v1/refunds", "/v1/refunds"),  # missing leading slash is added
        ("/v1%2frefunds", "/v1%2Frefunds"),  # encoded slash is not a separator
        ("/v1%2Frefunds", "/v1%2Frefunds"),
        ("/a%5cb", "/a%5Cb"),
        ("/%41%7e%2d%5f", "/A~-_"),  # unreserved escapes are decoded
        ("/%3a%40%21", "/%3A%40%21"),  # reserved escapes stay, hex upper-cased
        ("/%252e%252e/x", "/%252e%252e/x"),  # no double decoding
        ("/caf\u00e9", "/caf%C3%A9"),  # raw non-ASCII -> UTF-8 escapes
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a b", "/a%20b"),
        ('/a"<>', "/a%22%3C%3E"),
        ("/a\\b", "/a%5Cb"),
        ("/%zz/%4", "/%zz/%4"),  # malformed escapes are left alone
        ("/.well-known/x", "/.well-known/x"),
        ("/api/*/x", "/api/*/x"),
    ],
)
def test_normalize_path_table(raw: str, path: str) -> None:
    assert normalize_path(raw).path == path


def test_query_and_fragment_are_split_off_verbatim() -> None:
    np = normalize_path("/v1/%72efunds?b=2&a=1&a=%2f#frag?x")
    assert np == NormalizedPath(
        path="/v1/refunds",
        params=(),
        query="b=2&a=1&a=%2f",
        path_with_params="/v1/refunds",
        fragment="frag?x",
    )
    assert np.target == "/v1/refunds?b=2&a=1&a=%2f"


def test_params_are_kept_separately_and_reattached() -> None:
    np = normalize_path("/a;x=1/b/c;y=2;z=3?q=1")
    assert np.path == "/a/b/c"
    assert np.params == ("x=1", "y=2;z=3")
    assert np.path_with_params == "/a;x=1/b/c;y=2;z=3"
    assert np.target == "/a;x=1/b/c;y=2;z=3?q=1"


def test_params_of_removed_segments_are_dropped() -> None:
    np = normalize_path("/a/b;evil=1/../c")
    assert np.path == "/a/c"
    assert np.params == ()
    assert np.path_with_params == "/a/c"


def test_encoded_separator_flag() -> None:
    assert normalize_path("/v1%2frefunds").has_encoded_separator
    assert normalize_path("/v1%5Crefunds").has_encoded_separator
    assert not normalize_path("/v1/refunds%20x").has_encoded_separator


# Spellings that upstreams may read as a different resource than the gate would, in a way
# no block rule can follow (a dot segment that only some servers resolve, bytes servers
# decode differently): normalize_path names the problem and the registry refuses them.
REFUSED_SPELLINGS = [
    ("/x%2F..%2Fadmin", "dot segment"),  # %2F-decoding servers resolve the ".."
    ("/x/..%2Fadmin", "dot segment"),
    ("/x/..%2fadmin", "dot segment"),
    ("/x%5C..%5Cadmin", "dot segment"),  # IIS and Windows treat "\" as "/"
    ("/x\\..\\admin", "dot segment"),  # raw backslashes
    ("/x/..%5Cadmin", "dot segment"),
    ("/x/..%20/admin", "dot segment"),  # Windows drops trailing spaces: ".. " is ".."
    ("/x/..%20%20./admin", "dot segment"),
    ("/x/..+/admin", "dot segment"),  # "+" decoded as a space (Java's URLDecoder)
    ("/x/..%3Bx=1/admin", "dot segment"),  # ";params" cut after decoding
    ("/x/.%2E%3B/admin", "dot segment"),
    ("/x/.../admin", "dot segment"),  # only dots: never a plain name
    ("/x/%EF%BC%8E%EF%BC%8E/admin", "dot segment"),  # fullwidth ".." (NFKC)
    ("/x/\uff0e\uff0e/admin", "dot segment"),  # the same, raw
    ("/x/%E2%80%A5/admin", "dot segment"),  # TWO DOT LEADER folds to ".."
    ("/x%EF%BC%8F..%EF%BC%8Fadmin", "dot segment"),  # fullwidth solidus folds to "/"
    ("/admin%00", "control character"),  # C servers stop at NUL
    ("/admin%00.json", "control character"),
    ("/admin\x00", "control character"),
    ("/admin%0d%0aX-Injected:%201", "control character"),
    ("/admin%09", "control character"),
    ("/admin%7F", "control character"),
    ("/admin%C2%85", "control character"),  # C1 NEL
    ("/%2561dmin", "double percent-encoding"),  # servers that decode twice see /admin
    ("/%252e%252e/admin", "double percent-encoding"),
    ("/x/%25%32%65%25%32%65/admin", "double percent-encoding"),  # %25 %32 %65 = "%2e"
    ("/x/%C0%AE%C0%AE/admin", "not valid UTF-8"),  # overlong "."
    ("/%C0%AFadmin", "not valid UTF-8"),  # overlong "/"
    ("/%C1%A1dmin", "not valid UTF-8"),  # overlong "a"
    ("/%E0%80%AE%E0%80%AE/admin", "not valid UTF-8"),  # 3-byte overlong "."
    ("/%F0%80%80%AE", "not valid UTF-8"),  # 4-byte overlong "."
    ("/%ED%A0%80", "not valid UTF-8"),  # UTF-16 surrogate
    ("/caf%E9", "not valid UTF-8"),  # Latin-1: best-fit mappings vary between servers
    ("/\udcc0\udcaeadmin", "not valid UTF-8"),  # raw invalid bytes, as mitmproxy gives them
    ("/%FF", "not valid UTF-8"),
]


@pytest.mark.parametrize(("raw", "problem"), REFUSED_SPELLINGS)
def test_ambiguous_spellings_are_refused(raw: str, problem: str) -> None:
    refusal = normalize_path(raw).refusal
    assert refusal is not None and problem in refusal


@pytest.mark.parametrize(
    "raw",
    [
        *REFUND_SPELLINGS,
        "/caf%C3%A9",
        "/caf\u00e9",
        "/api/v4/projects/group%2Fproject",  # GitLab: an encoded slash alone is fine
        "/a%5Cb",
        "/.well-known/acme-challenge/x",
        "/compare/main...feature",  # dots inside a name are not a dot segment
        "/wiki/Washington,_D.C.",  # a trailing dot
        "/search/c++",
        "/100%25",  # a literal percent sign
        "/%25zz",
        "/a b/\u00a0x",
        "/x/%20./y",  # " ." is not a dot segment for anyone
        "/\uff41dmin",  # fullwidth letters are folded for blocks, not refused
        "/files/a%3Fb",
    ],
)
def test_unambiguous_paths_are_not_refused(raw: str) -> None:
    assert normalize_path(raw).refusal is None


@pytest.mark.parametrize(
    "raw",
    [
        *REFUND_SPELLINGS,
        *(raw for raw, _ in REFUSED_SPELLINGS),
        "/a;x/b/../c;y?q=1",
        "/caf\u00e9/%2f/..;/x",
    ],
)
def test_normalisation_is_idempotent(raw: str) -> None:
    once = normalize_path(raw)
    twice = normalize_path(once.target)
    assert twice.path == once.path
    assert twice.target == once.target
    # The proxy normalises, forwards .target, and the registry normalises again.
    assert twice.refusal == once.refusal


# --------------------------------------------------------------------- forms for block rules

# Each spelling some kind of upstream routes as /admin (or below it).
ADMIN_SPELLINGS = [
    ("/admin", "any server"),
    ("/ADMIN", "case-insensitive (IIS, ASP.NET, Windows/macOS file systems)"),
    ("/Admin/users", "case-insensitive"),
    ("/%61dmin", "percent-encoded letter"),
    ("/%41DMIN", "percent-encoded upper-case letter"),
    ("//admin", "double slash"),
    ("/x/../admin", "dot segments"),
    ("/./admin", "dot segments"),
    ("/admin/", "trailing slash"),
    ("/admin;jsessionid=1", "Tomcat path parameter"),
    ("/ADMIN;x=1/users", "path parameter, case"),
    ("/admin.", "Windows drops trailing dots"),
    ("/admin..", "Windows drops trailing dots"),
    ("/admin%20", "Windows drops trailing spaces"),
    ("/admin%20.%20", "Windows drops trailing dots and spaces"),
    ("/admin+", "'+' as space, then trimmed"),
    ("/admin%2Fusers", "servers that decode %2F"),
    ("/%2Fadmin", "servers that decode %2F"),
    ("/%5Cadmin", "servers that treat \\ as /"),
    ("/\\admin", "raw backslash"),
    ("/admin\\users", "raw backslash"),
    ("/admin%3Bx=1", "encoded ';' cut after decoding (Spring)"),
    ("/admin%3Fx", "servers that decode, then split the query"),
    ("/admin%23x", "servers that decode, then drop the fragment"),
    ("/ADM%C4%B0N", "Unicode case folding: dotted capital I"),
    ("/ADM\u0130N", "the same, raw"),
    ("/adm%C4%B1n", "dotless i (Java equalsIgnoreCase)"),
    ("/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E", "fullwidth letters (NFKC)"),
    ("/\uff21\uff24\uff2d\uff29\uff2e", "fullwidth capitals, raw"),
    ("/%C3%A1dmin", "accent-insensitive collation"),
    ("/a%CC%81dmin", "combining accent"),
    ("/ad%C2%ADmin", "soft hyphen (invisible)"),
    ("/ad\u200bmin", "zero-width space (invisible)"),
    ("/\u1d2c\u1d30\u1d39\u1d35\u1d3a", "modifier letters (NFKC)"),
]


def _under_admin(form: str) -> bool:
    return form == "/admin" or form.startswith("/admin/")


@pytest.mark.parametrize(("raw", "why"), ADMIN_SPELLINGS)
def test_some_form_of_each_admin_spelling_is_admin(raw: str, why: str) -> None:
    np = normalize_path(raw)
    assert np.refusal is None, why
    assert any(_under_admin(form) for form in path_variants(np.path)), why


@pytest.mark.parametrize(
    ("raw", "fold_case", "forms"),
    [
        ("/v1/things", True, ("/v1/things",)),
        ("/V1/Things/", True, ("/v1/things",)),
        ("/V1/Things/", False, ("/V1/Things",)),
        ("/", True, ("/",)),
        ("/admin.", True, ("/admin", "/admin.")),
        ("/a%2Fb", True, ("/a%2Fb", "/a/b")),
        ("/a%5Cb", True, ("/a/b", "/a\\b")),
        ("/a;x/b", True, ("/a/b",)),  # raw params never reach the forms
        ("/a%3Bx", True, ("/a", "/a;x")),
        ("/A%3Fb/c", True, ("/a", "/a?b/c")),
        ("/c++", True, ("/c", "/c++")),
        ("/Caf%C3%A9", True, ("/cafe",)),
        ("/Caf%C3%A9", False, ("/Cafe",)),
        ("/ADM%C4%B0N", False, ("/ADMIN",)),  # sensitive: Unicode folds, case kept
    ],
)
def test_path_variants_table(raw: str, fold_case: bool, forms: tuple[str, ...]) -> None:
    assert path_variants(normalize_path(raw).path, fold_case) == forms


@pytest.mark.parametrize(
    ("rule", "fold_case", "form"),
    [
        ("/Admin", True, "/admin"),
        ("/Admin", False, "/Admin"),
        ("/admin/", True, "/admin"),
        ("/files/x.", True, "/files/x"),
        ("/c++", True, "/c++"),  # "+" stays: the rule must not widen to /c
        ("/api/*/Delete", True, "/api/*/delete"),
        ("/a%2Fb", True, "/a/b"),
        ("/", True, "/"),
        ("/**", True, "/**"),
        ("/\uff41dmin", True, "/admin"),
    ],
)
def test_rule_variant_table(rule: str, fold_case: bool, form: str) -> None:
    assert rule_variant(normalize_path(rule).path, fold_case) == form


def test_every_character_that_folds_to_an_ascii_letter_is_folded() -> None:
    """Whatever case mapping or compatibility form a server may apply, the block forms agree.

    Exhaustive over Unicode: if upper(), lower(), casefold(), title() or NFKC of a character
    is one ASCII letter, the case-folded form of a path made of it is that letter.
    """
    missed = []
    for code in range(0x80, 0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        targets = {
            t
            for t in (
                char.upper(),
                char.lower(),
                char.casefold(),
                char.title(),
                unicodedata.normalize("NFKC", char),
            )
            if len(t) == 1 and t.isascii() and t.isalpha()
        }
        for target in targets:
            np = normalize_path("/" + char)
            if path_variants(np.path) != ("/" + target.lower(),):
                missed.append((hex(code), target, path_variants(np.path)))
    assert missed == []


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("API.Stripe.COM", "api.stripe.com"),
        ("api.stripe.com.", "api.stripe.com"),
        ("  api.stripe.com ", "api.stripe.com"),
        ("B\u00fccher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("localhost", "localhost"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.5", "10.0.0.5"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("under_score.example", "under_score.example"),
    ],
)
def test_normalize_host(raw: str, host: str) -> None:
    assert normalize_host(raw) == host


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ".",
        "a..b",
        "a/b",
        "user@host",
        "a b",
        "-a.com",
        "256.0.0.1",
        "1.2.3.4.5",
        "09.1.1.1",
        "[::g]",
        "a" * 64 + ".com",
    ],
)
def test_normalize_host_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_host(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("api.stripe.com", ("api.stripe.com", None)),
        ("api.local:8443", ("api.local", 8443)),
        ("[::1]", ("[::1]", None)),
        ("[::1]:8443", ("[::1]", 8443)),
        ("::1", ("::1", None)),
    ],
)
def test_split_host_port(raw: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(raw) == expected


@pytest.mark.parametrize("raw", ["a:0", "a:65536", "a:x", "[::1", "[::1]x"])
def test_split_host_port_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(raw)


@pytest.mark.parametrize(
    ("args", "url"),
    [
        (("HTTPS", "API.Stripe.com.", 443, "//v1/%72efunds"), "https://api.stripe.com/v1/refunds"),
        (("http", "api.local", 80, "/"), "http://api.local/"),
        (("http", "api.local", 8080, "/x"), "http://api.local:8080/x"),
        (("https", "api.local", 80, "/x"), "https://api.local:80/x"),
        (("https", "api.local", None, "/x"), "https://api.local/x"),
        (("https", "::1", 8443, "/x"), "https://[::1]:8443/x"),
        (("https", "a.com", 443, "/v1/r;p=1?b=2&a=1"), "https://a.com/v1/r;p=1?b=2&a=1"),
        (("https", "a.com", 443, "/x#f"), "https://a.com/x#f"),
        (("https", "a.com", 443, ""), "https://a.com/"),
    ],
)
def test_normalize_url(args: tuple[str, str, int | None, str], url: str) -> None:
    assert normalize_url(*args) == url


def test_normalize_url_keeps_query_order() -> None:
    assert normalize_url("https", "a.com", 443, "/x?z=1&a=2") != normalize_url(
        "https", "a.com", 443, "/x?a=2&z=1"
    )
