"""A real upstream OpenID provider for tests: ``server.mjs`` (panva's oidc-provider) run by Node.

Use it from any test module by importing the fixture into a conftest.py::

    from tests.upstream.fixture import upstream  # noqa: F401  (session-scoped fixture)

    def test_something(upstream):
        client = upstream.register_client(["http://localhost:5000/callback/fc"])
        ...  # send a browser (requests.Session) to an authorization URL:
        callback_url = upstream.login(requests.Session(), authorization_url, "jean.kabar")

The server runs once per test session on a free loopback port with the issuer
``http://localhost:<port>``; clients are registered by dynamic registration (RFC 7591)
with an initial access token, so a test can register one whose redirect URI it only
learns at run time.  ``npm ci`` runs first when ``node_modules`` is missing.  Without
Node.js the tests that use it are skipped when run by hand and fail under CI.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import selectors
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 60  # seconds for the server to print READY (RSA key generation included)

# Test identities, FranceConnect pivot claims (given_name holds every first name).
ACCOUNTS: dict[str, dict[str, Any]] = {
    "jean.kabar": {
        "given_name": "Jean Pierre Marie",
        "family_name": "Kabar",
        "preferred_username": "Kabar",
        "birthdate": "1985-07-14",
        "gender": "male",
        "birthplace": "98818",  # Nouméa: born in New Caledonia = 99100 + a 988xx commune
        "birthcountry": "99100",
        "email": "jean.kabar@example.nc",
        "amr": ["pwd"],
    },
    "marie.wamytan": {
        "given_name": "Marie Claire",
        "family_name": "Wamytan",
        "birthdate": "1990-02-28",
        "gender": "female",
        "birthplace": "",  # born abroad: empty birthplace, COG country code
        "birthcountry": "99134",
        "email": "marie.wamytan@example.nc",
        "amr": ["pwd", "mfa"],
    },
}


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)  # everything the registration endpoint answered


@dataclass
class Upstream:
    """A running upstream provider and the helpers a test needs to use it."""

    issuer: str
    accounts: dict[str, dict[str, Any]]
    registration_token: str

    def register_client(self, redirect_uris: list[str], **metadata: Any) -> RegisteredClient:
        """Register a client (RFC 7591).  Defaults: client_secret_post, ES256 ID tokens, JSON userinfo.

        Useful metadata: ``token_endpoint_auth_method`` (client_secret_post, client_secret_basic,
        private_key_jwt with ``jwks``), ``id_token_signed_response_alg`` (ES256, RS256),
        ``userinfo_signed_response_alg`` (ES256, RS256: userinfo as a signed JWT),
        ``post_logout_redirect_uris``."""
        body = {"redirect_uris": list(redirect_uris), **metadata}
        response = requests.post(f"{self.issuer}/reg", json=body, timeout=10,
                                 headers={"Authorization": f"Bearer {self.registration_token}"})
        assert response.status_code == 201, response.text
        data = response.json()
        return RegisteredClient(client_id=data["client_id"], client_secret=data.get("client_secret", ""),
                                redirect_uris=tuple(data["redirect_uris"]), metadata=data)

    def _follow(self, session: requests.Session, response: requests.Response) -> requests.Response:
        """Follow redirects while they stay on the upstream; stop at the first one leaving it."""
        for _ in range(10):
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = urljoin(response.url, response.headers["Location"])
            if not self.owns(location):
                return response
            response = session.get(location, allow_redirects=False, timeout=10)
        raise AssertionError("too many redirects at the upstream")

    def owns(self, url: str) -> bool:
        return urlsplit(url)[:2] == urlsplit(self.issuer)[:2]

    def _interaction(self, session: requests.Session, authorization_url: str) -> requests.Response:
        response = self._follow(session, session.get(authorization_url, allow_redirects=False, timeout=10))
        assert response.status_code == 200 and "/interaction/" in response.url, (
            f"expected the upstream login page, got HTTP {response.status_code} {response.url}: {response.text[:500]}")
        return response

    def _leave(self, session: requests.Session, response: requests.Response) -> str:
        response = self._follow(session, response)
        assert response.status_code in (302, 303), (
            f"expected a redirect back to the client, got HTTP {response.status_code}: {response.text[:500]}")
        return urljoin(response.url, response.headers["Location"])

    def login(self, session: requests.Session, authorization_url: str, account: str, *,
              acr: str | None = None, amr: list[str] | None = None) -> str:
        """Play the citizen at the upstream: open ``authorization_url`` in ``session``, log in as
        ``account`` (a key of :attr:`accounts`), consent automatically, and return the URL the
        upstream redirects the browser to (the client's redirect_uri with ``code``, ``state`` and
        ``iss``, or an ``error``).  The redirect itself is not followed.

        ``acr`` forces the acr the upstream asserts (default: the highest requested value it
        supports, else eidas1); ``amr`` forces the amr (default: the account's, else ["pwd"])."""
        page = self._interaction(session, authorization_url)
        form = {"account": account, "acr": acr or "", "amr": " ".join(amr or [])}
        action = page.url.rstrip("/") + "/login"
        return self._leave(session, session.post(action, data=form, allow_redirects=False, timeout=10))

    def deny(self, session: requests.Session, authorization_url: str) -> str:
        """Play a citizen who cancels at the upstream: returns the redirect URL with ``error=access_denied``."""
        page = self._interaction(session, authorization_url)
        action = page.url.rstrip("/") + "/abort"
        return self._leave(session, session.post(action, allow_redirects=False, timeout=10))

    def logout(self, session: requests.Session, end_session_url: str) -> str:
        """Open the upstream's end-session URL, confirm, and return where the upstream sends the
        browser next (the post_logout_redirect_uri with ``state``, or the upstream's own page URL)."""
        response = self._follow(session, session.get(end_session_url, allow_redirects=False, timeout=10))
        assert response.status_code == 200, response.text[:500]
        action = re.search(r'<form[^>]*action="([^"]+)"', response.text).group(1)
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', response.text))
        fields = {k: unescape(v) for k, v in fields.items()}
        fields["logout"] = "yes"
        response = self._follow(session, session.post(urljoin(response.url, unescape(action)), data=fields,
                                                      allow_redirects=False, timeout=10))
        if response.status_code in (302, 303):
            return urljoin(response.url, response.headers["Location"])
        return response.url

    @staticmethod
    def callback_params(url: str) -> dict[str, str]:
        """The query parameters of a callback URL, as a dict (what the broker hands complete_login)."""
        return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _missing_tool(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def ensure_node_modules() -> None:
    """``npm ci`` in tests/upstream when oidc-provider is not installed yet (fresh checkout)."""
    if (HERE / "node_modules" / "oidc-provider" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        _missing_tool("npm is not installed: the upstream OpenID provider for tests needs Node.js")
    command = [npm, "ci" if (HERE / "package-lock.json").is_file() else "install", "--no-audit", "--no-fund"]
    result = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {HERE}:\n{result.stdout}\n{result.stderr}")


@contextmanager
def run_upstream(accounts: dict[str, dict[str, Any]] | None = None,
                 clients: list[dict[str, Any]] | None = None) -> Iterator[Upstream]:
    """Start ``server.mjs`` on a free loopback port, wait for its discovery, stop it afterwards.

    ``clients`` (client metadata with client_id and client_secret) are registered at start;
    others can be registered at any time with :meth:`Upstream.register_client`."""
    node = shutil.which("node")
    if node is None:
        _missing_tool("node is not installed: the upstream OpenID provider for tests needs Node.js")
    ensure_node_modules()
    accounts = ACCOUNTS if accounts is None else accounts
    with tempfile.TemporaryDirectory(prefix="nc-upstream-") as tmp:
        accounts_file = Path(tmp) / "accounts.json"
        accounts_file.write_text(json.dumps(accounts))
        log_file = Path(tmp) / "server.log"
        token = secrets.token_urlsafe(32)
        env = {**os.environ, "UPSTREAM_ACCOUNTS": str(accounts_file), "UPSTREAM_REGISTRATION_TOKEN": token,
               "UPSTREAM_CLIENTS": json.dumps(clients or []), "UPSTREAM_HOST": "127.0.0.1", "UPSTREAM_PORT": "0",
               "NODE_ENV": "test"}
        with open(log_file, "wb") as log:
            process = subprocess.Popen([node, "server.mjs"], cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=log)
        try:
            issuer = _wait_ready(process, log_file)
            yield Upstream(issuer=issuer, accounts=accounts, registration_token=token)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout:
                process.stdout.close()


def _wait_ready(process: subprocess.Popen, log_file: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            raise RuntimeError(f"the upstream server did not start:\n{log_file.read_text(errors='replace')}")
        if selector.select(timeout=min(remaining, 0.5)):
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk and process.poll() is not None:
                continue
            line += chunk
    selector.close()
    match = re.match(rb"READY (\S+)", line)
    if not match:
        raise RuntimeError(f"unexpected upstream output {line!r}")
    issuer = match.group(1).decode()
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                return issuer
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the upstream discovery never answered:\n{log_file.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    """The running upstream OpenID provider (see :class:`Upstream`), one per test session."""
    with run_upstream() as running:
        yield running
