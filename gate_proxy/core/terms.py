"""Payload normalisation and word-boundary term matching for `block_if_terms`.

Pipeline (applied to payload and terms alike):

1. JSON payloads are reduced to their decoded string keys and values (`payload_strings`),
   so escapes such as ``\\u0073ue`` cannot hide a term.
2. Unicode NFKC, then casefold, then canonical decomposition with combining marks dropped
   (``sué`` -> ``sue``).
3. Invisible characters are dropped: every format character (category Cf: zero-width
   space/joiners, soft hyphen, bidi controls, tag characters, BOM, U+180E) and the Hangul
   filler letters. Dropping (not spacing) them means ``s<ZWSP>ue`` reads as ``sue``.
4. Leet map: 0->o 1->i 3->e 4->a 5->s 7->t @->a $->s !->i |->l.
5. Every other non-alphanumeric character becomes a space; whitespace is collapsed.
6. Runs of two or more single-character tokens are joined (``s u e`` -> ``sue``).

The symbols @ $ ! | are ambiguous: leet in ``$ue`` but punctuation in ``Legal-Action!!`` or
``legal@action``. The matcher therefore reads the text twice, once with them as letters
(the `normalize_text` form) and once with them as separators, and a term found in either
reading matches. Terms then match on whole words: ``sue`` matches ``S.U.E``, ``5ue`` and
``$ue`` but not ``issue``, ``pursue`` or ``suede``.
"""

import html
import json
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator, Sequence

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
_LEET = _LEET_DIGITS | _LEET_SYMBOLS

# Letters that render as nothing; NFKC maps U+3164 to U+1160, so both are listed.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def _ascii_byte_table(leet: dict[str, str]) -> bytes:
    table = bytearray(b" " * 256)
    for code in range(128):
        char = chr(code)
        if char in leet:
            table[code] = ord(leet[char])
        elif char.isalnum():
            table[code] = ord(char.lower())
    return bytes(table)


# ASCII fast path: NFKC is the identity on ASCII and casefold is lower(), so one bytes
# translate does steps 2-5 at C speed. "Leet" reads @$!| as letters, "plain" as spaces.
_ASCII_LEET = _ascii_byte_table(_LEET)
_ASCII_PLAIN = _ascii_byte_table(_LEET_DIGITS)
_ASCII_KEEP_SYMBOLS = _ascii_byte_table(_LEET_DIGITS | {symbol: symbol for symbol in _LEET_SYMBOLS})
_SINGLE_CHARACTERS = frozenset(bytes([code]) for code in set(_ASCII_LEET) - {32})
# Two adjacent single-character tokens in a space-padded reading (spaces not collapsed).
_ASCII_RUN_RE = re.compile(rb" [a-z0-9] +[a-z0-9] ")
# Past this many tokens holding @ $ ! |, re-splitting the whole text is cheaper.
_MAX_SYMBOL_TOKENS = 32
_LEET_SYMBOL_BYTES = tuple(symbol.encode("ascii") for symbol in _LEET_SYMBOLS)


class _UnicodeTable(dict[int, str | None]):
    """str.translate table for non-ASCII text, filled lazily (one entry per code point)."""

    _MAX_ENTRIES = 65_536  # bound the memo so hostile payloads cannot grow it without limit

    def __init__(self, leet: dict[str, str]) -> None:
        super().__init__()
        self._leet = leet

    def __missing__(self, codepoint: int) -> str | None:
        char = chr(codepoint)
        category = unicodedata.category(char)
        mapped: str | None
        if category == "Cf" or category[0] == "M" or char in _INVISIBLE_LETTERS:
            mapped = None
        elif char in self._leet:
            mapped = self._leet[char]
        elif char.isalnum():
            mapped = char
        else:
            mapped = " "
        if len(self) < self._MAX_ENTRIES:
            self[codepoint] = mapped
        return mapped


_UNICODE_LEET = _UnicodeTable(_LEET)
_UNICODE_PLAIN = _UnicodeTable(_LEET_DIGITS)


def _folded(text: str) -> str:
    """Step 2: NFKC, casefold, then decomposed so combining marks can be dropped."""
    return unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())


def _spaced(text: str) -> str:
    """Steps 2-5 (leet reading) without collapsing: letters/digits kept, the rest spaces."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_LEET).decode("ascii")
    return _folded(text).translate(_UNICODE_LEET)


def _spaced_readings(text: str) -> tuple[str, ...]:
    """The leet reading, plus the plain reading (@$!| as spaces) when it differs."""
    folded = _folded(text)
    leet = folded.translate(_UNICODE_LEET)
    plain = folded.translate(_UNICODE_PLAIN)
    return (leet,) if plain == leet else (leet, plain)


def _join_single_char_runs(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Return (tokens with runs of >=2 single-character tokens joined, the joined runs)."""
    joined: list[str] = []
    runs: list[str] = []
    run: list[str] = []
    for token in tokens:
        if len(token) == 1:
            run.append(token)
            continue
        if run:
            _flush_run(run, joined, runs)
            run = []
        joined.append(token)
    if run:
        _flush_run(run, joined, runs)
    return joined, runs


def _flush_run(run: list[str], joined: list[str], runs: list[str]) -> None:
    if len(run) == 1:
        joined.append(run[0])
    else:
        word = "".join(run)
        joined.append(word)
        runs.append(word)


def normalize_text(text: str) -> str:
    """Normalise text for term matching (see module docstring); tokens joined by one space."""
    joined, _ = _join_single_char_runs(_spaced(text).split())
    return " ".join(joined)


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


_UNICODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\x([0-9A-Fa-f]{2})")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _decode_unicode_escape(match: re.Match[str]) -> str:
    return chr(int(match.group(1) or match.group(2), 16))


def _with_decoded_variants(text: str) -> str:
    """Append decoded copies of escape-bearing text so encodings cannot hide a term.

    One round each of \\uXXXX/\\xXX escapes, %XX URL encoding and HTML entities; only
    computed when the text contains the escape character, so plain text costs nothing.
    """
    variants = [text]
    if "\\" in text:
        variants.append(_UNICODE_ESCAPE.sub(_decode_unicode_escape, text))
    if "%" in text and _PERCENT_ESCAPE.search(text):
        variants.append(urllib.parse.unquote_plus(text))
    if "&" in text:
        variants.append(html.unescape(text))
    return text if len(variants) == 1 else "\n".join(variants)


class TermMatcher:
    """Whole-word matcher for a fixed list of terms; compile once per policy."""

    __slots__ = ("_ascii_only", "_entries", "_first_words", "_first_words_ascii", "terms")

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms: tuple[str, ...] = tuple(terms)
        # Per term: (" needle " forms, compact forms for single-character runs). A term is
        # normalised in both readings so "Yahoo!" also matches a plain "yahoo".
        entries: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        for term in self.terms:
            forms = [" ".join(_join_single_char_runs(r.split())[0]) for r in _spaced_readings(term)]
            forms = [form for form in dict.fromkeys(forms) if form]
            if not forms:
                raise ValueError(f"term {term!r} has no letters or digits after normalisation")
            needles = tuple(f" {form} " for form in forms)
            compacts = tuple(c for c in (form.replace(" ", "") for form in forms) if len(c) > 1)
            entries.append((needles, compacts))
        self._entries = tuple(entries)
        first_words = frozenset(n.split()[0] for needles, _ in entries for n in needles)
        self._first_words = first_words
        self._first_words_ascii = frozenset(w.encode("ascii") for w in first_words if w.isascii())
        self._ascii_only = len(self._first_words_ascii) == len(first_words)

    def __repr__(self) -> str:
        return f"TermMatcher({list(self.terms)!r})"

    def first_match(self, payload: str) -> str | None:
        """Return the first term (in the order given) found in the payload, or None."""
        return self.first_match_in_text(payload_strings(payload))

    def first_match_in_text(self, text: str) -> str | None:
        """Like `first_match`, but for text already reduced by `payload_strings`."""
        if not self._entries or not text:
            return None
        text = _with_decoded_variants(text)
        if text.isascii() and self._ascii_only and not self._ascii_may_match(text.encode("ascii")):
            return None
        best: int | None = None
        for reading in _spaced_readings(text):
            index = self._first_index(reading.split())
            if index is not None and (best is None or index < best):
                best = index
        return None if best is None else self.terms[best]

    def _ascii_may_match(self, data: bytes) -> bool:
        """Cheap pre-check on ASCII text: False means no term can match in either reading.

        A term can only match if its first word is a token or a run of single-character
        tokens exists. The plain reading differs from the leet one only inside tokens that
        hold @ $ ! |, so only those tokens are re-split.
        """
        if self._could_contain(data.translate(_ASCII_LEET)):
            return True
        symbol_tokens: list[bytes] = []
        kept = b""
        for symbol in _LEET_SYMBOL_BYTES:
            position = data.find(symbol)  # memchr speed; a regex scan is ~10x slower
            if position >= 0 and not kept:
                # Same token boundaries as the leet reading, with the symbols still visible.
                kept = data.translate(_ASCII_KEEP_SYMBOLS)
            while position >= 0:
                if len(symbol_tokens) > _MAX_SYMBOL_TOKENS:
                    return self._could_contain(data.translate(_ASCII_PLAIN))
                start = kept.rfind(b" ", 0, position) + 1
                end = kept.find(b" ", position)
                if end < 0:
                    end = len(kept)
                symbol_tokens.append(kept[start:end])
                position = kept.find(symbol, end)
        if not symbol_tokens:
            return False
        parts = b" ".join(symbol_tokens).translate(_ASCII_PLAIN).split()
        # A one-character part may extend a run with its neighbours: count it as a maybe.
        return not self._first_words_ascii.isdisjoint(parts) or not (
            _SINGLE_CHARACTERS.isdisjoint(parts)
        )

    def _could_contain(self, spaced: bytes) -> bool:
        """For one ASCII reading (letters/digits, everything else spaces): can a term match?"""
        tokens = spaced.split()
        if not self._first_words_ascii.isdisjoint(tokens):
            return True
        if _SINGLE_CHARACTERS.isdisjoint(tokens):
            return False
        return _ASCII_RUN_RE.search(b" " + spaced + b" ") is not None

    def _first_index(self, tokens: list[str]) -> int | None:
        """Index of the first term (policy order) present in one reading's tokens."""
        if self._first_words.isdisjoint(tokens) and not _has_single_char_run(tokens):
            return None
        spaced = f" {' '.join(tokens)} "
        joined_tokens, runs = _join_single_char_runs(tokens)
        joined = f" {' '.join(joined_tokens)} " if runs else spaced
        for index, (needles, compacts) in enumerate(self._entries):
            for needle in needles:
                if needle in spaced or needle in joined:
                    return index
            # A run like "a s u e" (from "a.s.u.e") hides "sue" inside one joined token.
            for compact in compacts:
                if any(compact in run for run in runs):
                    return index
        return None


def _has_single_char_run(tokens: list[str]) -> bool:
    previous_single = False
    for token in tokens:
        single = len(token) == 1
        if single and previous_single:
            return True
        previous_single = single
    return False
