"""Emailed one-time links: 256 random bits, stored as SHA-256 only, short-lived, single use
(checklist D-08).  A newer link of the same purpose for the same account voids the older ones.

The link carries the token in its query string (the access log omits query strings, pages
send ``Referrer-Policy: no-referrer``); opening it only shows a form, and the token is spent
by that form's POST, so mail scanners that fetch links do not use it up.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from broker.app import Broker
from broker.models import AccountToken, utcnow

LIFETIMES = {
    "signup": 24 * 3600,  # the pending sign-up waits a day for its address to be confirmed
    "reset": 20 * 60,  # D-08: minutes
    "email_change": 3600,
}


def now() -> datetime:
    return utcnow()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Link:
    purpose: str
    email: str
    account_id: str | None
    data: dict[str, Any]


def issue(broker: Broker, purpose: str, email: str, *, account_id: str | None = None,
          data: dict[str, Any] | None = None) -> str:
    token = secrets.token_urlsafe(32)
    at = now()
    with broker.sessions.begin() as s:
        s.execute(delete(AccountToken).where(AccountToken.expires_at < at - timedelta(days=1)))
        if account_id:
            s.execute(update(AccountToken).where(AccountToken.account_id == account_id, AccountToken.purpose == purpose,
                                                 AccountToken.used_at.is_(None)).values(used_at=at))
        s.add(AccountToken(token_hash=_hash(token), purpose=purpose, email=email, account_id=account_id,
                           data=json.dumps(data) if data is not None else None, created_at=at,
                           expires_at=at + timedelta(seconds=LIFETIMES[purpose])))
    return token


def _link(row: AccountToken) -> Link:
    return Link(purpose=row.purpose, email=row.email, account_id=row.account_id,
                data=json.loads(row.data) if row.data else {})


def peek(broker: Broker, token: str, purposes: tuple[str, ...]) -> Link | None:
    """The link when it is valid (known, unused, unexpired), without spending it."""
    if not token or len(token) > 100:
        return None
    with broker.sessions() as s:
        row = s.execute(select(AccountToken).where(
            AccountToken.token_hash == _hash(token), AccountToken.purpose.in_(purposes),
            AccountToken.used_at.is_(None), AccountToken.expires_at > now())).scalar()
    return _link(row) if row else None


def consume(broker: Broker, token: str, purposes: tuple[str, ...]) -> Link | None:
    """Spend the link: of two concurrent uses, one only succeeds."""
    if not token or len(token) > 100:
        return None
    h = _hash(token)
    with broker.sessions.begin() as s:
        claimed = s.execute(update(AccountToken).where(
            AccountToken.token_hash == h, AccountToken.purpose.in_(purposes), AccountToken.used_at.is_(None),
            AccountToken.expires_at > now()).values(used_at=now())).rowcount
        if claimed != 1:
            return None
        row = s.get(AccountToken, h)
        link = _link(row)
        if row.purpose == "signup":
            row.data = None  # the pending identity and password hash are not kept once the account exists
    return link
