"""Which claims each scope releases (OIDC Core §5.4, FranceConnect's scope conventions)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

PIVOT = ("given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry")

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": (),
    "offline_access": (),
    "profile": ("given_name", "family_name", "birthdate", "gender", "preferred_username"),
    "email": ("email", "email_verified"),
    "birth": ("birthplace", "birthcountry"),
    "identite_pivot": PIVOT,
    **{claim: (claim,) for claim in (*PIVOT, "preferred_username")},
}


def claims_for_scopes(scopes: list[str]) -> list[str]:
    out: list[str] = []
    for scope in scopes:
        for claim in SCOPE_CLAIMS.get(scope, ()):
            if claim not in out:
                out.append(claim)
    return out


def release(attributes: dict[str, Any], scopes: list[str]) -> dict[str, Any]:
    """The pivot and contact claims a token's scopes allow, from the account's attributes."""
    out = {}
    for claim in claims_for_scopes(scopes):
        if claim in attributes:
            out[claim] = attributes[claim]
        elif claim == "birthplace" and "birthcountry" in attributes:
            out[claim] = ""  # FranceConnect convention: empty for people born abroad
    return out


def subject_for(account_id: str, sector: str, subject_type: str, secret: bytes) -> str:
    """``sub`` seen by a téléservice: pairwise per sector (OIDC Core §8.1) or the public account id."""
    if subject_type == "public":
        return account_id
    digest = hmac.new(secret, f"{sector}\x00{account_id}".encode(), hashlib.sha256).hexdigest()
    return digest + "v1"
