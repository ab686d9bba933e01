"""Masking for stored previews and the dashboard: each PII/secret span becomes its mask. PURE."""

from collections.abc import Iterable

from gate_proxy.core.analyzers.pii.detect import find_pii


def mask_pii(text: str, kinds: Iterable[str] | None = None) -> str:
    """Mask every PII and secret span found (only `kinds`, if given); the rest is unchanged.

    SSN -> ``[SSN]``, card -> ``[CARD ending 1111]`` (the masks of the earlier
    ``gate_proxy.core.pii.mask_pii``), IBAN -> ``[IBAN DE ending 3000]``, email ->
    ``[EMAIL …@example.com]`` (the domain stays: reviewers see where mail goes), phone ->
    ``[PHONE ending 00]``, secrets -> ``[SECRET aws_access_key]``. Used for stored previews;
    the dashboard (``core/pii.py``) masks ``kinds=("ssn", "card")``.
    """
    if not text:
        return text
    matches = find_pii(text)
    if kinds is not None:
        wanted = frozenset(kinds)
        matches = [m for m in matches if m.kind in wanted]
    if not matches:
        return text
    parts: list[str] = []
    position = 0
    for match in matches:
        parts.append(text[position : match.start])
        parts.append(match.mask)
        position = match.end
    parts.append(text[position:])
    return "".join(parts)
