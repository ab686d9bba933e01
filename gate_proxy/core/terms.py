"""Payload normalisation and word-boundary term matching for `block_if_terms`.

Pipeline (applied to payload and terms alike):

1. JSON payloads are reduced to their decoded string keys and values (`payload_strings`),
   so escapes such as ``\\u0073ue`` cannot hide a term. Text that still holds
   ``\\uXXXX``/``\\xXX`` escapes, ``%XX`` URL encoding or HTML entities is also scanned
   decoded (one round each).
2. Unicode NFKD: compatibility forms (fullwidth ``ｓ``, math ``𝐬``, ligatures) decompose.
3. Look-alikes: a non-ASCII character that imitates ASCII (Unicode TR39 confusables, see
   `gate_proxy.core.confusables`) is read as that ASCII, so Cyrillic ``ѕ`` is ``s``. ASCII
   itself is never folded (TR39 would read ``turn`` as ``tum``).
4. Casefold; combining marks are dropped (``sué`` -> ``sue``).
5. Invisible characters are dropped (not spaced): format characters (Cf: zero-width
   space/joiners, soft hyphen, bidi controls, tag characters, BOM, U+180E), control
   characters (Cc) other than the white-space ones (tab, LF, VT, FF, CR, NEL), and the
   Hangul filler letters. So ``s<ZWSP>ue`` and ``s<NUL>ue`` read as ``sue``.
6. Leet map: 0->o 1->i 3->e 4->a 5->s 7->t @->a $->s !->i |->l.
7. Every other non-alphanumeric character becomes a space.
8. Runs of two or more single-character tokens are joined (``s u e`` -> ``sue``).

The symbols @ $ ! | are ambiguous: leet in ``$ue`` but punctuation in ``Legal-Action!!`` or
``legal@action``. The matcher therefore reads the text twice, once with them as letters
(the `normalize_text` form) and once with them as separators, and a term found in either
reading matches. Terms then match on whole words: ``sue`` matches ``S.U.E``, ``5ue`` and
``$ue`` but not ``issue``, ``pursue`` or ``suede``.

Speed (bodies reach 10 MiB and the scan runs on the event loop): a reading is built by
C-level passes (bytes.translate for ASCII and for accented or typographic prose, a
memoised str.translate table otherwise), collapsed to single spaces and searched with one
compiled regular expression holding every term. No Python code runs per token or per
character of the payload, except the HTML-entity and %XX decoders (per escape).
"""

import functools
import html
import itertools
import json
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator, Sequence

from gate_proxy.core.confusables import ascii_lookalike

__all__ = [
    "NOT_JSON",
    "TermMatcher",
    "decode_json",
    "iter_json_strings",
    "json_strings",
    "normalize_text",
    "payload_strings",
]

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


class _NotJson:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON = _NotJson()
"""Returned by `decode_json` when the text is not a JSON object, array or string."""


def _reject_constant(name: str) -> object:
    # NaN/Infinity are not JSON; accepting them would let NaN slip past min/max checks.
    raise ValueError(f"{name} is not valid JSON")


# Objects decode to tuples of (key, value) pairs so duplicate keys stay visible: a parser
# that keeps the first duplicate upstream must not see a value we never checked.
_PAIRS_DECODER = json.JSONDecoder(object_pairs_hook=tuple, parse_constant=_reject_constant)


def decode_json(text: str) -> object:
    """Decode a JSON object, array or string; objects become tuples of (key, value) pairs.

    Returns `NOT_JSON` for anything else (plain text, bare numbers, invalid JSON).
    """
    stripped = text.lstrip(" \t\r\n\ufeff")
    if not stripped or stripped[0] not in '{["':
        return NOT_JSON
    try:
        return _PAIRS_DECODER.decode(stripped)
    except (ValueError, RecursionError):
        return NOT_JSON


