"""OpenID Connect Back-Channel Logout 1.0: the broker tells téléservices that a session ended.

When a broker session ends (RP-initiated logout, "sign out everywhere", a password
reset, an account deletion, another citizen signing in on the same browser, or its idle
timeout or absolute lifetime, found by the sweep of ``broker.account.sessions_index``), every
téléservice that took part in the session (``clients`` in the session) and registered a
``backchannel_logout_uri`` receives a *logout token* (§2.4): a JWT signed with the
broker's key (the client's ``id_token_signed_response_alg``), header ``typ: logout+jwt``,
claims ``iss``, ``aud`` (the client id), ``iat``, ``exp`` (2 minutes), ``jti``,
``events`` with the back-channel logout event, ``sid`` (the ``sid`` of its ID tokens) and
``sub`` (its pairwise subject), and never a ``nonce``; it is POSTed form-encoded as
``logout_token`` (§2.5).

Delivery never blocks the citizen: :func:`session_ended` records one *delivery* per
téléservice in the ephemeral store (``bcl:<id>``: client id, sid, sub, attempt count,
due time; never the token) and hands it to a per-process dispatcher.  The dispatcher's
scheduler thread runs while there is work and starts each attempt in its own short
thread, at most :data:`WORKERS` at once; an attempt has bounded timeouts
(:data:`CONNECT_TIMEOUT`, :data:`READ_TIMEOUT`), follows no redirect, and signs a fresh
token (new ``jti``, ``iat``, ``exp``), so that a late retry never carries an expired one.
A 2xx answer is a success; a network error, 408, 429 or 5xx is retried after
:data:`RETRY_DELAYS`; any other answer (400: the téléservice refused the token) or the
last failure gives up.  Every attempt is logged with the delivery id, the client id, the
attempt number and the outcome, never the token.

A session that expires has no request to end it: the account's session index keeps its
``sid`` and téléservices, and the periodic sweep (every ``session_sweep_interval``
seconds in a serving broker, or ``nc-connect sessions sweep``) claims each expired
session once and calls :func:`session_ended` for it.  Every other end drops the session's
index row first (``forget``), so the sweep never notifies the same session again.

Limits, honestly: pending deliveries live in the ephemeral store for :data:`RECORD_TTL`
seconds.  A process that stops with deliveries pending leaves their records behind; the
next process to end a session, or the next periodic sweep, looks through the store (at
most once per :data:`STALE_AFTER` seconds per process: on Redis a SCAN) and resumes
those overdue by more than :data:`STALE_AFTER` seconds (an attempt first takes a short
lease in the store, so two processes never send the same attempt together, although a
téléservice may in rare cases receive the same logout twice, which the specification
makes harmless).
"""

from __future__ import annotations

import heapq
import logging
import secrets
import threading
import time
from typing import Any

import requests

from broker import grants
from broker.app import Broker

log = logging.getLogger("nc_connect.backchannel")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
TOKEN_TYPE = "logout+jwt"
TOKEN_LIFETIME = 120  # seconds: "two minutes or less" is the usual advice
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
RETRY_DELAYS: tuple[float, ...] = (2, 10, 60, 300)  # before attempts 2, 3, 4, 5
RECORD_TTL = 3600
STALE_AFTER = 120
WORKERS = 4
KEY = "bcl:"
LEASE = "bcl-lease:"

_lock = threading.Lock()


# -- the logout token ------------------------------------------------------------------------

def logout_token(broker: Broker, client, sid: str, sub: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": broker.config.broker.issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "events": {EVENT: {}},
        "sid": sid,
        "sub": sub,
    }
    return broker.keys.sign(claims, client.id_token_signed_response_alg, typ=TOKEN_TYPE)


# -- session end -----------------------------------------------------------------------------

def session_ended(broker: Broker, data: dict[str, Any] | None, *, forget: bool = True) -> int:
    """Queue a logout token for each téléservice of an ended session; return how many.

    ``data`` is the session's stored state (``sid``, ``account_id``, ``clients``).  Never
    waits on the network and never raises: a logout must go through whatever happens here.
    ``forget``: drop the session from the account's session index first, so that the sweep of
    expired sessions does not notify it again (the sweep itself has already claimed the row).
    """
    data = data or {}
    if forget and data.get("sid") and data.get("account_id"):
        try:
            from broker.account import sessions_index

            sessions_index.forget(broker, data["sid"], data["account_id"])
        except Exception:  # noqa: BLE001
            log.exception("back-channel logout: the session index could not drop sid=%s", data["sid"])
    try:
        return _queue(broker, data)
    except Exception:  # noqa: BLE001 - the citizen's logout must not fail because of this
        log.exception("back-channel logout could not be queued")
        return 0


