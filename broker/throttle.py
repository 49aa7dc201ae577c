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
