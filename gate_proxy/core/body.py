"""Read a request body the way the upstream will: charset, BOM, UTF-16/32, record counts.

Pure: stdlib only, no I/O.

If the gate read a body differently from the server behind it, a write could be decided
on one meaning and executed with another: a JSON batch sent as UTF-16, or behind a UTF-8
BOM, used to fail the gate's parse (so its record count fell back to 1) while the
upstream parsed 500 records. So:

* JSON is decoded as RFC 8259 §8.1 and common servers do: a byte-order mark wins (UTF-8,
  UTF-16 LE/BE, UTF-32 LE/BE), else a declared ``charset``, else the NUL pattern of the
  first four bytes (the RFC 4627 rule servers still apply), else UTF-8. A BOM or pattern
  that contradicts the declared charset is *ambiguous*: servers disagree on which wins.
* Other text uses its declared charset (UTF-8 by default), BOMs honoured the same way.
* A body that cannot be decoded strictly is reported as such; its lossy text is still
  given for content checks, which then see at least what a lenient server would.
* A record path (``inputs.length``) that the body does not answer *exactly* is not
  "one record": it is unknown (no such path) or ambiguous (duplicate keys, or keys that
  differ only in case, which case-insensitive binders such as ASP.NET's or Jackson's
  merge). The caller turns either into a refusal or a human review, never into 1.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from gate_proxy.core.terms import NOT_JSON

__all__ = [
    "BodyText",
    "RecordCount",
    "RecordCountProblem",
    "count_records",
    "decode_body",
    "media_type",
    "payload_type_of",
]

_BOMS: Final = (
    # Longest first: the UTF-32 LE BOM starts with the UTF-16 LE one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True, slots=True)
class BodyText:
    """A request body as text. ``text`` is None only for an empty body."""

    text: str | None
    encoding: str | None  # the codec used, e.g. "utf-16-le"
    problem: str | None = None  # "undecodable" | "ambiguous_charset" | "unknown_charset"

    @property
    def ok(self) -> bool:
        return self.problem is None


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def payload_type_of(content_type: str) -> str | None:
    """A short payload type from the Content-Type ("json", "csv", "text", "xml", ...)."""
    media = media_type(content_type)
    if not media:
        return None
    if media.endswith("/json") or media.endswith("+json"):
        return "json"
    if media == "text/csv":
        return "csv"
    if media.startswith("text/"):
        return "text"
    return media.rsplit("/", 1)[-1]


def _charset(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        key, sep, value = parameter.partition("=")
        if sep and key.strip().lower() == "charset":
            return value.strip().strip('"').strip().lower() or None
    return None


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json") or media.endswith("/json")


def _codec(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _utf_family(codec: str) -> str:
    """ "utf-16" for utf-16, utf-16-le and utf-16-be (likewise utf-32); else the codec."""
    for family in ("utf-16", "utf-32"):
        if codec.startswith(family):
            return family
    return codec


def _sniff_json(raw: bytes) -> str:
    """RFC 4627 §3: the NUL pattern of the first four octets of JSON text."""
    head = raw[:4]
    if len(head) >= 4:
        if head[0] == 0 and head[1] == 0 and head[2] == 0 and head[3] != 0:
            return "utf-32-be"
        if head[0] != 0 and head[1] == 0 and head[2] == 0 and head[3] == 0:
            return "utf-32-le"
    if len(head) >= 2:
        if head[0] == 0 and head[1] != 0:
            return "utf-16-be"
        if head[0] != 0 and head[1] == 0:
            return "utf-16-le"
    return "utf-8"


def decode_body(raw: bytes, content_type: str) -> BodyText:
    """The body's text as the upstream will read it, or why that is in doubt."""
    if not raw:
        return BodyText(None, None)
    media = media_type(content_type)
    declared_name = _charset(content_type)
    declared = _codec(declared_name) if declared_name else None
    if declared_name and declared is None:
        return BodyText(raw.decode("utf-8", "replace"), "utf-8", "unknown_charset")

    bom_codec = None
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            bom_codec, raw = codec, raw[len(bom) :]
            break

    if bom_codec is not None:
        codec = bom_codec
        if declared is not None and _utf_family(declared) != _utf_family(_codec(codec) or codec):
            return _decode(raw, codec, "ambiguous_charset")
    elif declared is not None:
        codec = declared
        if _is_json(media) and _utf_family(_sniff_json(raw)) not in (
            _utf_family(declared),
            "utf-8",
        ):
            # Declared one thing, looks like another: servers pick differently.
            return _decode(raw, _sniff_json(raw), "ambiguous_charset")
    elif _is_json(media) or media == "":
        codec = _sniff_json(raw)
    else:
        codec = "utf-8"
    if codec in ("utf-16", "utf-32"):  # declared without endianness or BOM: big endian
        codec += "-be"
    return _decode(raw, codec, None)


def _decode(raw: bytes, codec: str, problem: str | None) -> BodyText:
    try:
        return BodyText(raw.decode(codec), codec, problem)
    except (UnicodeDecodeError, LookupError):
        return BodyText(raw.decode(codec if _codec(codec) else "utf-8", "replace"), codec,
                        problem or "undecodable")  # fmt: skip


# -- record counts ------------------------------------------------------------------------


class RecordCountProblem(StrEnum):
    UNKNOWN = "record_count_unknown"  # the body does not answer the path
    AMBIGUOUS = "record_count_ambiguous"  # it answers it in more than one way


@dataclass(frozen=True, slots=True)
class RecordCount:
    count: int | None
    problem: RecordCountProblem | None = None


def count_records(parsed: object, spec: str) -> RecordCount:
    """Follow a Zehrava ``extract_records`` path (``inputs.length``, ``data.0.items.length``,
    ``count``) through JSON parsed by ``core.terms.decode_json`` (objects as pair tuples).

    Object keys match case-insensitively, because some upstreams bind them that way; a key
    that matches more than once (exact duplicates or case variants) is ambiguous.
    """
    if parsed is NOT_JSON:
        return RecordCount(None, RecordCountProblem.UNKNOWN)
    value: object = parsed
    for part in spec.split("."):
        if isinstance(value, list):
            if part == "length":
                value = len(value)
            elif part.isascii() and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return RecordCount(None, RecordCountProblem.UNKNOWN)
        elif isinstance(value, tuple):
            folded = part.casefold()
            found = [item for key, item in value if key.casefold() == folded]
            if not found:
                return RecordCount(None, RecordCountProblem.UNKNOWN)
            if len(found) > 1:
                return RecordCount(None, RecordCountProblem.AMBIGUOUS)
            value = found[0]
        else:
            return RecordCount(None, RecordCountProblem.UNKNOWN)
    if isinstance(value, bool):
        return RecordCount(None, RecordCountProblem.UNKNOWN)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 0:
        return RecordCount(value)
    return RecordCount(None, RecordCountProblem.UNKNOWN)
