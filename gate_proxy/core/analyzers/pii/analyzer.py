"""The PII analyzer: scans the payload and its decoded readings, one finding per kind. PURE."""

import html
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Final

from gate_proxy.core.analyzers.base import Finding
from gate_proxy.core.analyzers.pii.detect import NUMBER_SHAPE, _encode, _scan
from gate_proxy.core.analyzers.pii.kinds import _SEVERITY, SECRET_KINDS

# Invisible characters (deleted) and Unicode dashes (read as "-"), as UTF-8 bytes.
_INVISIBLE_UTF8: Final = tuple(
    chr(code).encode()
    for code in (0x00AD, 0x180E, *range(0x200B, 0x2010), *range(0x2060, 0x2065), 0xFEFF)
)
_DASHES_UTF8: Final = tuple(chr(code).encode() for code in (*range(0x2010, 0x2016), 0x2212))


def _unicode_reading(text: str) -> str:
    folded = _encode(unicodedata.normalize("NFKC", text))
    for sequence in _INVISIBLE_UTF8:
        if sequence in folded:
            folded = folded.replace(sequence, b"")
    for sequence in _DASHES_UTF8:
        if sequence in folded:
            folded = folded.replace(sequence, b"-")
    return folded.decode("utf-8", "surrogatepass")


def readings(text: str, decoded_strings: str | None = None) -> list[tuple[str, str]]:
    """(name, text) readings to scan: the text, then decoded variants where they differ."""
    variants = [("payload", text)]
    if decoded_strings is not None and decoded_strings != text:
        variants.append(("decoded JSON", decoded_strings))
    base = variants[-1][1]
    if "%" in base:
        unquoted = urllib.parse.unquote(base)
        if unquoted != base:
            variants.append(("URL-decoded", unquoted))
    if "&" in base and ("&#" in base or ";" in base):
        unescaped = html.unescape(base)
        if unescaped != base:
            variants.append(("HTML-decoded", unescaped))
    if not base.isascii():
        folded = _unicode_reading(base)
        if folded != base:
            variants.append(("Unicode-normalised", folded))
    return variants


def json_key_before(data: bytes, offset: int) -> str | None:
    """The JSON key nearest before `offset` ("email" in `"email": "a@b.c"`), or None."""
    colon = data.rfind(b'":', 0, offset)
    if colon < 0:
        return None
    quote = data.rfind(b'"', 0, colon)
    if quote < 0:
        return None
    key = data[quote + 1 : colon]
    return key.decode("utf-8", "replace") if len(key) <= 128 else None


def locate_in_json(data: bytes, offset: int) -> str:
    """Where a match is, as JSONPath's "any depth" form ($..email); cheap, approximate."""
    key = json_key_before(data, offset)
    return f"$..{key}" if key is not None else "payload"


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of the payload as UTF-8, with its number shape (shared by analyzers)."""

    name: str
    data: bytes
    number_shape: bytes

    @classmethod
    def of(cls, name: str, text: str) -> "Reading":
        data = _encode(text)
        return cls(name, data, data.translate(NUMBER_SHAPE))


def prepare(text: str, decoded_strings: str | None = None) -> list[Reading]:
    return [Reading.of(name, reading) for name, reading in readings(text, decoded_strings)]


def analyze_pii(
    text: str,
    decoded_strings: str | None = None,
    *,
    is_json: bool = False,
    prepared: list[Reading] | None = None,
) -> list[Finding]:
    """One finding per kind: its first location, and how many were seen in that reading.

    `prepared` are the readings to scan (``prepare(text, decoded_strings)`` if None).
    """
    findings: dict[str, Finding] = {}
    if prepared is None:
        prepared = prepare(text, decoded_strings)
    for reading in prepared:
        data = reading.data
        found = _scan(data, first_only=True, number_shape=reading.number_shape)
        kinds = [item[0] for item in found]
        for kind, start, end, mask in found:
            if kind in findings:
                continue
            json_like = is_json or reading.name == "decoded JSON"
            where = locate_in_json(data, start) if json_like else "payload"
            # Emails stop at the first (first_only); any later "@" may be another one.
            more = kinds.count(kind) > 1 or (kind == "email" and data.find(b"@", end) >= 0)
            detail = f"{mask} and more" if more else mask
            if reading.name != "payload":
                detail += f" ({reading.name})"
            group = "secret" if kind in SECRET_KINDS else "pii"
            findings[kind] = Finding(f"{group}.{kind}", _SEVERITY[kind], where, detail)
    return list(findings.values())
