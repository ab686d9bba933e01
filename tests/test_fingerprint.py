import hashlib
import json

import pytest

from gate_proxy.core.fingerprint import FINGERPRINT_VERSION, body_sha256, request_fingerprint

URL = "https://api.stripe.com/v1/refunds"
BODY = b'{"amount":100}'


def fp(method: str = "POST", url: str = URL, body: bytes = BODY, headers=None, relevant=()):
    return request_fingerprint(method, url, body, headers or {}, relevant)


def test_body_sha256_known_vectors() -> None:
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert body_sha256(b"") == empty
    assert body_sha256(None) == empty
    assert body_sha256(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert body_sha256(bytearray(b"abc")) == body_sha256(memoryview(b"abc"))


def test_fingerprint_matches_documented_encoding() -> None:
    headers = [("Content-Type", "application/json"), ("Idempotency-Key", "k1")]
    got = request_fingerprint("post", URL, BODY, headers, ["idempotency-key", "Authorization"])
    payload = [
        FINGERPRINT_VERSION,
        "POST",
        URL,
        hashlib.sha256(BODY).hexdigest(),
        [["authorization", None], ["idempotency-key", ["k1"]]],
    ]
    encoded = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()
    assert got == hashlib.sha256(encoded).hexdigest()
    assert len(got) == 64 and int(got, 16) >= 0


def test_deterministic_and_method_case_insensitive() -> None:
    assert fp() == fp()
    assert fp("post") == fp("POST")


@pytest.mark.parametrize(
    "changed",
    [
        {"method": "PUT"},
        {"url": URL + "?a=1"},
        {"url": "https://api.stripe.com/v1/refunds/"},
        {"body": b'{"amount":101}'},
        {"body": b""},
    ],
)
def test_any_component_change_changes_fingerprint(changed: dict) -> None:
    assert fp(**changed) != fp()


def test_header_names_and_order_do_not_matter() -> None:
    a = fp(headers={"Idempotency-Key": "k1", "X-A": "1"}, relevant=["idempotency-key", "x-a"])
    b = fp(headers=[("x-a", "1"), ("IDEMPOTENCY-KEY", "k1")], relevant=["X-A", "Idempotency-Key"])
    assert a == b


def test_irrelevant_headers_are_ignored() -> None:
    base = fp(headers={"Idempotency-Key": "k1"}, relevant=["idempotency-key"])
    noisy = fp(headers={"Idempotency-Key": "k1", "User-Agent": "x"}, relevant=["idempotency-key"])
    assert base == noisy


def test_relevant_header_value_change_changes_fingerprint() -> None:
    a = fp(headers={"Idempotency-Key": "k1"}, relevant=["idempotency-key"])
    b = fp(headers={"Idempotency-Key": "k2"}, relevant=["idempotency-key"])
    assert a != b


def test_missing_header_is_distinct_from_empty_header() -> None:
    missing = fp(headers={}, relevant=["idempotency-key"])
    empty = fp(headers={"Idempotency-Key": ""}, relevant=["idempotency-key"])
    assert missing != empty


def test_repeated_header_values_are_all_counted() -> None:
    one = fp(headers=[("X-A", "1")], relevant=["x-a"])
    two = fp(headers=[("X-A", "1"), ("X-A", "2")], relevant=["x-a"])
    joined = fp(headers=[("X-A", "1,2")], relevant=["x-a"])
    assert len({one, two, joined}) == 3


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # A character moved across a field boundary must not collide.
        (("POS", "Thttps://a/", b"", {}, ()), ("POST", "https://a/", b"", {}, ())),
        (
            ("POST", "https://a/", b"", {"A": "x", "B": ""}, ["a", "b"]),
            ("POST", "https://a/", b"", {"A": "", "B": "x"}, ["a", "b"]),
        ),
        (
            ("POST", "https://a/", b"", {"A": "x"}, ["a", "b"]),
            ("POST", "https://a/", b"", {"B": "x"}, ["a", "b"]),
        ),
        (
            ("POST", "https://a/", b"", {"A": '"],["b'}, ["a"]),
            ("POST", "https://a/", b"", {"A": "", "B": ""}, ["a", "b"]),
        ),
    ],
)
def test_no_concatenation_collisions(left: tuple, right: tuple) -> None:
    assert request_fingerprint(*left) != request_fingerprint(*right)
