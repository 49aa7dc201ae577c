"""Authorization codes, access tokens, refresh tokens and ID tokens.

Every secret handed out is 256 random bits and is stored only as its SHA-256
(checklist A-10, A-17).  A code becomes a *grant* when it is redeemed; access
and refresh tokens hang from the grant, so revoking the grant (a replayed
code, a reused refresh token, logout) revokes everything it issued.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, update

from broker.app import Broker
from broker.claims import subject_for
from broker.config import ClientSettings
from broker.errors import InvalidGrant, InvalidScope
from broker.models import Grant, RefreshToken

USED_CODE_MEMORY = 600  # seconds a redeemed code is remembered to detect replays


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: left half of the SHA-256 (ES256 and RS256 both hash with SHA-256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def subject(broker: Broker, client: ClientSettings, account_id: str) -> str:
    return subject_for(account_id, client.sector_id, client.subject_type, broker.keys.ensure_subject_secret())


# -- authorization codes ---------------------------------------------------

def issue_code(broker: Broker, binding: dict[str, Any]) -> str:
    """``binding``: client_id, redirect_uri, code_challenge, nonce, scope, account_id, auth_time, acr, amr, sid."""
    code = new_secret()
    broker.store.put("code:" + token_hash(code), binding, broker.config.broker.lifetimes.authorization_code)
    return code


def redeem_code(broker: Broker, code: str) -> dict[str, Any]:
    """Consume a code once.  A second redemption revokes what the first one issued (RFC 9700 §4.2.4)."""
    h = token_hash(code)
    binding = broker.store.consume("code:" + h)
    if binding is None:
        used = broker.store.get("usedcode:" + h)
        if used and used.get("grant_id"):
            revoke_grant(broker, used["grant_id"])
        raise InvalidGrant("the authorization code is invalid, expired or was already used")
    binding["_hash"] = h
    return binding


def remember_redeemed(broker: Broker, code_hash: str, grant_id: str) -> None:
    broker.store.put("usedcode:" + code_hash, {"grant_id": grant_id}, USED_CODE_MEMORY)


# -- grants and tokens ------------------------------------------------------

def create_grant(broker: Broker, binding: dict[str, Any]) -> Grant:
    grant = Grant(
        client_id=binding["client_id"], account_id=binding["account_id"], scope=binding["scope"],
        nonce=binding.get("nonce"), auth_time=binding["auth_time"], acr=binding["acr"],
        amr=" ".join(binding["amr"]), sid=binding["sid"],
        expires_at=datetime.now(timezone.utc) + timedelta(seconds=broker.config.broker.lifetimes.refresh_token),
    )
    with broker.sessions.begin() as s:
        s.add(grant)
    return grant


def revoke_grant(broker: Broker, grant_id: str) -> None:
    with broker.sessions.begin() as s:
        s.execute(update(Grant).where(Grant.id == grant_id).values(revoked=True))


def revoke_session_grants(broker: Broker, sid: str) -> None:
    with broker.sessions.begin() as s:
        s.execute(update(Grant).where(Grant.sid == sid).values(revoked=True))


def revoke_account_grants(broker: Broker, account_id: str) -> int:
    """Every grant of the account, so every refresh and access token (password reset, sign out everywhere)."""
    with broker.sessions.begin() as s:
        return s.execute(update(Grant).where(Grant.account_id == account_id, Grant.revoked.is_(False))
                         .values(revoked=True)).rowcount


def grant_active(broker: Broker, grant_id: str) -> Grant | None:
    with broker.sessions() as s:
        grant = s.get(Grant, grant_id)
    if grant is None or grant.revoked:
        return None
    return grant


@dataclass
class AccessToken:
    token: str
    expires_in: int


def issue_access_token(broker: Broker, grant: Grant, sub: str, scope: str) -> AccessToken:
    token = new_secret()
    lifetime = broker.config.broker.lifetimes.access_token
    now = int(time.time())
    broker.store.put("at:" + token_hash(token), {
        "grant_id": grant.id, "client_id": grant.client_id, "account_id": grant.account_id,
        "scope": scope, "sub": sub, "iat": now, "exp": now + lifetime, "acr": grant.acr,
    }, lifetime)
    return AccessToken(token, lifetime)


def lookup_access_token(broker: Broker, token: str) -> dict[str, Any] | None:
    """The token's record when it is known, unexpired and its grant not revoked."""
    if not token or len(token) > 200:
        return None
    record = broker.store.get("at:" + token_hash(token))
    if record is None or record["exp"] <= time.time() or grant_active(broker, record["grant_id"]) is None:
        return None
    return record


