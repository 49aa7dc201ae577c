"""The pivot identity: the one schema every identity source is mapped to (defined here only).

It follows FranceConnect's conventions (see shared/franceconnect.md): all given
names space-separated, ``birthdate`` as YYYY-MM-DD, ``gender`` male|female,
``birthplace`` a 5-character INSEE COG commune code or ``""`` for people born
abroad, ``birthcountry`` a COG country code 99XXX (France, New Caledonia included,
is 99100).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

FRANCE = "99100"
COMMUNE_CODE = re.compile(r"(2[AB]|\d{2})\d{3}")
COUNTRY_CODE = re.compile(r"99\d{3}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _name(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if _CONTROL.search(value):
        return "must not contain control characters"
    return None if len(value) <= 256 else "longer than 256 characters"


def _birthdate(value: str) -> str | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return "must be YYYY-MM-DD"
    try:
        date.fromisoformat(value)
    except ValueError:
        return "is not a real date"
    return None


def _gender(value: str) -> str | None:
    return None if value in ("male", "female") else "must be male or female"


def _birthplace(value: str) -> str | None:
    if value == "" or COMMUNE_CODE.fullmatch(value):
        return None
    return 'must be a 5-character INSEE COG commune code, or "" for people born abroad'


def _birthcountry(value: str) -> str | None:
    return None if COUNTRY_CODE.fullmatch(value) else "must be a COG country code 99XXX (France: 99100)"


def _email(value: str) -> str | None:
    return None if _EMAIL.fullmatch(value) and len(value) <= 254 else "is not an e-mail address"


# Claim name → check of a final value (None when valid, else why not), in the order claims are shown.
PIVOT_CLAIMS: dict[str, Callable[[str], str | None]] = {
    "given_name": _name,
    "family_name": _name,
    "birthdate": _birthdate,
    "gender": _gender,
    "birthplace": _birthplace,
    "birthcountry": _birthcountry,
    "email": _email,
    "preferred_username": _name,
}


def check_claim(claim: str, value: str) -> str | None:
    """Why ``value`` is not a valid ``claim`` of the pivot identity, or None."""
    return PIVOT_CLAIMS[claim](value)
