"""Every browser session of an account, whatever the ephemeral store; the end of expired sessions.

Sessions live in the ephemeral store (Redis or the database) under a hash of their
cookie; the store cannot be searched by account.  A durable index, the
``account_sessions`` table, lists each signed-in session's store key and ``sid``, so
that the citizen sees their active sessions, and "sign out everywhere" or a password
reset deletes every one of them and revokes the grants (refresh tokens) they issued
(checklist D-15).

The index also keeps what a back-channel logout needs once the session's state is gone:
the téléservices that received a code in the session (``clients``) and the end of its
absolute lifetime (``expires_at``).  A session that reaches its absolute lifetime is ended
by :func:`sweep` with logout tokens: each such row is *claimed* by deleting it (``DELETE …
RETURNING``: of two workers, two sweeps or a sweep and a logout, exactly one gets it), and
only the claimant queues the logout tokens.  A session that times out for idleness (its key
vanishes from the store with its TTL) is only dropped from the index, without logout
tokens: the idle clock counts the citizen's visits to the broker's pages, not their work on
the téléservice (token refreshes and userinfo calls do not touch it), so a citizen busy on a
téléservice must not be logged out of it (Keycloak, for one, does the same).  Every other end of a session (logout, "sign out everywhere", a password reset,
another citizen signing in) drops the row before the session's key goes, so the sweep
never takes it for an expiry.  The sweep runs in every serving broker
(``session_sweep_interval`` in broker.yaml, :class:`Sweeper`) and from
``nc-connect sessions sweep``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, or_, select, update

from broker import grants
from broker.app import Broker
from broker.models import AccountSession, Grant
from broker.sessions import BrowserSession

log = logging.getLogger("nc_connect.sessions")

SWEEP_BATCH = 500
SWEEP_LEASE = "sweep-lease:sessions"


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


def _now() -> datetime:
    # time.time(), like the sessions themselves (and the tests' clock)
    return datetime.fromtimestamp(time.time(), timezone.utc)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite returns naive UTC


def _ends_at(broker: Broker, row: Any) -> datetime:
    """The end of the session's absolute lifetime (rows indexed before migration 0006: from created_at)."""
    if row.expires_at is not None:
        return _aware(row.expires_at)
    return _aware(row.created_at) + timedelta(seconds=broker.config.broker.lifetimes.session_absolute)


def register(broker: Broker, session: BrowserSession, user_agent: str = "") -> None:
    """Called right after ``session.sign_in``: index the new session under its account.

    The same citizen authenticating again keeps the ``sid``: the new row replaces the old one.
    """
    created = session.get("created") or time.time()
    expires_at = datetime.fromtimestamp(created + broker.config.broker.lifetimes.session_absolute, timezone.utc)
    with broker.sessions.begin() as s:
        replaced = s.execute(delete(AccountSession).where(or_(
            AccountSession.store_key == session.store_key,
            (AccountSession.account_id == session.account_id) & (AccountSession.sid == session["sid"])))
            .returning(AccountSession.sid, AccountSession.clients)).all()
        # the téléservices noted on the replaced row of this sid (a code issued meanwhile) are kept
        clients = list(session.get("clients") or []) + [
            c for row in replaced if row.sid == session["sid"] for c in (row.clients or "").split()]
        s.add(AccountSession(store_key=session.store_key, account_id=session.account_id, sid=session["sid"],
                             provider_id=session.get("provider_id"), acr=session.get("acr"),
                             user_agent=user_agent[:200] or None, clients=" ".join(dict.fromkeys(clients)),
                             expires_at=expires_at))
    # the account's sessions past their absolute end are ended here too when no sweep ran (bounded table)
    with broker.sessions() as s:
        overdue = s.execute(select(AccountSession).where(AccountSession.account_id == session.account_id,
                                                         AccountSession.expires_at <= _now())).scalars().all()
    for row in overdue:
        _end_row(broker, row.store_key, row.sid, delete_state=True, notify=True)


def note_client(broker: Broker, store_key: str | None, client_id: str) -> None:
    """A téléservice received a code in this session: remember it durably (compare-and-set, no lost update)."""
    if not store_key:
        return
    for _ in range(20):
        with broker.sessions.begin() as s:
            row = s.execute(select(AccountSession.clients).where(AccountSession.store_key == store_key)).first()
            if row is None:
                return  # not indexed (not signed in)
            listed = (row.clients or "").split()
            if client_id in listed:
                return
            same = AccountSession.clients.is_(None) if row.clients is None else AccountSession.clients == row.clients
            if s.execute(update(AccountSession).where(AccountSession.store_key == store_key, same)
                         .values(clients=" ".join(listed + [client_id]))).rowcount == 1:
                return
    log.warning("the session index could not note client %s (contention)", client_id)


