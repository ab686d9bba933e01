"""PII and secrets: detection for policy, and masking for stored previews and the dashboard.

PURE. Kinds (the names ``block_if_pii`` / ``require_approval_if_pii`` use):

    ssn             US social security number: 123-45-6789 (also spaces, dots, Unicode
                    dashes); a bare 9-digit number only under an SSN-like key
    card            payment card number, 13-19 digits, Luhn-checked (grouped or one run)
    iban            IBAN with a known country length and a valid mod-97 checksum
    email           addresses, also "name [at] example [dot] com"
    phone           +<country> international numbers and (NNN) NNN-NNNN style numbers
    aws_access_key  AKIA/ASIA/... access key ids
    private_key     -----BEGIN ... PRIVATE KEY----- blocks (RSA, EC, OpenSSH, PGP, ...)
    api_key         common key shapes: sk_live_/rk_live_ (Stripe), ghp_/gho_/github_pat_
                    (GitHub), xox?- (Slack), AIza (Google), sk-/sk-proj-/sk-ant- (OpenAI,
                    Anthropic), glpat- (GitLab), npm_, SG. (SendGrid), gate_sk_, JWTs,
                    Slack webhook URLs

Groups: ``pii`` is the first five, ``secret`` the last three.

Evasions: JSON escapes (``\\u0034``), %XX URL encoding, HTML entities, fullwidth digits
and letters (NFKC), zero-width and other invisible characters inside a number, Unicode
dashes as separators. Each decoded reading is scanned only when the text contains what
introduces it, so clean ASCII text is scanned once.

Speed: a regular expression costs ~15 ns per character here, so nothing scans the whole
payload with one. The text is translated once into "shapes" (digits -> 9, word characters
-> a) by ``bytes.translate``; ``bytes.find`` on a shape finds the few places worth a
closer look (a run of three digits, an "@", a run of 16 word characters, "-----"), and the
validating expressions run on small windows around them (overlapping windows merged, so
a text made of needles is still scanned once). The worst text found costs ~0.35 µs per
byte; ``analyze()`` scans at most ``MAX_SCAN_BYTES`` (payload plus decoded readings) and
reports ``pii.too_large`` past it.
"""

from gate_proxy.core.analyzers.pii.analyzer import (
    Reading,
    analyze_pii,
    json_key_before,
    locate_in_json,
    prepare,
    readings,
)
from gate_proxy.core.analyzers.pii.detect import NUMBER_SHAPE, find_pii
from gate_proxy.core.analyzers.pii.kinds import (
    GROUPS,
    KINDS,
    PII_KINDS,
    SECRET_KINDS,
    SSN_MASK,
    PiiMatch,
)
from gate_proxy.core.analyzers.pii.mask import mask_pii
from gate_proxy.core.analyzers.pii.validators import iban_ok, luhn_ok

__all__ = [
    "GROUPS",
    "KINDS",
    "NUMBER_SHAPE",
    "PII_KINDS",
    "SECRET_KINDS",
    "SSN_MASK",
    "PiiMatch",
    "Reading",
    "analyze_pii",
    "find_pii",
    "iban_ok",
    "json_key_before",
    "locate_in_json",
    "luhn_ok",
    "mask_pii",
    "prepare",
    "readings",
]
