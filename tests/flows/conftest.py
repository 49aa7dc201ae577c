"""Fixtures for end-to-end flows: the broker served over real HTTP on a loopback port.

The issuer is ``http://localhost:<port>`` (http is allowed on loopback only, with
``secure_cookies: false``), so an independent client library can discover it,
fetch its keys and call its endpoints exactly as a téléservice would.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from werkzeug.serving import make_server

from tests.conftest import ISSUER, PG_URL, REDIS_URL, write_config


@dataclass
class LiveBroker:
    issuer: str
    config_dir: Path
    broker: object  # broker.app.Broker


def _lazy_wsgi(holder: dict):
    """A WSGI app that forwards to the real one once it exists (the port must be known first)."""

    def wsgi(environ, start_response):
        return holder["app"](environ, start_response)

    return wsgi


@pytest.fixture
def serve_broker(tmp_path, backend):
    """Return ``serve(clients, providers) -> LiveBroker``: write the configuration and serve it on a free port.

    ``providers(issuer)`` may add identity source files ({file stem: YAML}); it gets the
    broker's issuer so it can register the broker's callback URL upstream first.
    """
    servers = []

    def serve(clients: dict[str, str], providers: Callable[[str], dict[str, str]] | None = None) -> LiveBroker:
        from broker.app import create_app

        holder: dict = {}
        server = make_server("127.0.0.1", 0, _lazy_wsgi(holder), threaded=True)
        issuer = f"http://localhost:{server.server_port}"
        database = dict(database_url=PG_URL, redis_url=REDIS_URL) if backend == "server" else dict(
            database_url="sqlite:///broker.db")
        config_dir = write_config(tmp_path / "config", clients=clients, extra="secure_cookies: false\n", **database)
        broker_yaml = config_dir / "broker.yaml"
        settings = broker_yaml.read_text()
        assert f"issuer: {ISSUER}\n" in settings
        broker_yaml.write_text(settings.replace(f"issuer: {ISSUER}\n", f"issuer: {issuer}\n"))
        for stem, body in (providers(issuer) if providers else {}).items():
            (config_dir / "providers" / f"{stem}.yaml").write_text(body)
        app = create_app(config_dir, migrate=True)
        holder["app"] = app
        thread = threading.Thread(target=server.serve_forever, name="nc-connect-test-server", daemon=True)
        thread.start()
        servers.append((server, thread, app))
        return LiveBroker(issuer=issuer, config_dir=config_dir, broker=app.extensions["nc_connect"])

    yield serve
    for server, thread, app in servers:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        app.extensions["nc_connect"].engine.dispose()