def json_strings(text: str, value: object) -> str:
    """Decoded strings of `value` (already decoded from `text`), joined by newlines."""
    if "\\" not in text:
        # Without backslashes a valid JSON text has no escapes, so its string literals are
        # exactly the odd segments between double quotes; much faster than walking.
        return "\n".join(text.split('"')[1::2])
    return "\n".join(iter_json_strings(value))


def payload_strings(payload: str) -> str:
    """Decoded string keys and values of a JSON payload joined by newlines; else the payload.

    JSON here means an object, array or string; other text (including bare JSON numbers)
    is returned unchanged. Values of duplicate keys are all included.
    """
    value = decode_json(payload)
    if value is NOT_JSON:
        return payload
    return json_strings(payload, value)


def iter_json_strings(value: object) -> Iterator[str]:
    """Yield every string key and value of a decoded JSON value, in document order.

    Objects may be dicts or tuples of (key, value) pairs (the duplicate-preserving form
    that `policy.evaluate` parses into). Iterative, so deep nesting cannot overflow.
    """
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                stack.append(child)
                stack.append(key)
        elif isinstance(item, tuple):  # object as (key, value) pairs
            for key, child in reversed(item):
                stack.append(child)
                stack.append(key)
        elif isinstance(item, list):
            stack.extend(reversed(item))


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


# How a term is searched. The reading is collapsed to exactly one space between tokens, so
# a single-character token is " X " and fixed-width look-arounds can tell whether a
# neighbouring token is a single character (and so part of a spelled-out run). One regex
# holds every term; it is built as a trie of "atoms" (a character, a space or a
# look-around) so the engine tests each distinct first letter once per position, not
# every term.
_NO_SINGLE_BEFORE = r"(?<! [^ ] [^ ])"  # placed after a token's first character
_NO_SINGLE_AFTER = r"(?! [^ ] )"  # placed after a token's last character
_MAX_SPELLINGS = 64  # per form; past that, one nested alternative instead of a list

_Atoms = tuple[str, ...]


def _term_forms(term: str) -> list[tuple[str, ...]]:
    """The term's words in each reading (single-character runs joined), without repeats."""
    forms: list[tuple[str, ...]] = []
    for reading in _readings(term):
        words = tuple(_join_single_char_runs(reading.split()))
        if words and words not in forms:
            forms.append(words)
    return forms


def _joined(parts: list[_Atoms]) -> _Atoms:
    atoms: list[str] = []
    for index, part in enumerate(parts):
        if index:
            atoms.append(" ")
        atoms.extend(part)
    return tuple(atoms)


def _letters(word: str) -> _Atoms:
    return tuple(re.escape(letter) for letter in word)


def _spelled(word: str) -> _Atoms:
    """A word spelled out as single-character tokens that form a whole run by themselves."""
    atoms = list(_joined([(letter,) for letter in _letters(word)]))
    atoms.insert(1, _NO_SINGLE_BEFORE)
    atoms.append(_NO_SINGLE_AFTER)
    return tuple(atoms)


def _form_alternatives(words: tuple[str, ...]) -> list[_Atoms]:
    """Atom sequences (after the leading space) that match one form of a term.

    With runs of single-character tokens joined into one word, a form matches (a) as its
    words in a row, (b) spelled out inside a run (``a s u e`` holds ``sue``), or (c) with
    some of its words spelled out, each as a whole run (``l e g a l action``).
    """
    alternatives = [_joined([_letters(word) for word in words])]
    compact = "".join(words)
    if len(compact) > 1:
        alternatives.append(_joined([(letter,) for letter in _letters(compact)]))
    if len(words) > 1:
        # A one-letter word must stand alone: next to another it would join a run.
        choices = [
            [_spelled(word)] if len(word) == 1 else [_letters(word), _spelled(word)]
            for word in words
        ]
        spellings: list[list[_Atoms]] = [[]]
        for options in choices:
            spellings = [[*done, option] for done in spellings for option in options]
            if len(spellings) > _MAX_SPELLINGS:
                nested = [
                    "(?:" + "|".join("".join(o) for o in options) + ")" for options in choices
                ]
                alternatives.append(_joined([(part,) for part in nested]))
                break
        else:
            alternatives.extend(_joined(parts) for parts in spellings)
    return list(dict.fromkeys(alternatives))


