"""ASCII readings of non-ASCII look-alike characters (Unicode TR39 confusables).

The data is Unicode's confusables.txt as shipped by the `confusable-homoglyphs` package
(its generated ``confusables.json``; the mappings to ASCII agree with ICU's TR39 skeleton
code point for code point). We do not ship our own copy of the table, so updating the
package updates the data.

Only non-ASCII characters are folded, and only to ASCII. The full TR39 skeleton also folds
ASCII itself (``m`` -> ``rn``, ``I`` and ``1`` -> ``l``, ``0`` -> ``O``): applied to ordinary
text that would make ``turn`` read as ``tum`` and ``Ice`` as ``lce``, and a term matcher
would start finding words nobody wrote. So ASCII text keeps its meaning and a foreign
character is read as the ASCII letter it imitates: Cyrillic ``а`` is ``a``, Cyrillic ``ѕ`` is
``s``, Greek ``Ν`` is ``N``. Where TR39's prototype is an ASCII class representative rather
than the letter a reader sees, we pick the reader's letter:

- prototype ``rn`` (the class of ``m``) reads as ``m``;
- prototype ``l`` (the class of ``l``, ``I``, ``1``, ``|``) reads as ``I`` for an upper-case
  character (Cyrillic ``І``, Greek ``Ι``), ``1`` for a digit (Arabic-Indic ``١``), else ``l``;
- decoration in a letter's prototype is dropped (``Ɓ`` -> ``'B`` reads as ``B``).
"""

import functools
import importlib.resources
import json
import unicodedata

__all__ = ["ascii_lookalike"]

# The package wraps right-to-left characters in LEFT-TO-RIGHT MARKs for display.
_DIRECTION_MARKS = str.maketrans("", "", "\u200e\u200f")


@functools.cache
def _lookalike_table() -> dict[str, str]:
    """Non-ASCII character -> ASCII string it is confusable with; built once, on first use."""
    data = json.loads(
        importlib.resources.files("confusable_homoglyphs")
        .joinpath("confusables.json")
        .read_text(encoding="utf-8")
    )
    table: dict[str, str] = {}
    for key, homoglyphs in data.items():
        char = key.translate(_DIRECTION_MARKS)
        if len(char) != 1 or char.isascii():
            continue
        # The file lists each confusable pair in both directions; for a non-ASCII source
        # the ASCII entry is its TR39 prototype (there is at most one).
        for homoglyph in homoglyphs:
            prototype = homoglyph["c"].translate(_DIRECTION_MARKS)
            if prototype.isascii() and prototype.strip():
                table[char] = _reader_form(char, prototype)
                break
    return table


def _reader_form(char: str, prototype: str) -> str:
    """The ASCII a reader sees in `char`, given its TR39 prototype (see module docstring)."""
    if char.isalnum() and any(c.isalnum() for c in prototype):
        prototype = "".join(c for c in prototype if c.isalnum())
    prototype = prototype.replace("rn", "m")
    category = unicodedata.category(char)
    if category in ("Lu", "Lt"):
        return prototype.replace("l", "I")
    if category[0] == "N":
        return prototype.replace("l", "1")
    return prototype


def ascii_lookalike(char: str) -> str | None:
    """ASCII reading of one non-ASCII character that imitates ASCII, else None.

    >>> ascii_lookalike("\\u0455")  # CYRILLIC SMALL LETTER DZE
    's'
    """
    return _lookalike_table().get(char)
