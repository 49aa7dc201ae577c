"""Health endpoints for load balancers and orchestrators; no session, no personal data.

- ``GET /healthz``: liveness.  The process answers: 200 ``{"status": "ok"}``, without
  touching any backend (a database outage must not get every worker restarted).
- ``GET /readyz``: readiness.  The database answers ``SELECT 1``, the ephemeral store (Redis,
  or the database) answers, and the signing keys are loaded: 200, else 503 naming the
  component that failed.  The reason goes to the log, never to the answer (no URL, no host).
"""

from __future__ import annotations

import logging
from typing import Callable

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from broker.app import Broker, current_broker

log = logging.getLogger("nc_connect.health")
blueprint = Blueprint("health", __name__)
ENDPOINTS = {"health.live", "health.ready"}


def _database(broker: Broker) -> None:
    with broker.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _store(broker: Broker) -> None:
    broker.store.ping()


def _keys(broker: Broker) -> None:
    if not broker.keys.jwks()["keys"]:
        raise RuntimeError("no signing key")


CHECKS: dict[str, Callable[[Broker], None]] = {"database": _database, "store": _store, "keys": _keys}


@blueprint.route("/healthz")
def live() -> Response:
    return jsonify(status="ok")


@blueprint.route("/readyz")
def ready() -> Response:
    broker = current_broker()
    checks = {}
    for name, check in CHECKS.items():
        try:
            check(broker)
            checks[name] = "ok"
        except Exception as exc:  # any failure of a backend means "not ready", whatever its kind
            log.error("readiness: %s unavailable: %s: %s", name, type(exc).__name__, str(exc)[:300])
            checks[name] = "unavailable"
    ok = all(v == "ok" for v in checks.values())
    response = jsonify(status="ok" if ok else "unavailable", checks=checks)
    response.status_code = 200 if ok else 503
    return response
