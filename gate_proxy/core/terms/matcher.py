"""`TermMatcher`: every term of a policy in one compiled regular expression, matched on
whole words of the collapsed readings. PURE."""

import re
from collections.abc import Sequence

from gate_proxy.core.terms.json_text import payload_strings
from gate_proxy.core.terms.normalize import (
    _collapsed,
    _common_non_ascii,
    _decoded_variants,
    _readings,
    _term_forms,
)

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
