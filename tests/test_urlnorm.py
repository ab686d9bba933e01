import pytest

from gate_proxy.core.urlnorm import (
    NormalizedPath,
    normalize_host,
    normalize_path,
    normalize_url,
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


@pytest.mark.parametrize("raw", [*REFUND_SPELLINGS, "/a;x/b/../c;y?q=1", "/caf\u00e9/%2f/..;/x"])
def test_normalisation_is_idempotent(raw: str) -> None:
    once = normalize_path(raw)
    twice = normalize_path(once.target)
    assert twice.path == once.path
    assert twice.target == once.target


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
