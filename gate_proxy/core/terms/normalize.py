"""Normalisation, steps 1-8 of the package docstring: decoded variants of a text (the JSON
part of step 1 is `json_text`), its readings (Unicode folding, look-alikes, leet,
separators) and joined single-character runs. Terms and payloads alike. PURE.
"""

import functools
import html
import itertools
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator

from gate_proxy.core.confusables import ascii_lookalike

_LEET_DIGITS = dict(zip("013457", "oieast", strict=True))
_LEET_SYMBOLS = dict(zip("@$!|", "asil", strict=True))

# Letters that render as nothing; NFKC maps U+3164 to U+1160, so both are listed.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
# The control characters that are Unicode White_Space: they separate words.
_CONTROL_SPACES = frozenset("\t\n\v\f\r\x85")


def _is_invisible(char: str) -> bool:
    """Step 5: characters that render as nothing and are deleted, not spaced."""
    category = unicodedata.category(char)
    return (
        category == "Cf"
        or category[0] == "M"
        or (category == "Cc" and char not in _CONTROL_SPACES)
        or char in _INVISIBLE_LETTERS
    )


def _ascii_reading(char: str) -> str:
    """Steps 4-7 for one ASCII character; @ $ ! | stay as they are (see `_readings`)."""
    if _is_invisible(char):
        return ""
    if char in _LEET_SYMBOLS:
        return char
    if char in _LEET_DIGITS:
        return _LEET_DIGITS[char]
    return char.lower() if char.isalnum() else " "


def _unicode_reading(char: str) -> str:
    """Steps 3-7 for one character of NFKD text."""
    if char.isascii():
        return _ascii_reading(char)
    if _is_invisible(char):
        return ""
    lookalike = ascii_lookalike(char)
    if lookalike is None:
        # Some letters are listed only in one case: look at the case-folded form too.
        lowered = unicodedata.normalize("NFKD", char.casefold())
        lookalike = "".join(ascii_lookalike(c) or c for c in lowered)
    folded = unicodedata.normalize("NFKD", lookalike.casefold())
    return "".join(_ascii_reading(c) if c.isascii() else _letter_or_space(c) for c in folded)


def _letter_or_space(char: str) -> str:
    if _is_invisible(char):
        return ""
    return char if char.isalnum() else " "


# ASCII fast path: one bytes.translate does steps 4-7 at C speed (NFKD is the identity on
# ASCII and no ASCII character is a look-alike we fold).
_ASCII_TABLE = bytes(ord(_ascii_reading(chr(code)) or " ") for code in range(128)) + bytes(128)
_ASCII_DELETE = bytes(code for code in range(128) if not _ascii_reading(chr(code)))
_UNUSUAL_CATEGORIES = frozenset(("Cn", "Co", "Cs"))


# Above U+3FFFF only the start of plane 14 (tags, variation selectors) is assigned; the rest
# is unassigned or private use (a test checks this against `unicodedata`).
_UNASSIGNED_ASTRAL = re.compile("[\U00040000-\U000dffff\U000e1000-\U0010ffff]")


def _is_cached(codepoint: int) -> bool:
    return codepoint < 0x40000 or 0xE0000 <= codepoint < 0xE1000


class _UnicodeTable(dict[int, str]):
    """str.translate table for NFKD text, filled lazily (one entry per code point).

    Bounded: it remembers planes 0-3 and the assigned start of plane 14 (at most 266,240
    entries); the unassigned and private-use planes above read as a space and are
    replaced in bulk beforehand (`_UNASSIGNED_ASTRAL`), so a hostile body of a million
    distinct such characters costs one C-speed substitution, not a million calls here.
    """

    def __missing__(self, codepoint: int) -> str:
        reading = _unicode_reading(chr(codepoint))
        if _is_cached(codepoint):
            self[codepoint] = reading
        return reading


_UNICODE_TABLE = _UnicodeTable()
_MULTIPLE_SPACES = re.compile(" {2,}")


def _class_of(codepoints: list[int]) -> str:
    """Regex character-class body for the code points, as ranges."""
    ranges: list[str] = []
    start = previous = -2
    for code in [*sorted(codepoints), -1]:
        if code == previous + 1:
            previous = code
            continue
        if start >= 0:
            ranges.append(
                f"\\U{start:08x}" if start == previous else f"\\U{start:08x}-\\U{previous:08x}"
            )
        start = previous = code
    return "".join(ranges)