def rekey(broker: Broker, old_key: str, new_key: str) -> None:
    """A signed-in session got a new identifier (``BrowserSession.regenerate``): its row follows."""
    with broker.sessions.begin() as s:
        s.execute(delete(AccountSession).where(AccountSession.store_key == new_key))
        s.execute(update(AccountSession).where(AccountSession.store_key == old_key).values(store_key=new_key))


def forget(broker: Broker, sid: str, account_id: str) -> None:
    """The session ended otherwise (and its logout tokens are queued): the sweep must not end it again."""
    with broker.sessions.begin() as s:
        s.execute(delete(AccountSession).where(AccountSession.sid == sid, AccountSession.account_id == account_id))


def _rows(broker: Broker, account_id: str) -> list[AccountSession]:
    with broker.sessions() as s:
        return list(s.execute(select(AccountSession).where(AccountSession.account_id == account_id)
                              .order_by(AccountSession.created_at.desc())).scalars())


def active(broker: Broker, account_id: str, current_key: str | None = None) -> list[ActiveSession]:
    out = []
    now = _now()
    for row in _rows(broker, account_id):
        data = broker.store.get(row.store_key)
        overdue = _ends_at(broker, row) <= now
        if data is None or overdue:  # expired, met before the sweep
            _end_row(broker, row.store_key, row.sid, delete_state=data is not None, notify=overdue)
            continue
        if data.get("account_id") != account_id:
            continue  # between a password and a second factor: not listed, not ended
        out.append(ActiveSession(sid=row.sid, store_key=row.store_key, provider_id=row.provider_id, acr=data.get("acr"),
                                 user_agent=row.user_agent or "", created=data.get("created", 0),
                                 seen=data.get("seen", time.time()), current=row.store_key == current_key))
    return out


# -- the end of a session ---------------------------------------------------------------------

def _claim(broker: Broker, store_key: str, sid: str) -> Any | None:
    """Delete the row and return what it held; None when someone else claimed (or replaced) it first."""
    with broker.sessions.begin() as s:
        return s.execute(delete(AccountSession)
                         .where(AccountSession.store_key == store_key, AccountSession.sid == sid)
                         .returning(AccountSession.account_id, AccountSession.sid, AccountSession.clients)).first()


def _participants(broker: Broker, claimed: Any, data: dict[str, Any] | None) -> list[str]:
    """The téléservices of the session: the row's list, the state's when still there, and its grants'."""
    clients = list((claimed.clients or "").split())
    if data and data.get("sid") == claimed.sid:
        clients += data.get("clients") or []
    with broker.sessions() as s:
        clients += s.execute(select(Grant.client_id).where(Grant.sid == claimed.sid).distinct()).scalars().all()
    return list(dict.fromkeys(clients))


def _end_row(broker: Broker, store_key: str, sid: str, *, delete_state: bool, notify: bool = True) -> int | None:
    """Claim one indexed session; when claimed, queue its logout tokens if ``notify`` (and delete its
    state when asked, if it is still this session's).

    Returns how many logout tokens were queued, or None when another caller had claimed it.  Once
    claimed, a store or database failure is logged, not raised: the caller goes on ending the
    session (deleting its state, revoking its grants), which matters more than the notice.
    """
    from broker.oidc.backchannel import session_ended

    claimed = _claim(broker, store_key, sid)
    if claimed is None:
        return None
    try:
        data = broker.store.get(store_key)
        if delete_state and data is not None and data.get("sid") == claimed.sid:
            broker.store.delete(store_key)
        if not notify:
            return 0
        return session_ended(broker, {"sid": claimed.sid, "account_id": claimed.account_id,
                                      "clients": _participants(broker, claimed, data)}, forget=False)
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("the end of session sid=%s was not completed", claimed.sid)
        return 0


def end(broker: Broker, account_id: str, sid: str) -> bool:
    """Sign one session of the account out: its state is deleted and its grants revoked."""
    rows = [r for r in _rows(broker, account_id) if r.sid == sid]
    for row in rows:
        _end_row(broker, row.store_key, row.sid, delete_state=False)  # the tokens, by whoever claims the row
        broker.store.delete(row.store_key)
        grants.revoke_session_grants(broker, row.sid)
    return bool(rows)


