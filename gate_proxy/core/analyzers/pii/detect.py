"""Where PII and secrets are in a text: shapes find the places worth a look, validating
expressions confirm them (see the package docstring for the kinds and the speed). PURE."""

import re
from collections.abc import Iterable, Iterator
from typing import Final

from gate_proxy.core.analyzers.pii.kinds import _PRECEDENCE, SSN_MASK, PiiMatch
from gate_proxy.core.analyzers.pii.validators import _IBAN_LENGTHS, _card_ok, iban_ok

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
    # Whether "ssn" or "social" occurs anywhere, read once and only when a cluster could
    # hold nine digits under such a key (the only place _number_matches looks at it).
    ssn_keys: bool | None = None
    for start, end in _number_windows(number_shape):
        if ssn_keys is None and end - start >= 9 and number_shape.count(b"9", start, end) >= 8:
            lowered = data.lower()
            ssn_keys = b"ssn" in lowered or b"social" in lowered
        found.extend(_number_matches(data, number_shape, start, end, bool(ssn_keys)))
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
