"""Shell injection in fields that end up on a command line. PURE.

Only the fields a policy names (``shell_check_fields``) are checked: in prose a semicolon
is punctuation, in a file name or branch name it is a command separator.

    shell.separator     ; & | newline (also && || and a trailing &)
    shell.substitution  $( ... ), backticks, ${ ... }, <( ... ) >( ... )
    shell.variable      $NAME expansion ($IFS is the usual way to smuggle a space)
    shell.redirection   > >> < (overwrite or read files)
    shell.option        a value starting with "-" (argument injection: --upload-pack=...)

Evasions: %XX URL encoding, applied up to three times (double encoding), and \\xNN /
\\uNNNN escapes are decoded before checking; each decoded form is checked.
"""

import re
import urllib.parse
from typing import Final

from gate_proxy.core.analyzers.base import Finding

__all__ = ["analyze_shell", "check_every_form", "decoded_forms"]

_CHECKS: Final = (
    ("substitution", "critical", re.compile(r"\$\(|`|\$\{|[<>]\(")),
    ("separator", "critical", re.compile(r"[;\n\r|&]")),
    ("variable", "high", re.compile(r"\$[A-Za-z_]")),
    ("redirection", "high", re.compile(r"[<>]")),
)
_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})|\\u([0-9A-Fa-f]{4})")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}|%u[0-9A-Fa-f]{4}")
_PERCENT_U = re.compile(r"%u([0-9A-Fa-f]{4})")
MAX_ROUNDS: Final = 3


def decoded_forms(value: str) -> list[str]:
    """The value and each decoding of it (URL-decoded up to three rounds, escapes)."""
    forms = [value]
    current = value
    for _ in range(MAX_ROUNDS):
        if not _PERCENT.search(current):
            break
        current = urllib.parse.unquote(
            _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), current), errors="replace"
        )
        forms.append(current)
    for form in list(forms):
        if "\\" in form:
            forms.append(_ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), form))
    return forms


# Every check needs one of these characters, and decoding starts only at "%" or "\\": a
# value without any of them (and not starting with "-") has no finding in any form.
_RELEVANT = re.compile(r"[$`<>;\n\r|&%\\]")


def analyze_shell(value: object, location: str) -> list[Finding]:
    """Findings for one configured field value (strings only; numbers cannot inject)."""
    if not isinstance(value, str):
        return []
    if _RELEVANT.search(value) is None and not value.lstrip().startswith("-"):
        return []
    return check_every_form(value, location)


def check_every_form(value: str, location: str) -> list[Finding]:
    """The checks on the value and each decoded form of it (no prefilter)."""
    found: dict[str, Finding] = {}
    for form in decoded_forms(value):
        encoded = form is not value
        if form.lstrip().startswith("-") and "option" not in found:
            found["option"] = Finding(
                "shell.option", "high", location, "value starts with '-' (option injection)"
            )
        for kind, severity, pattern in _CHECKS:
            if kind in found:
                continue
            match = pattern.search(form)
            if match is not None:
                shown = repr(match.group(0))
                detail = f"{shown} in the value" + (" (after decoding)" if encoded else "")
                found[kind] = Finding(f"shell.{kind}", severity, location, detail)
    return list(found.values())
