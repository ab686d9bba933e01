"""Redaction of payload previews: what we store and show must never carry credentials."""

import json
import re
from collections.abc import Callable
from typing import Any

MASK = "[REDACTED]"

# Keys whose values are credentials whatever they look like.
SECRET_KEY = re.compile(
    r"(authori[sz]ation|password|passwd|secret|token|api[-_]?key|apikey|credential|cookie|"
    r"session|private[-_]?key|client[-_]?secret|access[-_]?key|signature)",
    re.IGNORECASE,
)
# Values that look like credentials wherever they appear.
SECRET_VALUE = re.compile(
    r"(?:\b(?:Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,})"
    r"|(?:\bgate_sk_[A-Za-z0-9_-]{8,})"
    r"|(?:\bgex_[A-Za-z0-9_-]{8,})"
    r"|(?:\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,})"
    r"|(?:\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)"
    r"|(?:\bgh[pousr]_[A-Za-z0-9]{20,})"
    r"|(?:\bxox[abpors]-[A-Za-z0-9-]{10,})"
    r"|(?:-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))",
    re.IGNORECASE,
)
PREVIEW_LIMIT = 2048
MAX_PARSE = 1024 * 1024  # larger bodies are previewed as text, not parsed again


def _redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: MASK if SECRET_KEY.search(str(key)) else _redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_value(item) for item in value]
    if isinstance(value, str):
        return SECRET_VALUE.sub(MASK, value)
    return value


def redact_text(text: str) -> str:
    """Mask credential-shaped values in free text, in key=value pairs and in JSON-ish
    `"key": "value"` text (a preview of a body too large or too broken to parse)."""
    text = SECRET_VALUE.sub(MASK, text)
    return re.sub(
        r"(?i)\b([\w-]*(?:password|passwd|secret|token|api[-_]?key|authori[sz]ation|credential)"
        r"[\w-]*)(\"?\s*[=:]\s*)(\"?)(?:(?<=\")[^\"]*|[^\s\"&,;]+)",
        lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}",
        text,
    )


def redact_payload(
    payload: str | None,
    limit: int = PREVIEW_LIMIT,
    mask: Callable[[str], str] | None = None,
) -> str | None:
    """A redacted, size-limited preview of a payload, safe to store and display.

    ``mask`` (PII masking) runs on a window a few times the limit, before the cut, so a
    value straddling the cut is masked whole and a huge body is not scanned end to end.
    """
    if payload is None:
        return None
    window = limit * 4
    stripped = payload.lstrip()
    preview: str | None = None
    if stripped[:1] in ("{", "[") and len(payload) <= MAX_PARSE:
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = None
        if parsed is not None:
            preview = json.dumps(_redact_value(parsed), ensure_ascii=False)[:window]
    if preview is None:
        preview = redact_text(payload[:window])
    if mask is not None:
        preview = mask(preview)
    # JSON may escape a lone surrogate ("\ud800"), which no UTF-8 store can hold: show it
    # as the escape it was.
    preview = preview.encode("utf-8", "backslashreplace").decode("utf-8")
    return _truncate(preview, limit)


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"


def redact_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (name, MASK if SECRET_KEY.search(name) else redact_text(value)) for name, value in headers
    ]