def _trie_regex(alternatives: list[_Atoms]) -> str:
    """A regex matching any of the atom sequences, with common prefixes shared."""
    trie: dict[str, dict] = {}
    for atoms in alternatives:
        node = trie
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[""] = {}  # end of an alternative
    return _trie_node_regex(trie)


def _trie_node_regex(node: dict[str, dict]) -> str:
    branches = [atom + _trie_node_regex(child) for atom, child in node.items() if atom]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 and "" not in node else f"(?:{'|'.join(branches)})"
    return f"{body}?" if "" in node else body


class TermMatcher:
    """Whole-word matcher for a fixed list of terms; compile once per policy."""

    __slots__ = ("_alternatives", "_cache", "terms")

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms: tuple[str, ...] = tuple(terms)
        alternatives: list[list[_Atoms]] = []
        for term in self.terms:
            # A term is normalised in both readings so "Yahoo!" also matches a plain "yahoo".
            forms = _term_forms(term)
            if not forms:
                raise ValueError(f"term {term!r} has no letters or digits after normalisation")
            alternatives.append([atoms for words in forms for atoms in _form_alternatives(words)])
        self._alternatives = tuple(alternatives)
        self._cache: dict[tuple[int, int], re.Pattern[str]] = {}
        if self.terms:
            self._pattern(len(self.terms))  # compile at policy load, not on a request
        # Build the Unicode tables at policy load, not on the first request that needs them.
        _common_non_ascii()

    def __repr__(self) -> str:
        return f"TermMatcher({list(self.terms)!r})"

    def first_match(self, payload: str) -> str | None:
        """Return the first term (in the order given) found in the payload, or None."""
        return self.first_match_in_text(payload_strings(payload))

    def first_match_in_text(self, text: str) -> str | None:
        """Like `first_match`, but for text already reduced by `payload_strings`."""
        limit = len(self.terms)
        if not limit or not text:
            return None
        best: int | None = None
        for variant in _decoded_variants(text):
            for reading in _readings(variant):
                found = self._first_index(_collapsed(reading), limit)
                if found is not None:
                    best = limit = found
                    if found == 0:
                        return self.terms[0]
        return None if best is None else self.terms[best]

    def _first_index(self, reading: str, limit: int) -> int | None:
        """Lowest term index below `limit` in a collapsed reading, or None."""
        best: int | None = None
        position = 0
        while limit > 0:
            match = self._pattern(limit).search(reading, position)
            if match is None:
                break
            # The leftmost match is some term; earlier terms may still occur further on,
            # but not before this match (it is the leftmost) and not at it (`_term_at`
            # takes the earliest term there), so each pass starts where the last one hit.
            best = limit = self._term_at(reading, match.start(), limit)
            position = match.start() + 1
        return best

    def _term_at(self, reading: str, start: int, limit: int) -> int:
        """Index of the first term below `limit` that matches at `start`."""
        for index in range(limit):
            if self._pattern(1, first=index).match(reading, start):
                return index
        # Unreachable: the combined pattern is the union of the per-term ones. Should it
        # ever happen, report the last candidate rather than let the term through.
        return limit - 1

    def _pattern(self, count: int, first: int = 0) -> re.Pattern[str]:
        """One regex for terms first..first+count-1 (compiled once, on first use)."""
        key = (first, count)
        pattern = self._cache.get(key)
        if pattern is None:
            chosen = self._alternatives[first : first + count]
            trie = _trie_regex([atoms for alternatives in chosen for atoms in alternatives])
            pattern = re.compile(f" {trie}(?= )")
            self._cache[key] = pattern
        return pattern
