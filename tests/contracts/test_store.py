"""One contract for the ephemeral store, run against the database store (SQLite and
PostgreSQL) and Redis: what sessions, codes, replay detection and throttling rely on."""

from __future__ import annotations

import threading
import time

import pytest

from broker.db import make_engine, make_sessionmaker, upgrade
from broker.store import DatabaseStore, RedisStore
from tests.conftest import PG_URL, REDIS_PREFIX, REDIS_URL, require_servers


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        require_servers()
        if request.param == "redis":
            yield RedisStore(REDIS_URL, prefix=REDIS_PREFIX)
            return
        url = PG_URL
    engine = make_engine(url)
    upgrade(engine)
    yield DatabaseStore(make_sessionmaker(engine))
    engine.dispose()


def test_put_get_replace_delete(store):
    store.put("k", {"a": 1}, 60)
    assert store.get("k") == {"a": 1}
    store.put("k", {"a": 2}, 60)
    assert store.get("k") == {"a": 2}
    store.delete("k")
    assert store.get("k") is None


def test_entries_expire(store, monkeypatch):
    store.put("short", {"x": 1}, 1)
    time.sleep(1.2 if isinstance(store, RedisStore) else 0)
    if isinstance(store, DatabaseStore):
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 2)
    assert store.get("short") is None
    assert store.consume("short") is None


def test_consume_is_single_use_under_concurrency(store):
    store.put("code", {"v": 1}, 60)
    results = []
    barrier = threading.Barrier(8)

    def take():
        barrier.wait()
        results.append(store.consume("code"))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r for r in results if r is not None] == [{"v": 1}]


def test_add_only_once(store):
    assert store.add("jti", {}, 60) is True
    assert store.add("jti", {}, 60) is False


def test_counter_counts_and_window_ends(store, monkeypatch):
    assert [store.incr("c", 60) for _ in range(3)] == [1, 2, 3]
    store.delete("c")
    assert store.incr("c", 60) == 1
