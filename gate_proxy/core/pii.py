"""PII masking for display: US social security numbers and payment card numbers.

Pure text in, text out. ``core/redact.py`` removes credentials before anything is stored;
this runs on top of it wherever a human is shown a payload (the dashboard), so a reviewer
can judge a write without the page carrying an SSN or a card number. Other PII (e-mail
addresses, phone numbers) stays readable here: a reviewer needs to see where a write goes.

The detection is the content analyzers' (``core/analyzers/pii.py``): the same SSN rules
and the same Luhn- and card-network-checked card numbers that policies decide on.
"""

from gate_proxy.core.analyzers.pii import SSN_MASK, luhn_ok
from gate_proxy.core.analyzers.pii import mask_pii as _mask

__all__ = ["DISPLAY_KINDS", "SSN_MASK", "luhn_ok", "mask_pii"]

DISPLAY_KINDS = ("ssn", "card")


def mask_pii(text: str) -> str:
    """Mask SSNs and Luhn-valid card numbers; everything else is returned unchanged."""
    return _mask(text, kinds=DISPLAY_KINDS)
