"""PII and secrets: detection for policy, and masking for stored previews and the dashboard.

PURE. Kinds (the names ``block_if_pii`` / ``require_approval_if_pii`` use):

    ssn             US social security number: 123-45-6789 (also spaces, dots, Unicode
                    dashes); a bare 9-digit number only under an SSN-like key
    card            payment card number, 13-19 digits, Luhn-checked (grouped or one run)
    iban            IBAN with a known country length and a valid mod-97 checksum
    email           addresses, also "name [at] example [dot] com"
    phone           +<country> international numbers and (NNN) NNN-NNNN style numbers
    aws_access_key  AKIA/ASIA/... access key ids
    private_key     -----BEGIN ... PRIVATE KEY----- blocks (RSA, EC, OpenSSH, PGP, ...)
    api_key         common key shapes: sk_live_/rk_live_ (Stripe), ghp_/gho_/github_pat_
                    (GitHub), xox?- (Slack), AIza (Google), sk-/sk-proj-/sk-ant- (OpenAI,
                    Anthropic), glpat- (GitLab), npm_, SG. (SendGrid), gate_sk_, JWTs,
                    Slack webhook URLs

Groups: ``pii`` is the first five, ``secret`` the last three.

Evasions: JSON escapes (``\\u0034``), %XX URL encoding, HTML entities, fullwidth digits
and letters (NFKC), zero-width and other invisible characters inside a number, Unicode
dashes as separators. Each decoded reading is scanned only when the text contains what
introduces it, so clean ASCII text is scanned once.

Speed: a regular expression costs ~15 ns per character here, so nothing scans the whole
payload with one. The text is translated once into "shapes" (digits -> 9, word characters
-> a) by ``bytes.translate``; ``bytes.find`` on a shape finds the few places worth a
closer look (a run of three digits, an "@", a run of 16 word characters, "-----"), and the
validating expressions run on small windows around them (overlapping windows merged, so
a text made of needles is still scanned once). The worst text found costs ~0.35 µs per
byte; ``analyze()`` scans at most ``MAX_SCAN_BYTES`` (payload plus decoded readings) and
reports ``pii.too_large`` past it.
"""

import html
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from gate_proxy.core.analyzers.base import Finding

__all__ = [
    "GROUPS",
    "KINDS",
    "PII_KINDS",
    "SECRET_KINDS",
    "SSN_MASK",
    "PiiMatch",
    "analyze_pii",
    "find_pii",
    "iban_ok",
    "json_key_before",
    "luhn_ok",
    "mask_pii",
    "readings",
]

PII_KINDS: Final = ("ssn", "card", "iban", "email", "phone")
SECRET_KINDS: Final = ("aws_access_key", "private_key", "api_key")
KINDS: Final = PII_KINDS + SECRET_KINDS
GROUPS: Final = {"pii": PII_KINDS, "secret": SECRET_KINDS}
SSN_MASK: Final = "[SSN]"

_SEVERITY: Final = {
    "ssn": "critical",
    "card": "critical",
    "iban": "high",
    "email": "medium",
    "phone": "medium",
    "aws_access_key": "critical",
    "private_key": "critical",
    "api_key": "critical",
}
_PRECEDENCE: Final = {kind: rank for rank, kind in enumerate(SECRET_KINDS + PII_KINDS)}


@dataclass(frozen=True, slots=True)
class PiiMatch:
    kind: str
    start: int  # offsets into the text given to find_pii
    end: int
    mask: str  # what a person is shown instead (never the value)


# -- validating expressions (bytes: they run on UTF-8 windows) -----------------------------

