"""/healthz and /readyz: what a load balancer or an orchestrator asks, on both storage backends."""

from __future__ import annotations

import logging

from sqlalchemy import create_engine

from tests.conftest import write_config


def test_live_and_ready_when_every_backend_answers(client):
    live = client.get("/healthz")
    assert live.status_code == 200 and live.json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "checks": {"database": "ok", "store": "ok", "keys": "ok"}}
    for response in (live, ready):
        assert response.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in response.headers  # no session for a probe


def test_a_store_that_does_not_answer_makes_the_broker_unready_not_dead(tmp_path, caplog):
    from broker.app import create_app

    # a Redis URL where nothing listens: the broker starts, its readiness says which part is down
    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db", redis_url="redis://127.0.0.1:9/0")
    app = create_app(conf, migrate=True)
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="nc_connect.health"):
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json == {"status": "unavailable", "checks": {"database": "ok", "store": "unavailable", "keys": "ok"}}
    assert "127.0.0.1:9" not in ready.get_data(as_text=True)  # where the backends are is not told
    assert any("store unavailable" in r.getMessage() for r in caplog.records)
    assert client.get("/healthz").status_code == 200  # alive: restarting it would not bring Redis back
    app.extensions["nc_connect"].engine.dispose()


def test_a_database_that_does_not_answer_makes_the_broker_unready(client, broker, monkeypatch, tmp_path):
    unreachable = create_engine(f"sqlite:///{tmp_path}/no/such/directory/broker.db")
    monkeypatch.setattr(broker, "engine", unreachable)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["checks"]["database"] == "unavailable"
    assert "no/such/directory" not in ready.get_data(as_text=True)