def end_all(broker: Broker, account_id: str, keep: str | None = None) -> int:
    """Sign every session of the account out (but ``keep``, a store key); revoke every grant of the account."""
    ended = 0
    for row in _rows(broker, account_id):
        if row.store_key == keep:
            continue
        _end_row(broker, row.store_key, row.sid, delete_state=False)
        broker.store.delete(row.store_key)
        ended += 1
    grants.revoke_account_grants(broker, account_id)
    return ended


# -- the sweep of expired sessions --------------------------------------------------------------

@dataclass
class Swept:
    sessions: int = 0  # expired sessions ended by this sweep
    tokens: int = 0  # logout tokens queued for them


def _present(store, keys: list[str]) -> set[str]:
    """Which of ``keys`` are in the store (one round trip per batch on Redis and on the database)."""
    from broker.store import DatabaseStore, RedisStore

    if isinstance(store, RedisStore):
        pipe = store.redis.pipeline(transaction=False)
        for key in keys:
            pipe.exists(store._k(key))
        return {key for key, found in zip(keys, pipe.execute()) if found}
    if isinstance(store, DatabaseStore):
        from broker.models import EphemeralEntry

        with store.sessions() as s:
            return set(s.execute(select(EphemeralEntry.key).where(EphemeralEntry.key.in_(keys),
                                                                  EphemeralEntry.expires_at > time.time())).scalars())
    return {key for key in keys if store.get(key) is not None}


def sweep(broker: Broker, batch: int = SWEEP_BATCH) -> Swept:
    """End every indexed session whose absolute end has passed (with logout tokens), and drop those
    whose state has left the store after an idle timeout (without: see the module's docstring).

    Each is claimed atomically, so concurrent sweeps (several workers, a timer) end it once;
    the logout tokens are queued on this process's dispatcher (``backchannel``).
    """
    swept = Swept()
    after = ""
    while True:
        with broker.sessions() as s:
            rows = s.execute(select(AccountSession.store_key, AccountSession.sid, AccountSession.created_at,
                                    AccountSession.expires_at)
                             .where(AccountSession.store_key > after)
                             .order_by(AccountSession.store_key).limit(batch)).all()
        if not rows:
            return swept
        after = rows[-1].store_key
        present = _present(broker.store, [r.store_key for r in rows])
        now = _now()
        for row in rows:
            overdue = _ends_at(broker, row) <= now
            if row.store_key in present and not overdue:
                continue
            queued = _end_row(broker, row.store_key, row.sid, delete_state=row.store_key in present, notify=overdue)
            if queued is not None:
                swept.sessions += 1
                swept.tokens += queued
                log.info("expired session ended sid=%s reason=%s logout_tokens=%d", row.sid,
                         "absolute lifetime" if overdue else "idle timeout", queued)
        if len(rows) < batch:
            return swept


class Sweeper:
    """The periodic sweep of a serving broker: a daemon thread, one sweep every ``interval`` seconds.

    With several processes, each runs one (started by its first request, so in the process that
    serves, after any fork); a short lease in the store lets one of them sweep per
    interval (the claim of each row keeps ends single even without it).  The same pass resumes the
    back-channel deliveries another process left behind.
    """

    def __init__(self, broker: Broker, interval: int) -> None:
        self.broker, self.interval = broker, interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="ncc-session-sweep", daemon=True)

    def start(self) -> "Sweeper":
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> Swept | None:
        from broker.oidc import backchannel

        try:
            lease = int(self.interval * 0.9)
            if lease and not self.broker.store.add(SWEEP_LEASE, {}, lease):
                return None  # another process swept within this interval
            swept = sweep(self.broker)
            backchannel.resume_pending(self.broker)
            return swept
        except Exception:  # noqa: BLE001 - a store or database outage must not stop the sweeps
            log.exception("the sweep of expired sessions failed")
            return None


_started: dict[int, Sweeper] = {}  # by process id: the sweeper of this process, if started
_start_lock = threading.Lock()


def start_sweeper(broker: Broker) -> Sweeper | None:
    """Start the periodic sweep (``session_sweep_interval``; 0: off) once in this process."""
    interval = broker.config.broker.session_sweep_interval
    if not interval:
        return None
    sweeper = _started.get(os.getpid())
    if sweeper is not None and sweeper.thread.is_alive():
        return sweeper  # every request after the first: no lock on this path
    with _start_lock:
        sweeper = _started.get(os.getpid())
        if sweeper is None or not sweeper.thread.is_alive():
            sweeper = _started[os.getpid()] = Sweeper(broker, interval).start()
    return sweeper
