"""A real headless Chromium (Debian's ``chromium``, driven by Playwright) on a live broker and demo téléservice.

- One browser for the whole session; each test opens its own contexts (with or without JavaScript).
- The broker and the demo téléservice (examples/demo_service.py, loaded as it is) are served over
  loopback HTTP, once per module, on the embedded SQLite backend only: these tests are about pages,
  the storage backends are covered elsewhere.
- axe-core (frontend/node_modules, pinned) is evaluated in the page through the DevTools protocol,
  which the page's CSP does not govern, so the pages are checked with their real, strict CSP.
- Missing Chromium, Playwright, axe-core or the DSFR files: the tests fail under CI (``CI=true``)
  and are skipped, with the reason, when run by hand.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import ISSUER, PASSWORD, write_config

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("NC_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
DEMO_SECRET = "demo-secret-for-browser-tests-0123456789"
# A second téléservice, the demo loaded again under another client id, whose client asks the citizen's consent
CONSENT_CLIENT = "bourses"
CONSENT_CLIENT_NAME = "Bourses scolaires (démonstration)"
CONSENT_SECRET = "bourses-secret-for-browser-tests-012345678"
EMAIL = "marie.wamytan@example.nc"
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens there (the demo's data provider is not part of these tests)


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (make install)"
    if not (shutil.which(CHROMIUM) or os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium chromium-driver; .ci/run does it)"
    if not AXE.is_file():
        return f"axe-core not found at {AXE} (make install runs npm ci in frontend/)"
    from broker.ui import dsfr_problem

    return dsfr_problem()


def require_browser() -> None:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def citizen_factory(chromium, site):
    """Opens citizens' browsers (tests.browser.citizen.Citizen), closed at the end of the test."""
    from tests.browser.citizen import Citizen

    opened: list = []

    def open_(**kwargs):
        opened.append(Citizen(chromium, site, **kwargs))
        return opened[-1]

    yield open_
    for citizen in opened:
        citizen.close()


@dataclass
class Site:
    broker_url: str
    demo_url: str
    broker: object  # broker.app.Broker
    app: object  # the broker's Flask application
    franceconnect_url: str  # a stand-in for FranceConnect's authorization page
    mailbox: object  # tests.account.conftest.Mailbox: the messages the broker sent
    consent_demo_url: str = ""  # the demo téléservice again, as a client with ``consent: explicit``


def _serve(app_holder: dict):
    server = make_server("127.0.0.1", 0, lambda environ, start: app_holder["app"](environ, start), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    return server, thread


def _franceconnect_stand_in(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [b"<!DOCTYPE html><html lang='fr'><head><title>FranceConnect (simulation)</title></head>"
            b"<body><main><h1>FranceConnect (simulation)</h1></main></body></html>"]


def _load_demo(env: dict[str, str]):
    """examples/demo_service.py, configured by its environment variables like `make demo` does."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        name = f"demo_service_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / "demo_service.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def smtp(tmp_path_factory):
    """A real SMTP server in the process (aiosmtpd), for sign-up's confirmation link."""
    from aiosmtpd.controller import Controller

    from tests.account.conftest import Mailbox, _free_port

    controller = Controller(Mailbox(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory, smtp):
    """The broker (local accounts + a FranceConnect source) and the demo téléservice, over loopback HTTP."""
    require_browser()
    from broker.accounts import create_account
    from broker.app import create_app
    from broker.config import ClientSettings

    broker_holder, demo_holder, fc_holder = {}, {}, {"app": _franceconnect_stand_in}
    consent_demo_holder = {}
    broker_server, broker_thread = _serve(broker_holder)
    demo_server, demo_thread = _serve(demo_holder)
    consent_demo_server, consent_demo_thread = _serve(consent_demo_holder)
    fc_server, fc_thread = _serve(fc_holder)
    franceconnect_url = f"http://127.0.0.1:{fc_server.server_port}"
    broker_url = f"http://localhost:{broker_server.server_port}"
    demo_url = f"http://localhost:{demo_server.server_port}"
    consent_demo_url = f"http://localhost:{consent_demo_server.server_port}"
    consent = "consent: implied\n" if "consent" in ClientSettings.model_fields else ""
    clients = {"demo": f"""
name: Téléservice de démonstration
redirect_uris: [{demo_url}/callback]
post_logout_redirect_uris: [{demo_url}/]
client_secret: {DEMO_SECRET}
scopes: [openid, profile, email, birth]
{consent}""", CONSENT_CLIENT: f"""
name: {CONSENT_CLIENT_NAME}
redirect_uris: [{consent_demo_url}/callback]
post_logout_redirect_uris: [{consent_demo_url}/]
client_secret: {CONSENT_SECRET}
scopes: [openid, profile, email, birth]
consent: explicit
"""}
    directory = tmp_path_factory.mktemp("browser") / "config"
    from tests.account.conftest import smtp_block

    write_config(directory, database_url="sqlite:///broker.db", clients=clients,
                 extra="secure_cookies: false\n" + smtp_block(smtp.port))
    settings = (directory / "broker.yaml").read_text()
    (directory / "broker.yaml").write_text(settings.replace(f"issuer: {ISSUER}\n", f"issuer: {broker_url}\n"))
    (directory / "providers" / "franceconnect.yaml").write_text(f"""
type: oidc
name: FranceConnect
description: Avec vos identifiants impots.gouv.fr, ameli.fr, l'Identité Numérique La Poste…
button: franceconnect
order: 20
mapping: franceconnect.yaml
issuer: {franceconnect_url}
authorization_endpoint: {franceconnect_url}/authorize
token_endpoint: {franceconnect_url}/token
jwks_uri: {franceconnect_url}/jwks
client_id: nc-connect
client_secret: franceconnect-secret-for-browser-tests-0123
""")
    app = create_app(directory, migrate=True)
    broker = app.extensions["nc_connect"]
    create_account(broker.sessions, EMAIL, PASSWORD, given_name="Marie Louise", family_name="Wamytan",
                   birthdate="1990-04-12", gender="female", birthplace="98818", birthcountry="99100")
    broker_holder["app"] = app
    demo = _load_demo({"NC_ISSUER": broker_url, "DEMO_CLIENT_ID": "demo", "DEMO_CLIENT_SECRET": DEMO_SECRET,
                       "DEMO_PORT": str(demo_server.server_port), "DEMO_DATA_PROVIDER": UNREACHABLE})
    demo_holder["app"] = demo.app
    consent_demo = _load_demo({"NC_ISSUER": broker_url, "DEMO_CLIENT_ID": CONSENT_CLIENT,
                               "DEMO_CLIENT_SECRET": CONSENT_SECRET, "DEMO_PORT": str(consent_demo_server.server_port),
                               "DEMO_DATA_PROVIDER": UNREACHABLE})
    consent_demo_holder["app"] = consent_demo.app
    servers = ((broker_server, broker_thread), (demo_server, demo_thread), (fc_server, fc_thread),
               (consent_demo_server, consent_demo_thread))
    for _, thread in servers:
        thread.start()
    yield Site(broker_url=broker_url, demo_url=demo_url, broker=broker, app=app, franceconnect_url=franceconnect_url,
               mailbox=smtp.handler, consent_demo_url=consent_demo_url)
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
    broker.engine.dispose()
