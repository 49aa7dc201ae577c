"""The browser session: server-side state behind one opaque cookie.

The cookie holds only a random identifier (256 bits); the store keeps the
state under the identifier's SHA-256, with a sliding idle timeout and an
absolute lifetime (checklist D-12, D-14).  ``regenerate`` issues a new
identifier at every login so a planted cookie is useless afterwards (D-11).

A signed-in session is listed in the account's session index under its store
key (broker/account/sessions_index.py), whose expiry sweep takes a vanished key
for the session's end.  So a signed-in session's state is written at once under
its new key, before the old key goes, and the index follows the new key.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from typing import Any

from flask import Request, Response

from broker.config import Config
from broker.store import EphemeralStore

_REFRESH_AFTER = 60  # seconds between two writes that only slide the idle timeout


def _key(cookie_value: str) -> str:
    return "sess:" + hashlib.sha256(cookie_value.encode()).hexdigest()


class BrowserSession:
    def __init__(self, store: EphemeralStore, config: Config) -> None:
        self.store = store
        self.lifetimes = config.broker.lifetimes
        self.secure = config.broker.secure_cookies
        self.cookie_name = "__Host-ncc_session" if self.secure else "ncc_session"
        self.cookie_value: str | None = None
        self.data: dict[str, Any] = {}
        self.modified = False
        self._touch = False
        self._drop_cookie = False

    # -- lifecycle -------------------------------------------------------
    def load(self, request: Request) -> None:
        value = request.cookies.get(self.cookie_name)
        if not value or len(value) > 100:
            return
        data = self.store.get(_key(value))
        now = time.time()
        # Both limits are checked here, not left to the store's TTL alone (checklist D-14).
        if (data is None or data.get("created", 0) + self.lifetimes.session_absolute < now
                or data.get("seen", 0) + self.lifetimes.session_idle < now):
            if data is not None:
                self.store.delete(_key(value))
            self._drop_cookie = True
            return
        self.cookie_value, self.data = value, data
        self._touch = now - data.get("seen", 0) > _REFRESH_AFTER

    def save(self, response: Response) -> None:
        if self.modified or (self._touch and self.cookie_value):
            if self.cookie_value is None:
                self.cookie_value = secrets.token_urlsafe(32)
                self.data.setdefault("created", time.time())
            self._write()
            response.set_cookie(self.cookie_name, self.cookie_value, httponly=True, secure=self.secure,
                                samesite="Lax", path="/")
        elif self._drop_cookie:
            response.delete_cookie(self.cookie_name, path="/", secure=self.secure, httponly=True, samesite="Lax")

    def _write(self) -> None:
        self.data["seen"] = time.time()
        remaining = self.data["created"] + self.lifetimes.session_absolute - time.time()
        ttl = int(min(self.lifetimes.session_idle, remaining)) + 1
        self.store.put(_key(self.cookie_value), self.data, ttl)

    # -- state -----------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.modified = True

    def pop(self, key: str, default: Any = None) -> Any:
        self.modified = True
        return self.data.pop(key, default)

    def csrf_token(self) -> str:
        if "csrf" not in self.data:
            self["csrf"] = secrets.token_urlsafe(32)
        return self.data["csrf"]

    def regenerate(self) -> None:
        """New identifier and new CSRF token; the old identifier stops working at once."""
        old_key = self.store_key
        # signed in, or between a password and a second factor: the session may go on under the new key
        goes_on = bool(old_key and (self.account_id or self.data.get("replaced")))
        self.cookie_value = None
        if self.account_id:  # a signed-in session: sign_in decides whether it goes on (same citizen) or ended
            self.data["replaced"] = {k: self.data.get(k) for k in ("account_id", "sid", "clients")}
        self.data = {k: v for k, v in self.data.items() if k in ("authz", "after_login", "replaced")}
        self.data["created"] = time.time()
        self.modified = True
        if goes_on:
            self.cookie_value = secrets.token_urlsafe(32)
            self._write()  # before the index follows: the new key never looks expired to the sweep
            _index_follows(old_key, self.store_key)
        if old_key:
            self.store.delete(old_key)

    def destroy(self) -> None:
        if self.cookie_value:
            self.store.delete(_key(self.cookie_value))
        self.cookie_value = None
        self.data = {}
        self.modified = False
        self._touch = False
        self._drop_cookie = True

    # -- the signed-in citizen ------------------------------------------
    @property
    def account_id(self) -> str | None:
        return self.data.get("account_id")

    @property
    def store_key(self) -> str | None:
        """The session's key in the store (a hash of the cookie): what the per-account index holds."""
        return _key(self.cookie_value) if self.cookie_value else None

    def sign_in(self, account_id: str, acr: str, amr: list[str], auth_time: int, provider_id: str) -> None:
        self.regenerate()
        previous = self.data.pop("replaced", None)  # also across a half-authenticated step (second factor)
        if self.cookie_value is None:  # known now, so the account's session index can list it
            self.cookie_value = secrets.token_urlsafe(32)
        # The same citizen authenticating again (prompt=login, max_age, a second factor) continues the session:
        # same sid and téléservices, so that a later logout still reaches them all (back-channel logout).
        same = previous is not None and previous.get("account_id") == account_id and bool(previous.get("sid"))
        # authenticated_at (float) tells apart two logins within one second, for prompt=login
        self.data.update(account_id=account_id, acr=acr, amr=amr, auth_time=auth_time, authenticated_at=time.time(),
                         provider_id=provider_id, sid=previous["sid"] if same else secrets.token_urlsafe(16),
                         clients=list(previous.get("clients") or []) if same else [])
        self._write()  # in the store before the index lists it (the expiry sweep reads a missing key as the end)
        if previous is not None and not same:  # another citizen signs in on this browser: that session ended
            from broker.oidc.backchannel import session_replaced

            session_replaced(previous)


def _index_follows(old_key: str, new_key: str) -> None:
    """The account's session index follows a signed-in session to its new key (no-op outside a request)."""
    from flask import has_app_context

    if not has_app_context():
        return
    from broker.account import sessions_index
    from broker.app import current_broker

    try:
        sessions_index.rekey(current_broker(), old_key, new_key)
    except Exception:  # noqa: BLE001 - the login goes on; at worst the sweep sends a logout early
        logging.getLogger("nc_connect").exception("the session index could not follow a new session key")
