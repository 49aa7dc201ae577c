"""Fixtures: a configuration directory per test, the app on each storage backend, a browser-like client.

Backends: ``sqlite`` (embedded default: SQLite + database store) and ``server``
(PostgreSQL + Redis over real connections).  The server backend is skipped,
with the reason, only when run by hand without those servers; under CI
(``CI=true``) a missing server is a failure.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy

from broker import keys as keyring

PG_SERVER = os.environ.get("NC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("NC_TEST_REDIS", "redis://127.0.0.1:6379/15")
# Each test run gets its own PostgreSQL database and Redis key prefix, so runs never disturb each other.
RUN_ID = f"{os.getpid()}"
PG_URL = PG_SERVER.rsplit("/", 1)[0] + f"/nc_test_{RUN_ID}"
REDIS_PREFIX = f"ncc-test-{RUN_ID}:"
ISSUER = "https://nc-connect.test"
SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret-0001"
PASSWORD = "correct horse battery staple"


def _server_available() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"Redis not reachable at {REDIS_URL}: {exc}"
    try:
        engine = sqlalchemy.create_engine(PG_SERVER.replace("postgresql://", "postgresql+psycopg://"),
                                          isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            exists = conn.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": f"nc_test_{RUN_ID}"}).scalar()
            if not exists:
                conn.execute(sqlalchemy.text(f'CREATE DATABASE "nc_test_{RUN_ID}"'))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_SERVER}: {exc}"
    return None


@pytest.fixture(scope="session", autouse=True)
def _drop_run_database():
    yield
    try:
        engine = sqlalchemy.create_engine(PG_SERVER.replace("postgresql://", "postgresql+psycopg://"),
                                          isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "nc_test_{RUN_ID}" WITH (FORCE)'))
        engine.dispose()
    except Exception:
        pass


def write_config(directory: Path, *, database_url: str, redis_url: str | None = None,
                 clients: dict[str, str] | None = None, extra: str = "") -> Path:
    (directory / "clients").mkdir(parents=True, exist_ok=True)
    (directory / "providers").mkdir(exist_ok=True)
    redis_line = f"redis_url: {redis_url}\nredis_key_prefix: '{REDIS_PREFIX}'\n" if redis_url else ""
    (directory / "broker.yaml").write_text(
        f"issuer: {ISSUER}\ndatabase_url: {database_url}\n{redis_line}keys_dir: keys\n{extra}"
    )
    (directory / "providers" / "local.yaml").write_text("type: local\nname: Compte NC Connect\nmapping: local.yaml\n")
    # consent: implied keeps the consent page out of tests about other things (tests/test_consent.py has it)
    default_clients = {
        "alpha": f"""
            consent: implied
            name: Service Alpha
            redirect_uris: [https://alpha.example.nc/callback]
            post_logout_redirect_uris: [https://alpha.example.nc/bye]
            client_secret: {SECRET}
            scopes: [openid, profile, email, birth]
            grant_types: [authorization_code, refresh_token]
        """,
        "beta": f"""
            consent: implied
            name: Service Beta
            redirect_uris: [https://beta.example.nc/cb]
            client_secret: {SECRET}
            token_endpoint_auth_method: client_secret_post
        """,
        "spa": """
            consent: implied
            name: Public app
            redirect_uris: [https://spa.example.nc/cb]
            token_endpoint_auth_method: none
        """,
    }
    for cid, body in (clients if clients is not None else default_clients).items():
        (directory / "clients" / f"{cid}.yaml").write_text(textwrap.dedent(body))
    shutil.copytree(_test_keys(), directory / "keys")
    return directory


_KEYS: Path | None = None


def _test_keys() -> Path:
    """One key set per test run: RSA-3072 generation is slow and every test needs keys."""
    global _KEYS
    if _KEYS is None:
        _KEYS = Path(tempfile.mkdtemp(prefix="ncc-keys-")) / "keys"
        keyring.generate(_KEYS)
    return _KEYS


def _reset_postgres() -> None:
    from broker.models import Base

    engine = sqlalchemy.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(sqlalchemy.text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def require_servers() -> None:
    """Fresh PostgreSQL schema and Redis database; skip by hand, fail under CI, when unreachable."""
    reason = _server_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    _reset_postgres()
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter(REDIS_PREFIX + "*"):
        r.delete(key)


@pytest.fixture(params=["sqlite", "server"])
def backend(request) -> str:
    if request.param == "server":
        require_servers()
    return request.param


@pytest.fixture
def config_dir(tmp_path, backend) -> Path:
    return write_config(tmp_path / "config", **storage_for(backend))


def storage_for(backend: str) -> dict[str, str]:
    """write_config's storage arguments for a backend: SQLite alone, or PostgreSQL + Redis."""
    if backend == "server":
        return {"database_url": PG_URL, "redis_url": REDIS_URL}
    return {"database_url": "sqlite:///broker.db"}


@pytest.fixture
def app(config_dir):
    from broker.app import create_app

    app = create_app(config_dir, migrate=True)
    app.config["TESTING"] = True
    yield app
    app.extensions["nc_connect"].engine.dispose()


@pytest.fixture
def broker(app):
    return app.extensions["nc_connect"]


@pytest.fixture
def account(broker):
    from broker.accounts import create_account

    return create_account(broker.sessions, "citoyen@example.nc", PASSWORD, given_name="Jean Pierre",
                          family_name="Kabar", birthdate="1985-07-14", gender="male",
                          birthplace="98818", birthcountry="99100")


@pytest.fixture
def client(app):
    c = app.test_client()
    c.environ_base["wsgi.url_scheme"] = "https"
    c.environ_base["HTTP_HOST"] = "nc-connect.test"
    return c


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class Flow:
    """Drives the authorization code flow as a browser and a téléservice back end would."""

    def __init__(self, client, client_id: str = "alpha", redirect_uri: str = "https://alpha.example.nc/callback"):
        self.client, self.client_id, self.redirect_uri = client, client_id, redirect_uri
        self.verifier, self.challenge = pkce_pair()
        self.state, self.nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)

    def authorize_params(self, **overrides) -> dict:
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": "openid profile email", "state": self.state, "nonce": self.nonce,
                  "code_challenge": self.challenge, "code_challenge_method": "S256"}
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def authorize(self, **overrides):
        return self.client.get("/authorize", query_string=self.authorize_params(**overrides))

    def login(self, response, email="citoyen@example.nc", password=PASSWORD):
        """Follow the redirect to the login page and submit the form."""
        assert response.status_code == 303, response.data
        page = self.client.get(response.headers["Location"])
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        rid = re.search(r'name="rid" value="([^"]*)"', html).group(1)
        return self.client.post("/login", data={"csrf_token": csrf_of(html), "rid": rid, "email": email,
                                                "password": password})

    def code(self, **overrides) -> str:
        """Authorize, log in if asked, follow back to the client; return the code."""
        response = self.authorize(**overrides)
        if "/login" in response.headers.get("Location", ""):
            response = self.login(response)
            assert response.status_code == 303, response.data
            response = self.client.get(response.headers["Location"])
        if "/consentement" in response.headers.get("Location", ""):
            response = self.consent(response)
        location = response.headers["Location"]
        assert location.startswith(self.redirect_uri), location
        params = query_of(location)
        assert params["state"] == self.state
        return params["code"]

    def consent(self, response, decision: str = "accept"):
        """The citizen agrees (or not) to send the listed data to the téléservice."""
        page = self.client.get(response.headers["Location"])
        assert page.status_code == 200, page.data
        html = page.get_data(as_text=True)
        rid = re.search(r'name="rid" value="([^"]*)"', html).group(1)
        return self.client.post("/consentement", data={"csrf_token": csrf_of(html), "rid": rid, "decision": decision})

    def token(self, code: str, **overrides):
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": self.verifier}
        data.update(overrides)
        data = {k: v for k, v in data.items() if v is not None}
        return self.client.post("/token", data=data, headers=self.auth_headers())

    def auth_headers(self) -> dict:
        if self.client_id == "alpha":
            return {"Authorization": "Basic " + base64.b64encode(f"alpha:{SECRET}".encode()).decode()}
        return {}


def advance_clock(broker, monkeypatch, seconds: int) -> None:
    """Move time forward for the broker: ``time.time`` and, on Redis, every key's remaining TTL."""
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + seconds)
    store = broker.store
    if hasattr(store, "redis"):
        for key in store.redis.scan_iter(store.prefix + "*"):
            left = store.redis.pttl(key)
            if 0 < left <= seconds * 1000:
                store.redis.delete(key)
            elif left > 0:
                store.redis.pexpire(key, left - seconds * 1000)
