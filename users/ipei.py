"""The IPEI (International Portable Equipment Identity) of a DECT handset.

Written form: 5-digit EMC (equipment manufacturer code), 7-digit PSN (portable
serial number) and a check digit, e.g. ``03180 0412345 6``. The check digit is
the sum of each of the 12 digits times its position (1 to 12), modulo 11; 10
is written ``*``. Spaces and dashes are accepted on input; the canonical form
is the 13 characters without separators.
"""

from __future__ import annotations

import re

_IPEI = re.compile(r"^(\d{5})(\d{7})([0-9*])$")


def check_digit(digits12: str) -> str:
    total = sum(int(d) * position for position, d in enumerate(digits12, start=1))
    remainder = total % 11
    return "*" if remainder == 10 else str(remainder)


def normalize(text: str) -> str:
    """Return the canonical IPEI or raise ValueError saying what is wrong."""
    compact = re.sub(r"[\s-]", "", text)
    match = _IPEI.match(compact)
    if not match:
        raise ValueError(
            f"{text!r} is not an IPEI: 5-digit EMC, 7-digit PSN and a check digit (0-9 or *)"
        )
    expected = check_digit(match.group(1) + match.group(2))
    if match.group(3) != expected:
        raise ValueError(f"{text!r} has check digit {match.group(3)}, expected {expected}")
    return compact


def make(emc: int, psn: int) -> str:
    digits = f"{emc:05d}{psn:07d}"
    return digits + check_digit(digits)


def display(ipei: str) -> str:
    return f"{ipei[:5]} {ipei[5:12]} {ipei[12:]}"