@functools.cache
def _common_non_ascii() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(a character outside the simple set, a simple character that reads as a space).

    The simple set is ASCII plus the common non-ASCII characters (Latin-1 to CJK
    punctuation, and U+FE00-U+FFFF) that read as nothing (combining accents, zero-width
    and control characters) or as a space (typographic quotes, dashes, spaces). NFKD text
    made only of those, the usual accented or typographic prose, takes the bytes path.
    Built once (about 16,000 table entries, some 50 ms), when the first matcher is made.
    """
    dropped: list[int] = []
    spaced: list[int] = []
    for code in itertools.chain(range(0x80, 0x3040), range(0xFE00, 0x10000)):
        if unicodedata.category(chr(code)) in _UNUSUAL_CATEGORIES:
            continue
        reading = _UNICODE_TABLE[code]
        if reading == "":
            dropped.append(code)
        elif reading == " ":
            spaced.append(code)
    other = re.compile(f"[^\\x00-\\x7f{_class_of(dropped)}{_class_of(spaced)}]")
    return other, re.compile(f"[{_class_of(spaced)}]")


def _ascii_kept_reading(data: bytes) -> str:
    return data.translate(_ASCII_TABLE, _ASCII_DELETE).decode("ascii")


def _kept_reading(text: str) -> str:
    """Steps 2-7 with @ $ ! | kept: letters and digits, spaces, and those four symbols."""
    if text.isascii():
        return _ascii_kept_reading(text.encode("ascii"))
    decomposed = unicodedata.normalize("NFKD", text)
    other, spaced = _common_non_ascii()
    if other.search(decomposed) is None:
        # Same result as the table, at C speed: spaces in, then the rest read as nothing.
        return _ascii_kept_reading(spaced.sub(" ", decomposed).encode("ascii", "ignore"))
    return _UNASSIGNED_ASTRAL.sub(" ", decomposed).translate(_UNICODE_TABLE)


def _readings(text: str) -> tuple[str, ...]:
    """The leet reading (@ $ ! | as letters) and, if it differs, the plain one (as spaces).

    Each is padded with a space at both ends; tokens may be separated by several spaces.
    """
    kept = _kept_reading(text)
    if not any(symbol in kept for symbol in _LEET_SYMBOLS):
        return (f" {kept} ",)
    leet = plain = kept
    for symbol, letter in _LEET_SYMBOLS.items():
        leet = leet.replace(symbol, letter)
        plain = plain.replace(symbol, " ")
    return f" {leet} ", f" {plain} "


def _collapsed(reading: str) -> str:
    """The reading with exactly one space between tokens (padding kept)."""
    # A few C passes halve the usual short runs (punctuation before a space) faster than
    # a regex substitution per run; the regex takes whatever long runs are left.
    for _ in range(4):
        if "  " not in reading:
            return reading
        reading = reading.replace("  ", " ")
    return _MULTIPLE_SPACES.sub(" ", reading) if "  " in reading else reading


def _join_single_char_runs(tokens: list[str]) -> list[str]:
    """Tokens with every run of two or more single-character tokens joined into one."""
    joined: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:  # the empty sentinel flushes the last run
        if len(token) == 1:
            run.append(token)
            continue
        if len(run) > 1:
            joined.append("".join(run))
        else:
            joined.extend(run)
        run = []
        if token:
            joined.append(token)
    return joined


def normalize_text(text: str) -> str:
    """Normalise text for term matching (see module docstring); tokens joined by one space."""
    return " ".join(_join_single_char_runs(_readings(text)[0].split()))


_ESCAPE = re.compile(r"\\u[0-9A-Fa-f]{4}|\\x[0-9A-Fa-f]{2}")
# A backslash that does not start a \uXXXX or \xXX escape. Doubling these makes Python's
# unicode_escape codec (C speed) decode exactly those two forms and keep the rest as is.
_LITERAL_BACKSLASH = re.compile(r"\\(?!u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2})")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _decode_escapes(text: str) -> str:
    """One round of \\uXXXX and \\xXX escapes decoded; every other backslash kept."""
    protected = _LITERAL_BACKSLASH.sub(r"\\\\", text)
    # backslashreplace turns non-Latin-1 characters into escapes the codec decodes back.
    return protected.encode("latin-1", "backslashreplace").decode("unicode_escape")


def _decoded_variants(text: str) -> Iterator[str]:
    """The text, then decoded copies of it, so encodings cannot hide a term.

    One round each of \\uXXXX/\\xXX escapes, %XX URL encoding and HTML entities; each is
    computed only when the text contains its escape character, so plain text costs nothing.
    """
    yield text
    if "\\" in text and _ESCAPE.search(text):
        yield _decode_escapes(text)
    if "%" in text and _PERCENT_ESCAPE.search(text):
        yield urllib.parse.unquote_plus(text)
    if "&" in text:
        yield html.unescape(text)


def _term_forms(term: str) -> list[tuple[str, ...]]:
    """The term's words in each reading (single-character runs joined), without repeats."""
    forms: list[tuple[str, ...]] = []
    for reading in _readings(term):
        words = tuple(_join_single_char_runs(reading.split()))
        if words and words not in forms:
            forms.append(words)
    return forms
