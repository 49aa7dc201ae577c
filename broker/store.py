"""Ephemeral state (sessions, codes, tokens, counters) behind one narrow interface.

Two implementations with the same contract: Redis in production, the database
when no ``redis_url`` is configured (the embedded default).  The contract test
in ``tests/contracts/test_store.py`` runs against both.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from broker.models import EphemeralEntry


class EphemeralStore(Protocol):
    def put(self, key: str, value: dict[str, Any], ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any previous value."""

    def add(self, key: str, value: dict[str, Any], ttl: int) -> bool:
        """Store only if ``key`` is absent; True when stored (for one-time identifiers)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def consume(self, key: str) -> dict[str, Any] | None:
        """Atomically read and delete: of two concurrent callers, only one gets the value."""

    def delete(self, key: str) -> None: ...

    def incr(self, key: str, ttl: int) -> int:
        """Increment a counter; its window of ``ttl`` seconds starts at the first increment."""

    def ping(self) -> None:
        """Raise when the store cannot be reached (the readiness check)."""


REDIS_TIMEOUT = 5  # seconds


class RedisStore:
    def __init__(self, url: str, prefix: str = "ncc:") -> None:
        import redis

        # bounded waits: a Redis that stops answering fails requests (and /readyz) instead of hanging them
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
        self.prefix = prefix

    def _k(self, key: str) -> str:
        return self.prefix + key

    def put(self, key, value, ttl):
        self.redis.set(self._k(key), json.dumps(value), ex=max(1, int(ttl)))

    def add(self, key, value, ttl):
        return bool(self.redis.set(self._k(key), json.dumps(value), ex=max(1, int(ttl)), nx=True))

    def get(self, key):
        raw = self.redis.get(self._k(key))
        return json.loads(raw) if raw is not None else None

    def consume(self, key):
        raw = self.redis.getdel(self._k(key))
        return json.loads(raw) if raw is not None else None

    def delete(self, key):
        self.redis.delete(self._k(key))

    def ping(self):
        self.redis.ping()

    def incr(self, key, ttl):
        pipe = self.redis.pipeline()
        pipe.incr(self._k(key))
        pipe.expire(self._k(key), max(1, int(ttl)), nx=True)
        count, _ = pipe.execute()
        return int(count)


class DatabaseStore:
    """Ephemeral entries in the ``ephemeral`` table; expired rows are purged lazily."""

    PURGE_EVERY = 60.0

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions
        self._last_purge = 0.0

    def _purge(self, now: float) -> None:
        if now - self._last_purge > self.PURGE_EVERY:
            self._last_purge = now
            with self.sessions.begin() as s:
                s.execute(delete(EphemeralEntry).where(EphemeralEntry.expires_at <= now))

    def put(self, key, value, ttl):
        now = time.time()
        self._purge(now)
        with self.sessions.begin() as s:
            s.merge(EphemeralEntry(key=key, value=json.dumps(value), expires_at=now + ttl))

    def add(self, key, value, ttl):
        now = time.time()
        with self.sessions.begin() as s:
            s.execute(delete(EphemeralEntry).where(EphemeralEntry.key == key, EphemeralEntry.expires_at <= now))
        try:
            with self.sessions.begin() as s:
                s.execute(insert(EphemeralEntry).values(key=key, value=json.dumps(value), expires_at=now + ttl))
            return True
        except IntegrityError:
            return False

    def get(self, key):
        with self.sessions() as s:
            row = s.execute(
                select(EphemeralEntry.value).where(EphemeralEntry.key == key, EphemeralEntry.expires_at > time.time())
            ).scalar()
        return json.loads(row) if row is not None else None

    def consume(self, key):
        # DELETE ... RETURNING is atomic on PostgreSQL and SQLite >= 3.35: one caller wins.
        with self.sessions.begin() as s:
            row = s.execute(
                delete(EphemeralEntry).where(EphemeralEntry.key == key).returning(
                    EphemeralEntry.value, EphemeralEntry.expires_at
                )
            ).first()
        if row is None or row.expires_at <= time.time():
            return None
        return json.loads(row.value)

    def delete(self, key):
        with self.sessions.begin() as s:
            s.execute(delete(EphemeralEntry).where(EphemeralEntry.key == key))

    def ping(self):
        with self.sessions() as s:
            s.execute(select(1))

    def incr(self, key, ttl):
        # Optimistic compare-and-set, portable to SQLite and PostgreSQL.
        for _ in range(20):
            now = time.time()
            with self.sessions.begin() as s:
                current = s.execute(
                    select(EphemeralEntry.value).where(EphemeralEntry.key == key, EphemeralEntry.expires_at > now)
                ).scalar()
                if current is not None:
                    new = int(current) + 1
                    done = s.execute(
                        update(EphemeralEntry)
                        .where(EphemeralEntry.key == key, EphemeralEntry.value == current)
                        .values(value=str(new))
                    ).rowcount
                    if done == 1:
                        return new
                    continue
            if self.add(key, 1, ttl):  # type: ignore[arg-type]
                return 1
        raise RuntimeError("could not increment counter under contention")  # pragma: no cover


def make_store(redis_url: str | None, sessions: sessionmaker, prefix: str = "ncc:") -> EphemeralStore:
    return RedisStore(redis_url, prefix) if redis_url else DatabaseStore(sessions)
