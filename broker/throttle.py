"""Throttling of password guessing, per account and per client IP (checklist D-06).

After ``FREE_ATTEMPTS`` failures within the window, each further failure
doubles a waiting period (capped), during which attempts are refused without
checking the password.  The lock is soft: it ends by itself, so nobody can
lock a citizen out for good.  Counters live in the ephemeral store (Redis or
the database).
"""

from __future__ import annotations

import hashlib
import time

from broker.store import EphemeralStore

WINDOW = 3600
FREE_ATTEMPTS = 5
MAX_DELAY = 15 * 60


def _keys(email: str, ip: str) -> list[str]:
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return [f"thr:acct:{account}", f"thr:ip:{ip}"]


def retry_after(store: EphemeralStore, email: str, ip: str) -> int:
    """Seconds to wait before the next attempt is checked (0 when allowed)."""
    now = time.time()
    waits = [int(lock["until"] - now) + 1 for k in _keys(email, ip) if (lock := store.get(k + ":lock")) and lock["until"] > now]
    return max(waits, default=0)


def record_failure(store: EphemeralStore, email: str, ip: str) -> None:
    for key in _keys(email, ip):
        failures = store.incr(key, WINDOW)
        # the IP counter tolerates more: many citizens can share one address (public access points)
        free = FREE_ATTEMPTS * (10 if ":ip:" in key else 1)
        if failures > free:
            delay = min(MAX_DELAY, 2 ** min(failures - free, 10))
            store.put(key + ":lock", {"until": time.time() + delay}, delay)


def record_success(store: EphemeralStore, email: str, ip: str) -> None:
    store.delete(_keys(email, ip)[0])


# -- the same soft locks for other forms: sign-up, password reset, second factor… ----------------

def _scoped_key(scope: str, subject: str) -> str:
    return f"thr:{scope}:" + hashlib.sha256(subject.strip().lower().encode()).hexdigest()[:32]


def retry_after_scoped(store: EphemeralStore, scope: str, subjects) -> int:
    """Seconds to wait before the form ``scope`` is accepted again for any of ``subjects`` (0 when allowed)."""
    now = time.time()
    waits = [int(lock["until"] - now) + 1 for subject in subjects
             if (lock := store.get(_scoped_key(scope, subject) + ":lock")) and lock["until"] > now]
    return max(waits, default=0)


def count_scoped(store: EphemeralStore, scope: str, limits: dict[str, int], base: int = 1) -> None:
    """Count one use per subject; once its ``free`` uses in the window are spent, each further use
    waits behind a lock of ``base``·2ⁿ seconds (capped), which ends by itself."""
    for subject, free in limits.items():
        key = _scoped_key(scope, subject)
        uses = store.incr(key, WINDOW)
        if uses >= free:
            delay = min(MAX_DELAY, base * 2 ** min(uses - free, 10))
            store.put(key + ":lock", {"until": time.time() + delay}, delay)


def clear_scoped(store: EphemeralStore, scope: str, subject: str) -> None:
    store.delete(_scoped_key(scope, subject))
