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

from gate_proxy.core.terms.json_text import (
    NOT_JSON,
    decode_json,
    iter_json_strings,
    json_strings,
    payload_strings,
)
from gate_proxy.core.terms.matcher import TermMatcher
from gate_proxy.core.terms.normalize import normalize_text

__all__ = [
    "NOT_JSON",
    "TermMatcher",
    "decode_json",
    "iter_json_strings",
    "json_strings",
    "normalize_text",
    "payload_strings",
]
