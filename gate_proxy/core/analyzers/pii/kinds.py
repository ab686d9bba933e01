"""The PII and secret kinds, their severities and what a match looks like. PURE."""

from dataclasses import dataclass
from typing import Final

PII_KINDS: Final = ("ssn", "card", "iban", "email", "phone")
SECRET_KINDS: Final = ("aws_access_key", "private_key", "api_key")
KINDS: Final = PII_KINDS + SECRET_KINDS
GROUPS: Final = {"pii": PII_KINDS, "secret": SECRET_KINDS}
SSN_MASK: Final = "[SSN]"

_SEVERITY: Final = {
    "ssn": "critical",
    "card": "critical",
    "iban": "high",
    "email": "medium",
    "phone": "medium",
    "aws_access_key": "critical",
    "private_key": "critical",
    "api_key": "critical",
}
_PRECEDENCE: Final = {kind: rank for rank, kind in enumerate(SECRET_KINDS + PII_KINDS)}


@dataclass(frozen=True, slots=True)
class PiiMatch:
    kind: str
    start: int  # offsets into the text given to find_pii
    end: int
    mask: str  # what a person is shown instead (never the value)