def session_replaced(data: dict[str, Any]) -> None:
    """Another citizen signed in on this browser: the previous session ended (called from sessions.py)."""
    from flask import has_app_context

    from broker.app import current_broker

    if has_app_context():
        session_ended(current_broker(), data)


def _queue(broker: Broker, data: dict[str, Any]) -> int:
    sid, account_id = data.get("sid"), data.get("account_id")
    if not sid or not account_id:
        return 0
    queued = []
    for client_id in data.get("clients") or []:
        client = broker.config.clients.get(client_id)
        if client is None or not client.backchannel_logout_uri:
            continue
        sub = grants.subject(broker, client, account_id)
        delivery_id = secrets.token_urlsafe(16)
        broker.store.put(KEY + delivery_id, {"client_id": client_id, "sid": sid, "sub": sub, "attempt": 0,
                                             "due": time.time()}, RECORD_TTL)
        queued.append(delivery_id)
        log.info("back-channel logout queued delivery=%s client=%s", delivery_id, client_id)
    if queued:
        dispatcher = dispatcher_for(broker)
        for delivery_id in queued:
            dispatcher.schedule(delivery_id, 0)
    return len(queued)


def resume_pending(broker: Broker) -> None:
    """Resume the deliveries a stopped process left behind (the periodic sweep calls it)."""
    dispatcher_for(broker).resume_stale()


# -- delivery --------------------------------------------------------------------------------

def dispatcher_for(broker: Broker) -> "Dispatcher":
    with _lock:
        dispatcher = broker.__dict__.get("_backchannel")
        if dispatcher is None:
            dispatcher = broker.__dict__["_backchannel"] = Dispatcher(broker)
        return dispatcher