_NUMBERS = re.compile(
    rb"""
    (?P<ssn>(?<![\w.-])(?!000|666|9\d\d)\d{3}(?P<s>[-\ .])(?!00)\d{2}(?P=s)(?!0000)\d{4}(?![\w-]))
   |(?P<card>(?<![\w.])(?:\d{4}(?P<c>[\ -])\d{4}(?P=c)\d{4}(?P=c)\d{1,7}
        |\d{4}(?P<a>[\ -])\d{6}(?P=a)\d{4,5}|\d{13,19})(?![\w.]))
   |(?P<phone>(?<![\w+])\+\d{1,3}(?:[\ .-]?\(?\d{1,4}\)?){2,5}(?!\w)
        |(?<![\w-])(?:\(\d{3}\)\ ?|\d{3}[\ .-])\d{3}[\ .-]\d{4}(?![\w-]))
    """,
    re.VERBOSE,
)
_IBAN = re.compile(rb"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:\ ?[A-Za-z0-9]){11,30}")
# A bare nine-digit number counts only under an SSN-like key: `"ssn": 123456789`.
_SSN_BY_KEY = re.compile(
    rb"(?i)(\"?\b(?:ssn|social[_ -]?security(?:[_ -]?(?:number|no))?)\b\"?\s*[:=]\s*\"?)"
    rb"(\d{9})\b"
)
_SECRET = re.compile(
    rb"(?P<aws_access_key>\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b)"
    rb"|(?P<private_key>-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----)"
    rb"|(?P<api_key>\b(?:"
    rb"[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"
    rb"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    rb"|xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}"
    rb"|AIza[0-9A-Za-z_-]{35}"
    rb"|sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}"
    rb"|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}"
    rb"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
    rb"|gate_sk_[A-Za-z0-9_-]{16,}"
    rb"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    rb")|hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+)"
)
_EMAIL_DOMAIN = re.compile(rb"(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_EMAIL_LOCAL = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-"
_EMAIL_AT = re.compile(rb"(?<=[A-Za-z0-9._%+-])@(" + _EMAIL_DOMAIN.pattern + rb")")
_EMAIL_SPELLED = re.compile(
    rb"(?i)\b[a-z0-9][a-z0-9._%+-]{0,63}\s*[\[(]\s*at\s*[\])]\s*"
    rb"(?:[a-z0-9-]{1,63}\s*(?:\.|[\[(]\s*dot\s*[\])])\s*)+[a-z]{2,24}\b"
)

# IBAN lengths by country (ISO 13616 registry); an unknown country is not an IBAN.
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# Luhn's doubled digit (2d, minus 9 over 9) for ASCII "0".."9", as byte values.
_LUHN_DOUBLED: Final = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))


def _luhn_ok_ascii(digits: bytes) -> bool:
    """`luhn_ok` with sums in C: a text of cards costs no Python loop per digit."""
    kept, doubled = digits[-1::-2], digits[-2::-2]
    return (sum(kept) - 48 * len(kept) + sum(doubled.translate(_LUHN_DOUBLED))) % 10 == 0


def _card_ok(digits: str) -> bool:
    """Luhn, not one repeated digit, and a card network's shape: networks start with 2-6
    (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/UnionPay 6) and only Visa issued
    13 digits. This keeps most order ids and timestamps out."""
    return (
        13 <= len(digits) <= 19
        and digits[0] in "23456"
        and (len(digits) != 13 or digits[0] == "4")
        and len(set(digits)) > 1
        and _luhn_ok_ascii(digits.encode("ascii"))
    )


# ISO 13616: A=10 ... Z=35 (str.translate works in C; digits stay as they are).
_IBAN_LETTER_VALUES: Final = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def iban_ok(iban: str) -> bool:
    """Known country, its length, and the ISO 7064 mod-97 checksum."""
    candidate = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(candidate[:2]) != len(candidate) or not candidate.isalnum():
        return False
    if not candidate.isascii():
        return False
    rearranged = candidate[4:] + candidate[:4]
    return int(rearranged.translate(_IBAN_LETTER_VALUES)) % 97 == 1


# -- shapes: where to look -------------------------------------------------------------------


def _table(mapping: dict[bytes, bytes], default: bytes) -> bytes:
    table = bytearray(default * 256)
    for chars, to in mapping.items():
        for char in chars:
            table[char] = to[0]
    return bytes(table)


_DIGITS = b"0123456789"
_LETTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# digits -> 9, number punctuation -> ",", ")" and "]" -> "]", "@" stays, the characters
# that start a template placeholder ("{ $ % [ (") -> T, "a" -> A and "t" -> t (with "]"
# this finds a spelled-out "[at]"); everything else "."
NUMBER_SHAPE: Final = _table(
    {_DIGITS: b"9", b" -.+/": b",", b")]": b"]", b"@": b"@", b"{$%[(": b"T", b"aA": b"A",
     b"tT": b"t"},
    b".",
)  # fmt: skip
# word characters -> a, "-" stays, "." -> ":" (dotted tokens such as JWTs stay one run)
_WORD_SHAPE: Final = _table({_LETTERS + _DIGITS + b"_": b"a", b"-": b"-", b".": b":"}, b".")
_NUMBER_CHARS = b"9,T]"
_CLUSTER_REST = re.compile(rb"[9,T\]]*")  # the rest of a number cluster
_TOKEN = re.compile(rb"[a:\-]*")
_LONG_WORD = b"a" * 16
_SPELLED_AT = (b"At]", b"At,]")  # "at]", "at )" in the number shape


