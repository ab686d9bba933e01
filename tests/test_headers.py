"""core/headers.py: bounded, unambiguous header blocks, in linear time."""

import time

import pytest

from gate_proxy.core.headers import HeadLimits, check_head, hygienic_fields

LIMITS = HeadLimits(max_headers=10, max_bytes=200)


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ([(b"a", b"b")] * 11, 431, "too_many_headers"),
        ([(b"a", b"x" * 300)], 431, "headers_too_large"),
        ([(b"Host ", b"x")], 400, "invalid_header_name"),
        ([(b"Ho st", b"x")], 400, "invalid_header_name"),
        ([(b"", b"x")], 400, "invalid_header_name"),
        ([(b"X\x00", b"x")], 400, "invalid_header_name"),
        ([(b"X-A", b"one\r\n two")], 400, "obsolete_line_folding"),
        ([(b"X-A", b"one\n two")], 400, "obsolete_line_folding"),
        ([(b"X-A", b"one\rtwo")], 400, "invalid_header_value"),
        ([(b"X-A", b"one\x00two")], 400, "invalid_header_value"),
        ([(b"X-A", b"one\x7f")], 400, "invalid_header_value"),
    ],
)
def test_refused_heads(fields: list[tuple[bytes, bytes]], status: int, error: str) -> None:
    problem = check_head(fields, LIMITS)
    assert problem is not None
    assert (problem.status, problem.error) == (status, error)


@pytest.mark.parametrize(
    "fields",
    [
        [],
        [(b"Host", b"a"), (b"X-Tab", b"a\tb"), (b"X-Utf8", "é".encode())],
        [(b"!#$%&'*+-.^_`|~09azAZ", b"")],
        [(b"a", b"b")] * 10,
    ],
)
def test_accepted_heads(fields: list[tuple[bytes, bytes]]) -> None:
    assert check_head(fields, LIMITS) is None


def test_check_and_hygiene_are_linear_in_the_number_of_headers() -> None:
    # 100,000 headers: a quadratic pass would take minutes; a linear one milliseconds.
    many = [(b"X-H%d" % i, b"v") for i in range(100_000)]
    started = time.process_time()
    check_head(many, HeadLimits(max_headers=200_000, max_bytes=10**9))
    hygienic_fields(many)
    assert time.process_time() - started < 2.0


def test_hygiene_drops_own_proxy_and_hop_by_hop_headers() -> None:
    fields = (
        (b"Host", b"a"),
        (b"X-Gate-Wait", b"true"),
        (b"x-gate-intent-id", b"int_1"),
        (b"Proxy-Authorization", b"Basic x"),
        (b"Proxy-Anything", b"1"),
        (b"Connection", b"X-Listed, close"),
        (b"X-Listed", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"h2c"),
        (b"Content-Type", b"application/json"),
    )
    assert hygienic_fields(fields) == ((b"Host", b"a"), (b"Content-Type", b"application/json"))


def test_hygiene_keeps_a_websocket_handshake() -> None:
    fields = (
        (b"Connection", b"Upgrade"),
        (b"Upgrade", b"websocket"),
        (b"Sec-WebSocket-Key", b"k"),
        (b"X-Gate-Key", b"secret"),
    )
    assert hygienic_fields(fields) == fields[:3]
