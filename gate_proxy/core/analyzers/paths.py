"""Path traversal in fields that name files. PURE.

Only the fields a policy names (``path_check_fields``) are checked.

    path.traversal   a ".." segment (also "..." and ".. " that Windows trims), with / or \\
    path.absolute    /etc/passwd, C:\\..., \\\\server\\share, file: URLs, ~ (home directory)
    path.null_byte   NUL, which truncates the path in C-based file APIs

Evasions decoded before checking (each decoded form is checked): %XX URL encoding up to
three rounds (``%2e%2e%2f``, ``..%5c``, double-encoded ``%252e%252e%252f``), IIS-style
``%u002e``, overlong UTF-8 (``%c0%ae`` for ".", ``%c0%af`` for "/", ``%c1%9c`` for "\\"),
\\xNN / \\uNNNN escapes, and Unicode compatibility forms (fullwidth ``．．／``).
"""

import re
import unicodedata
from typing import Final

from gate_proxy.core.analyzers.base import Finding
from gate_proxy.core.analyzers.shell import decoded_forms

__all__ = ["analyze_path"]

_OVERLONG: Final = (
    (re.compile(r"%c0%ae|%e0%80%ae|%c0%2e", re.IGNORECASE), "."),
    (re.compile(r"%c0%af|%e0%80%af|%c0%2f", re.IGNORECASE), "/"),
    (re.compile(r"%c1%9c|%c1%1c|%c0%5c", re.IGNORECASE), "\\"),
)
_DOT_SEGMENT = re.compile(r"^\.{2,}[ .]*$")
_ABSOLUTE = re.compile(r"^(?:/|\\|[A-Za-z]:[\\/]|[A-Za-z]:$|~|file:)", re.IGNORECASE)


def _forms(value: str) -> list[str]:
    text = value
    if "%" in value:  # every overlong form is %-encoded
        for pattern, replacement in _OVERLONG:
            text = pattern.sub(replacement.replace("\\", "\\\\"), text)
    forms = decoded_forms(text)
    if text is not value:
        forms.insert(0, value)
    for form in list(forms):
        if not form.isascii():
            folded = unicodedata.normalize("NFKC", form)
            if folded != form:
                forms.append(folded)
    return forms


def analyze_path(value: object, location: str) -> list[Finding]:
    """Findings for one configured field value (strings only)."""
    if not isinstance(value, str):
        return []
    found: dict[str, Finding] = {}
    for form in _forms(value):
        note = "" if form == value else " (after decoding)"
        if "\x00" in form and "null_byte" not in found:
            found["null_byte"] = Finding(
                "path.null_byte", "high", location, "NUL byte in the path" + note
            )
        unified = form.replace("\\", "/")
        segments = unified.split("/")
        if "traversal" not in found and any(_DOT_SEGMENT.match(s) for s in segments):
            found["traversal"] = Finding(
                "path.traversal", "critical", location, "'..' path segment" + note
            )
        if "absolute" not in found and _ABSOLUTE.match(form.lstrip()):
            found["absolute"] = Finding("path.absolute", "high", location, "absolute path" + note)
    return list(found.values())