def _number_windows(shape: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each number-like cluster that holds a run of 3+ digits.

    A cluster is digits and number punctuation. Every kind of number (SSN, card, phone,
    IBAN) has such a run, and ordinary text rarely does.
    """
    position = shape.find(b"999")
    while position >= 0:
        start = position
        while start > 0 and shape[start - 1] in _NUMBER_CHARS and position - start < 64:
            start -= 1
        rest = _CLUSTER_REST.match(shape, position + 3)  # in C: no Python loop per digit
        end = rest.end() if rest else position + 3
        yield start, end
        position = shape.find(b"999", end)


def _word_windows(shape: bytes) -> Iterator[tuple[int, int]]:
    """Windows around runs of 16+ word characters (every secret shape has one)."""
    size = len(shape)
    position = shape.find(_LONG_WORD)
    while position >= 0:
        match = _TOKEN.match(shape, position)
        token_end = match.end() if match else position + len(_LONG_WORD)
        # 80 bytes back: a key's "-----BEGIN ... PRIVATE KEY-----" header, a URL's host.
        yield max(0, position - 80), min(size, token_end + 48)
        position = shape.find(_LONG_WORD, token_end)


# -- detection on bytes ------------------------------------------------------------------------

_Found = tuple[str, int, int, str]  # kind, start, end, mask (byte offsets)


_NOT_DIGITS: Final = bytes(c for c in range(256) if not 48 <= c <= 57)


def _digits(match: bytes) -> str:
    return match.translate(None, _NOT_DIGITS).decode("ascii")  # in C: no loop per digit


def _number_matches(
    data: bytes, shape: bytes, start: int, end: int, ssn_keys: bool = True
) -> Iterator[_Found]:
    """`ssn_keys` False: the text has no "ssn" or "social" anywhere (checked once)."""
    # pos/endpos, not a slice: look-arounds see the real characters around the cluster.
    if shape.count(b"9", start, end) >= 8:  # phone 8+, SSN 9, card 13+ digits
        for match in _NUMBERS.finditer(data, max(0, start - 2), min(len(data), end + 2)):
            kind = match.lastgroup
            digits = _digits(match.group(0))
            begin, finish = match.start(), match.end()
            if kind == "ssn":
                yield "ssn", begin, finish, SSN_MASK
            elif kind == "card" and _card_ok(digits):
                yield "card", begin, finish, f"[CARD ending {digits[-4:]}]"
            elif kind == "phone" and 8 <= len(digits) <= 15:
                yield "phone", begin, finish, f"[PHONE ending {digits[-2:]}]"
        if ssn_keys and end - start >= 9:  # nine digits under an SSN-like key
            before = max(0, start - 40)
            lowered = data[before:end].lower()
            if b"ssn" in lowered or b"social" in lowered:
                for match in _SSN_BY_KEY.finditer(data, before, min(len(data), end + 2)):
                    yield "ssn", match.start(2), match.end(2), SSN_MASK


def _iban_matches(data: bytes, low: int, high: int) -> Iterator[_Found]:
    for match in _IBAN.finditer(data, low, high):
        found = _iban(match.group(0).decode("ascii"))
        if found is not None:
            yield "iban", match.start(), match.start() + found[0], found[1]


def _iban(value: str) -> tuple[int, str] | None:
    """(length used, mask) for the IBAN at the start of `value`; a greedy match may have
    swallowed the next word, so exactly the country's length is taken."""
    country = value[:2].upper()
    length = _IBAN_LENGTHS.get(country)
    if length is None:
        return None
    if " " not in value[:length]:  # the usual, compact form: no loop per character
        if len(value) < length or not iban_ok(value[:length]):
            return None
        return length, f"[IBAN {country} ending {value[length - 4 : length]}]"
    taken = 0
    for offset, char in enumerate(value):
        if char != " ":
            taken += 1
        if taken == length:
            candidate = value[: offset + 1]
            if iban_ok(candidate):
                tail = candidate.replace(" ", "")[-4:]
                return offset + 1, f"[IBAN {country} ending {tail}]"
            return None
    return None


def _email_matches(data: bytes, first_only: bool) -> Iterator[_Found]:
    # The expression finds each "@" with a local-part character before it and a domain
    # after it, in C; Python looks only at those ("@@@@..." costs no Python loop).
    for match in _EMAIL_AT.finditer(data):
        position = match.start()
        segment = data[max(0, position - 64) : position]
        begin = position - (len(segment) - len(segment.rstrip(_EMAIL_LOCAL)))
        if data[begin] in _LETTERS + _DIGITS:
            name = match.group(1).decode("ascii")
            yield "email", begin, match.end(), f"[EMAIL …@{name}]"
            if first_only:
                return


def _spelled_email_matches(data: bytes, shape: bytes) -> Iterator[_Found]:
    """ "name [at] example [dot] com": only where "at" is followed by a closing bracket."""
    windows: list[tuple[int, int]] = []
    for needle in _SPELLED_AT:
        position = shape.find(needle)
        while position >= 0:
            windows.append((max(0, position - 70), min(len(data), position + 140)))
            position = shape.find(needle, position + 1)
    windows.sort()
    for start, end in _merged(windows):
        for match in _EMAIL_SPELLED.finditer(data, start, end):
            yield "email", match.start(), match.end(), "[EMAIL]"


def _secret_matches(data: bytes, start: int, end: int) -> Iterator[_Found]:
    for match in _SECRET.finditer(data, start, end):
        kind = match.lastgroup or "api_key"
        yield kind, match.start(), match.end(), f"[SECRET {kind}]"


def _merged(windows: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Overlapping (start, end) windows, in order, merged: every byte is scanned once.

    Without this, text made of the needles ("at]at]at]...", 16-letter words) makes every
    byte part of dozens of windows, and each window runs a regular expression again.
    """
    current: tuple[int, int] | None = None
    for start, end in windows:
        if current is not None and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            yield current
        current = (start, end)
    if current is not None:
        yield current


def _scan(data: bytes, *, first_only: bool, number_shape: bytes | None = None) -> list[_Found]:
    """Matches in UTF-8 `data`, earliest first, overlaps resolved (specific kinds win)."""
    found: list[_Found] = []
    if number_shape is None:
        number_shape = data.translate(NUMBER_SHAPE)
    iban_regions: list[tuple[int, int]] = []
    lowered = data.lower()
    ssn_keys = b"ssn" in lowered or b"social" in lowered
    for start, end in _number_windows(number_shape):
        found.extend(_number_matches(data, number_shape, start, end, ssn_keys))
        # An IBAN starts up to 34 characters before a digit run (letters may split the
        # BBAN) and holds at least ten digits in all.
        low, high = max(0, start - 36), min(len(data), end + 36)
        if number_shape.count(b"9", low, high) >= 10:
            iban_regions.append((low, high))
    for low, high in _merged(iban_regions):
        found.extend(_iban_matches(data, low, high))
    emails = len(found)
    found.extend(_email_matches(data, first_only))
    if not first_only or len(found) == emails:
        # A spelled-out address only matters when no plain one decided the kind already.
        found.extend(_spelled_email_matches(data, number_shape))
    word_shape = data.translate(_WORD_SHAPE)
    for start, end in _merged(_word_windows(word_shape)):
        found.extend(_secret_matches(data, start, end))
    if len(found) <= 1:
        return found
    found.sort(key=lambda f: (f[1], _PRECEDENCE[f[0]], -f[2]))
    kept: list[_Found] = []
    for item in found:
        if kept and item[1] < kept[-1][2]:
            continue  # overlapping windows report a match twice; overlaps keep the first
        kept.append(item)
    return kept


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def find_pii(text: str) -> list[PiiMatch]:
    """Every PII/secret span in `text` as it is (no decoding), earliest first.

    Where two kinds overlap the earlier, then the more specific one wins: secrets, SSN,
    card, IBAN, email, phone.
    """
    if not text:
        return []
    data = _encode(text)
    found = _scan(data, first_only=False)
    if data.isascii() or not found:
        return [PiiMatch(kind, start, end, mask) for kind, start, end, mask in found]
    # Byte offsets back to character offsets (only for non-ASCII text).
    return [
        PiiMatch(
            kind,
            len(data[:start].decode("utf-8", "surrogatepass")),
            len(data[:end].decode("utf-8", "surrogatepass")),
            mask,
        )
        for kind, start, end, mask in found
    ]


def mask_pii(text: str, kinds: Iterable[str] | None = None) -> str:
    """Mask every PII and secret span found (only `kinds`, if given); the rest is unchanged.

    SSN -> ``[SSN]``, card -> ``[CARD ending 1111]`` (the masks of the earlier
    ``gate_proxy.core.pii.mask_pii``), IBAN -> ``[IBAN DE ending 3000]``, email ->
    ``[EMAIL …@example.com]`` (the domain stays: reviewers see where mail goes), phone ->
    ``[PHONE ending 00]``, secrets -> ``[SECRET aws_access_key]``. Used for stored previews;
    the dashboard (``core/pii.py``) masks ``kinds=("ssn", "card")``.
    """
    if not text:
        return text
    matches = find_pii(text)
    if kinds is not None:
        wanted = frozenset(kinds)
        matches = [m for m in matches if m.kind in wanted]
    if not matches:
        return text
    parts: list[str] = []
    position = 0
    for match in matches:
        parts.append(text[position : match.start])
        parts.append(match.mask)
        position = match.end
    parts.append(text[position:])
    return "".join(parts)


# -- the analyzer --------------------------------------------------------------------------

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