class Dispatcher:
    """Per-process scheduler: a heap of (due time, delivery id), attempts in at most WORKERS threads."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._cv = threading.Condition()
        self._heap: list[tuple[float, str]] = []
        self._scheduled: set[str] = set()
        self._running = 0  # attempts in flight
        self._slots = threading.BoundedSemaphore(WORKERS)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._last_sweep = 0.0

    def schedule(self, delivery_id: str, delay: float) -> None:
        with self._cv:
            if self._stopped or delivery_id in self._scheduled:
                return
            self._scheduled.add(delivery_id)
            heapq.heappush(self._heap, (time.time() + delay, delivery_id))
            self._cv.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ncc-backchannel", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Forget what is scheduled (records stay in the store); used when an application is torn down."""
        with self._cv:
            self._stopped = True
            self._heap.clear()
            self._scheduled.clear()
            self._cv.notify_all()

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is scheduled or in flight (tests, orderly shutdown)."""
        end = time.time() + timeout
        with self._cv:
            while self._heap or self._running:
                if not self._cv.wait(max(0.0, end - time.time())) and time.time() >= end:
                    return False
            return True

    def resume_stale(self) -> None:
        with self._cv:
            if self._stopped:
                return
        self._resume_stale()

    def _loop(self) -> None:
        self._resume_stale()
        while True:
            with self._cv:
                while not self._stopped and self._heap and self._heap[0][0] > time.time():
                    self._cv.wait(self._heap[0][0] - time.time())
                if self._stopped or not self._heap:
                    self._thread = None
                    self._cv.notify_all()
                    return
                _due, delivery_id = heapq.heappop(self._heap)
                self._scheduled.discard(delivery_id)
                self._running += 1
            self._slots.acquire()
            threading.Thread(target=self._run, args=(delivery_id,), name="ncc-backchannel-send", daemon=True).start()

    def _run(self, delivery_id: str) -> None:
        try:
            attempt(self.broker, delivery_id, self)
        except Exception:  # noqa: BLE001 - a broken store must not kill the dispatcher
            log.exception("back-channel logout delivery=%s failed unexpectedly", delivery_id)
        finally:
            self._slots.release()
            with self._cv:
                self._running -= 1
                self._cv.notify_all()

    def _resume_stale(self) -> None:
        """Deliveries another (stopped) process left behind, overdue by more than STALE_AFTER.

        Listing walks the store's keys (SCAN on Redis), so it runs at most once per STALE_AFTER.
        """
        if time.time() - self._last_sweep < STALE_AFTER:
            return
        self._last_sweep = time.time()
        try:
            for delivery_id in pending_ids(self.broker.store):
                record = self.broker.store.get(KEY + delivery_id)
                if record and record.get("due", 0) + STALE_AFTER < time.time():
                    log.info("back-channel logout resumed delivery=%s client=%s", delivery_id, record.get("client_id"))
                    self.schedule(delivery_id, 0)
        except Exception:  # noqa: BLE001
            log.exception("back-channel logout: pending deliveries could not be listed")


def attempt(broker: Broker, delivery_id: str, dispatcher: Dispatcher | None = None) -> str:
    """One delivery attempt; returns ``delivered``, ``retry``, ``gave_up`` or ``skipped``."""
    store = broker.store
    lease = LEASE + delivery_id
    if not store.add(lease, {}, int(CONNECT_TIMEOUT + READ_TIMEOUT) + 5):
        return "skipped"  # another worker is sending it right now
    try:
        record = store.get(KEY + delivery_id)
        if record is None:
            return "skipped"  # delivered or abandoned meanwhile
        client = broker.config.clients.get(record["client_id"])
        if client is None or not client.backchannel_logout_uri:
            store.delete(KEY + delivery_id)
            return "skipped"
        number = int(record.get("attempt", 0)) + 1
        total = len(RETRY_DELAYS) + 1
        token = logout_token(broker, client, record["sid"], record["sub"])
        outcome, retryable = _post(client.backchannel_logout_uri, token)
        if outcome == "ok":
            store.delete(KEY + delivery_id)
            log.info("back-channel logout delivered delivery=%s client=%s attempt=%d/%d",
                     delivery_id, client.client_id, number, total)
            return "delivered"
        if retryable and number < total:
            delay = RETRY_DELAYS[number - 1]
            record.update(attempt=number, due=time.time() + delay)
            store.put(KEY + delivery_id, record, RECORD_TTL)
            log.warning("back-channel logout failed delivery=%s client=%s attempt=%d/%d: %s; retry in %ss",
                        delivery_id, client.client_id, number, total, outcome, delay)
            if dispatcher is not None:
                dispatcher.schedule(delivery_id, delay)
            return "retry"
        store.delete(KEY + delivery_id)
        log.error("back-channel logout abandoned delivery=%s client=%s attempt=%d/%d: %s",
                  delivery_id, client.client_id, number, total, outcome)
        return "gave_up"
    finally:
        store.delete(lease)


def _post(uri: str, token: str) -> tuple[str, bool]:
    """POST the token (§2.5); return (outcome, retryable).  The outcome never contains the token."""
    try:
        response = requests.post(uri, data={"logout_token": token}, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                                 allow_redirects=False, headers={"Accept": "application/json, */*"})
    except requests.Timeout:
        return "timeout", True
    except requests.ConnectionError:
        return "connection failed", True
    except requests.RequestException as exc:
        return f"request error {type(exc).__name__}", True
    status = response.status_code
    response.close()
    if 200 <= status < 300:
        return "ok", False
    return f"HTTP {status}", status in (408, 429) or status >= 500


# -- listing pending deliveries (outside the store's narrow interface, for resumption only) --

def pending_ids(store) -> list[str]:
    from broker.store import DatabaseStore, RedisStore

    if isinstance(store, RedisStore):
        prefix = store.prefix + KEY
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        return [k.decode()[len(prefix):] for k in store.redis.scan_iter(match=pattern, count=500)]
    if isinstance(store, DatabaseStore):
        from sqlalchemy import select

        from broker.models import EphemeralEntry

        with store.sessions() as s:
            keys = s.execute(select(EphemeralEntry.key).where(EphemeralEntry.key.startswith(KEY, autoescape=True),
                                                              EphemeralEntry.expires_at > time.time())).scalars()
            return [k[len(KEY):] for k in keys]
    return []