def revoke_access_token(broker: Broker, token: str) -> None:
    broker.store.delete("at:" + token_hash(token))


def issue_refresh_token(broker: Broker, grant: Grant) -> str:
    token = new_secret()
    with broker.sessions.begin() as s:
        s.add(RefreshToken(token_hash=token_hash(token), grant_id=grant.id))
    return token


def find_refresh_token(broker: Broker, token: str) -> tuple[RefreshToken, Grant] | None:
    with broker.sessions() as s:
        row = s.execute(
            select(RefreshToken, Grant).join(Grant, Grant.id == RefreshToken.grant_id)
            .where(RefreshToken.token_hash == token_hash(token))
        ).first()
    return (row[0], row[1]) if row else None


def rotate_refresh_token(broker: Broker, token: str, client_id: str, scope: list[str] = ()) -> Grant:
    """Mark the token used and return its grant; a reused token revokes the whole grant (RFC 9700 §4.14.2).

    ``scope`` (the request's) is checked before the token is spent: a refused request leaves it usable.
    """
    found = find_refresh_token(broker, token)
    if found is None or found[1].client_id != client_id:
        raise InvalidGrant("the refresh token is invalid")
    refresh, grant = found
    if grant.revoked or grant.expires_at.replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc):
        raise InvalidGrant("the refresh token has expired or was revoked")
    if refresh.used_at is not None:
        revoke_grant(broker, grant.id)
        raise InvalidGrant("the refresh token was already used; the grant has been revoked")
    if not set(scope) <= set(grant.scope.split()):
        raise InvalidScope("the requested scope exceeds the original grant")
    with broker.sessions.begin() as s:
        claimed = s.execute(
            update(RefreshToken).where(RefreshToken.token_hash == refresh.token_hash, RefreshToken.used_at.is_(None))
            .values(used_at=datetime.now(timezone.utc))
        ).rowcount
    if claimed != 1:
        revoke_grant(broker, grant.id)
        raise InvalidGrant("the refresh token was already used; the grant has been revoked")
    return grant


def id_token(broker: Broker, client: ClientSettings, grant: Grant, sub: str, access_token: str | None,
             requested: dict[str, Any] | None = None) -> str:
    """OIDC Core §2.  ``requested``: the ``id_token`` member of the authorization request's ``claims``.

    ``amr`` is always given to ordinary clients; the FranceConnect profile gives it only when
    asked through the ``claims`` parameter, as FranceConnect does.
    """
    from broker.jose_out import seal

    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": broker.config.broker.issuer,
        "sub": sub,
        "aud": client.client_id,
        "exp": now + broker.config.broker.lifetimes.id_token,
        "iat": now,
        "auth_time": grant.auth_time,
        "acr": grant.acr,
        "sid": grant.sid,
        "azp": client.client_id,
    }
    if client.profile != "franceconnect" or "amr" in (requested or {}):
        claims["amr"] = grant.amr.split()
    if grant.nonce:
        claims["nonce"] = grant.nonce
    if access_token:
        claims["at_hash"] = at_hash(access_token)
    return seal(broker, client, claims, sign_alg=client.id_token_signed_response_alg,
                enc_alg=client.id_token_encrypted_response_alg, enc=client.id_token_encrypted_response_enc)
