"""PII masking for display: US social security numbers and payment card numbers.

Pure text in, text out. ``core/redact.py`` removes credentials before anything is stored;
this runs on top of it wherever a human is shown a payload (the dashboard), so a reviewer
can judge a write without the page carrying an SSN or a card number.
"""

import re

SSN_MASK = "[SSN]"

# 123-45-6789 or 123 45 6789 (one separator style), excluding numbers the SSA never issues.
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}\b")
# A bare nine-digit number counts as an SSN only under an SSN-like key: `"ssn": 123456789`.
_SSN_BY_KEY = re.compile(
    r"(?i)(\"?\b(?:ssn|social[_ -]?security(?:[_ -]?(?:number|no))?)\b\"?\s*[:=]\s*\"?)"
    r"(\d{9})\b"
)
# Card-shaped runs (Luhn decides): groups of four (16-19 digits), the 4-6-5 / 4-6-4 layout
# of Amex and Diners, or 13-19 digits in one run. Fixed layouts keep two adjacent numbers
# from merging into one run that fails the checksum and would then go unmasked.
_CARD = re.compile(
    r"(?<![\w.])(?:\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5}|\d{13,19})(?![\w.])"
)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits) or len(set(digits)) == 1:
        return match.group(0)
    # Card networks start with 2-6 (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover and
    # UnionPay 6), and only Visa issued 13 digits: this keeps most order ids and timestamps.
    if digits[0] not in "23456" or (len(digits) == 13 and digits[0] != "4"):
        return match.group(0)
    return f"[CARD ending {digits[-4:]}]"


def mask_pii(text: str) -> str:
    """Mask SSNs and Luhn-valid card numbers; everything else is returned unchanged."""
    if not text:
        return text
    text = _SSN.sub(SSN_MASK, text)
    text = _SSN_BY_KEY.sub(lambda m: m.group(1) + SSN_MASK, text)
    return _CARD.sub(_mask_card, text)
