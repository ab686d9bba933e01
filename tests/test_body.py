"""core/body.py: bodies read as servers read them; record paths never guessed."""

import codecs
import json

import pytest

from gate_proxy.core.body import RecordCountProblem, count_records, decode_body
from gate_proxy.core.terms import NOT_JSON, decode_json

DOC = '{"inputs": [1, 2, 3], "note": "é"}'

DECODED = [
    # (raw bytes, content type, expected text, codec, problem)
    (DOC.encode(), "application/json", DOC, "utf-8", None),
    (codecs.BOM_UTF8 + DOC.encode(), "application/json", DOC, "utf-8", None),
    (codecs.BOM_UTF16_LE + DOC.encode("utf-16-le"), "application/json", DOC, "utf-16-le", None),
    (codecs.BOM_UTF16_BE + DOC.encode("utf-16-be"), "application/json", DOC, "utf-16-be", None),
    (DOC.encode("utf-16-le"), "application/json", DOC, "utf-16-le", None),  # NUL pattern
    (DOC.encode("utf-16-be"), "application/json", DOC, "utf-16-be", None),
    (DOC.encode("utf-32-le"), "application/json", DOC, "utf-32-le", None),
    (DOC.encode("utf-32-be"), "application/json", DOC, "utf-32-be", None),
    (codecs.BOM_UTF32_LE + DOC.encode("utf-32-le"), "application/json", DOC, "utf-32-le", None),
    (DOC.encode("utf-16-le"), "", DOC, "utf-16-le", None),  # no Content-Type: sniffed as JSON
    (DOC.encode("utf-16-le"), "application/json; charset=utf-16le", DOC, "utf-16-le", None),
    (DOC.encode("utf-16-be"), 'application/vnd.x+json; charset="UTF-16"', DOC, "utf-16-be", None),
    ("café".encode("latin-1"), "text/plain; charset=iso-8859-1", "café", "iso8859-1", None),
    ("hé".encode(), "text/plain", "hé", "utf-8", None),
    (codecs.BOM_UTF16_LE + "sue".encode("utf-16-le"), "text/plain", "sue", "utf-16-le", None),
]


@pytest.mark.parametrize(("raw", "content_type", "text", "codec", "problem"), DECODED)
def test_decode_like_servers(
    raw: bytes, content_type: str, text: str, codec: str, problem: str | None
) -> None:
    body = decode_body(raw, content_type)
    assert (body.text, body.encoding, body.problem) == (text, codec, problem)


DOUBTFUL = [
    # A BOM that contradicts the declared charset: servers disagree on which wins.
    (
        codecs.BOM_UTF16_LE + DOC.encode("utf-16-le"),
        "application/json; charset=utf-8",
        "ambiguous_charset",
    ),
    (DOC.encode("utf-16-le"), "application/json; charset=utf-8", "ambiguous_charset"),
    (DOC.encode(), "application/json; charset=x-no-such-charset", "unknown_charset"),
    (b'{"a": "\xff\xfe\xfd"}', "application/json", "undecodable"),
]


@pytest.mark.parametrize(("raw", "content_type", "problem"), DOUBTFUL)
def test_doubtful_bodies_say_why(raw: bytes, content_type: str, problem: str) -> None:
    body = decode_body(raw, content_type)
    assert body.problem == problem
    assert body.text is not None  # content checks still see a (lossy) reading


def test_empty_body() -> None:
    assert decode_body(b"", "application/json").text is None


COUNTS = [
    ('{"inputs": [1, 2, 3]}', "inputs.length", 3, None),
    ('{"Inputs": [1, 2, 3]}', "inputs.length", 3, None),  # a case-insensitive binder reads it
    ('{"data": [{"items": [1, 2]}]}', "data.0.items.length", 2, None),
    ('{"count": 7}', "count", 7, None),
    ('{"count": 7.0}', "count", 7, None),
    ('{"inputs": [1], "Inputs": [1, 2, 3]}', "inputs.length", None, "ambiguous"),
    ('{"inputs": [1], "inputs": [1, 2, 3]}', "inputs.length", None, "ambiguous"),
    ('{"records": []}', "inputs.length", None, "unknown"),
    ('{"inputs": 5}', "inputs.length", None, "unknown"),
    ('{"count": -1}', "count", None, "unknown"),
    ('{"count": true}', "count", None, "unknown"),
    ('{"count": "7"}', "count", None, "unknown"),
    ("[1, 2]", "inputs.length", None, "unknown"),
    ("not json", "inputs.length", None, "unknown"),
    ('{"inputs": [1, 2]}', "inputs.5", None, "unknown"),
]


@pytest.mark.parametrize(("text", "path", "count", "problem"), COUNTS)
def test_count_records(text: str, path: str, count: int | None, problem: str | None) -> None:
    result = count_records(decode_json(text), path)
    expected = {None: None, "unknown": RecordCountProblem.UNKNOWN,
                "ambiguous": RecordCountProblem.AMBIGUOUS}[problem]  # fmt: skip
    assert (result.count, result.problem) == (count, expected)


def test_not_json_is_unknown_never_one() -> None:
    assert count_records(NOT_JSON, "inputs.length").problem is RecordCountProblem.UNKNOWN


def test_every_utf_encoding_of_a_batch_counts_the_same() -> None:
    batch = json.dumps({"inputs": [{"email": f"{i}@x.example"} for i in range(500)]})
    for codec in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"):
        body = decode_body(batch.encode(codec), "application/json")
        assert body.ok, codec
        assert count_records(decode_json(body.text or ""), "inputs.length").count == 500, codec
