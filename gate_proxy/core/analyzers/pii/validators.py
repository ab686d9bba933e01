"""Checksums that tell a real card number or IBAN from a look-alike. PURE."""

from typing import Final

# IBAN lengths by country (ISO 13616 registry); an unknown country is not an IBAN.
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


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


# Luhn's doubled digit (2d, minus 9 over 9) for ASCII "0".."9", as byte values.
_LUHN_DOUBLED: Final = bytes.maketrans(b"0123456789", bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))


def _luhn_ok_ascii(digits: bytes) -> bool:
    """`luhn_ok` with sums in C: a text of cards costs no Python loop per digit."""
    kept, doubled = digits[-1::-2], digits[-2::-2]
    return (sum(kept) - 48 * len(kept) + sum(doubled.translate(_LUHN_DOUBLED))) % 10 == 0


def _card_ok(digits: str) -> bool:
    """Luhn, not one repeated digit, and a card network's shape: networks start with 2-6
    (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/UnionPay 6) and only Visa issued
    13 digits. This keeps most order ids and timestamps out."""
    return (
        13 <= len(digits) <= 19
        and digits[0] in "23456"
        and (len(digits) != 13 or digits[0] == "4")
        and len(set(digits)) > 1
        and _luhn_ok_ascii(digits.encode("ascii"))
    )


# ISO 13616: A=10 ... Z=35 (str.translate works in C; digits stay as they are).
_IBAN_LETTER_VALUES: Final = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def iban_ok(iban: str) -> bool:
    """Known country, its length, and the ISO 7064 mod-97 checksum."""
    candidate = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(candidate[:2]) != len(candidate) or not candidate.isalnum():
        return False
    if not candidate.isascii():
        return False
    rearranged = candidate[4:] + candidate[:4]
    return int(rearranged.translate(_IBAN_LETTER_VALUES)) % 97 == 1
