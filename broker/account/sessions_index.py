"""Every browser session of an account, whatever the ephemeral store.

Sessions live in the ephemeral store (Redis or the database) under a hash of their
cookie; the store cannot be searched by account.  A durable index, the
``account_sessions`` table, lists each signed-in session's store key and ``sid``, so
that the citizen sees their active sessions, and "sign out everywhere" or a password
reset deletes every one of them and revokes the grants (refresh tokens) they issued
(checklist D-15).  A row whose session has expired in the store is dropped when met.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select

from broker import grants
from broker.app import Broker
from broker.models import AccountSession, utcnow
from broker.sessions import BrowserSession


@dataclass
class ActiveSession:
    sid: str
    store_key: str
    provider_id: str | None
    acr: str | None
    user_agent: str
    created: float
    seen: float
    current: bool


def register(broker: Broker, session: BrowserSession, user_agent: str = "") -> None:
    """Called right after ``session.sign_in``: index the new session under its account."""
    absolute = broker.config.broker.lifetimes.session_absolute
    with broker.sessions.begin() as s:
        s.execute(delete(AccountSession).where(AccountSession.account_id == session.account_id,
                                               AccountSession.created_at < utcnow() - timedelta(seconds=absolute)))
        s.add(AccountSession(store_key=session.store_key, account_id=session.account_id, sid=session["sid"],
                             provider_id=session.get("provider_id"), acr=session.get("acr"),
                             user_agent=user_agent[:200] or None))


def _rows(broker: Broker, account_id: str) -> list[AccountSession]:
    with broker.sessions() as s:
        return list(s.execute(select(AccountSession).where(AccountSession.account_id == account_id)
                              .order_by(AccountSession.created_at.desc())).scalars())


def active(broker: Broker, account_id: str, current_key: str | None = None) -> list[ActiveSession]:
    out, stale = [], []
    for row in _rows(broker, account_id):
        data = broker.store.get(row.store_key)
        if data is None or data.get("account_id") != account_id:
            stale.append(row.store_key)
            continue
        out.append(ActiveSession(sid=row.sid, store_key=row.store_key, provider_id=row.provider_id, acr=data.get("acr"),
                                 user_agent=row.user_agent or "", created=data.get("created", 0),
                                 seen=data.get("seen", time.time()), current=row.store_key == current_key))
    if stale:
        with broker.sessions.begin() as s:
            s.execute(delete(AccountSession).where(AccountSession.store_key.in_(stale)))
    return out


def _ended(broker: Broker, store_key: str) -> None:
    """Back-channel logout to the téléservices of a session ended from here (queued, never blocking)."""
    from broker.oidc.backchannel import session_ended

    session_ended(broker, broker.store.get(store_key))


def end(broker: Broker, account_id: str, sid: str) -> bool:
    """Sign one session of the account out: its state is deleted and its grants revoked."""
    rows = [r for r in _rows(broker, account_id) if r.sid == sid]
    for row in rows:
        _ended(broker, row.store_key)
        broker.store.delete(row.store_key)
        grants.revoke_session_grants(broker, row.sid)
    with broker.sessions.begin() as s:
        s.execute(delete(AccountSession).where(AccountSession.account_id == account_id, AccountSession.sid == sid))
    return bool(rows)


def end_all(broker: Broker, account_id: str, keep: str | None = None) -> int:
    """Sign every session of the account out (but ``keep``, a store key); revoke every grant of the account."""
    ended = 0
    for row in _rows(broker, account_id):
        if row.store_key == keep:
            continue
        _ended(broker, row.store_key)
        broker.store.delete(row.store_key)
        ended += 1
        with broker.sessions.begin() as s:
            s.execute(delete(AccountSession).where(AccountSession.store_key == row.store_key))
    grants.revoke_account_grants(broker, account_id)
    return ended
