"""Local accounts through HTTP as a browser would, with a real SMTP server in the process.

The SMTP server is aiosmtpd on 127.0.0.1 (one for the run); each test reads the messages
sent to it from a fresh ``mailbox``.  The broker's configuration points ``smtp`` at it.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest

from tests.conftest import ISSUER, PASSWORD, PG_URL, REDIS_URL, Flow, csrf_of, query_of, write_config

SENDER = "ne-pas-repondre@nc-connect.test"
COOKIE = "__Host-ncc_session"
NEW_PASSWORD = "une tortue verte nage vers l'îlot Maître"


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address in m["X-Envelope-To"]]

    def last(self, address: str, timeout: float = 5.0) -> EmailMessage:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.to(address)
            if found:
                return found[-1]
            time.sleep(0.02)
        raise AssertionError(f"no message for {address}; got {[m['To'] for m in self.messages]}")


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def link_in(message: EmailMessage) -> str:
    """The broker link of a message, as a path the test client can open."""
    links = re.findall(re.escape(ISSUER) + r"/[^\s]+", text_of(message))
    assert links, text_of(message)
    parts = urlsplit(links[0])
    return parts.path + ("?" + parts.query if parts.query else "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_server():
    from aiosmtpd.controller import Controller

    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def mailbox(smtp_server) -> Mailbox:
    smtp_server.handler.clear()
    return smtp_server.handler


def smtp_block(port: int) -> str:
    return f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  starttls: false\n  sender: {SENDER}\n"


@pytest.fixture
def config_dir(tmp_path, backend, smtp_server):
    extra = smtp_block(smtp_server.port)
    if backend == "server":
        return write_config(tmp_path / "config", database_url=PG_URL, redis_url=REDIS_URL, extra=extra)
    return write_config(tmp_path / "config", database_url="sqlite:///broker.db", extra=extra)


# -- a browser ---------------------------------------------------------------------------------

def new_browser(app):
    c = app.test_client()
    c.environ_base["wsgi.url_scheme"] = "https"
    c.environ_base["HTTP_HOST"] = "nc-connect.test"
    return c


def submit(client, path: str, data: dict, *, page: str | None = None):
    """GET ``page`` (default ``path``) for its CSRF token, then POST the form to ``path``."""
    html = client.get(page or path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_of(html), **data})


def session_cookie(client) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def login(client, email_: str = "citoyen@example.nc", password: str = PASSWORD):
    """Log in from the home page's login link (no téléservice): the response of the password form."""
    html = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"csrf_token": csrf_of(html), "rid": "", "email": email_, "password": password})


def has_sso(client) -> bool:
    params = query_of(Flow(client).authorize(prompt="none").headers["Location"])
    return "code" in params


IDENTITY = {"given_name": "Marie Louise", "family_name": "Wamytan", "birthdate": "1990-04-12", "gender": "female",
            "birthplace": "98818"}


def signup_form(email_: str, password: str = NEW_PASSWORD, **overrides) -> dict:
    return {"email": email_, "password": password, **IDENTITY, **overrides}


def text(response) -> str:
    """A page's HTML with entities decoded (Jinja escapes apostrophes as &#39;)."""
    import html

    return html.unescape(response.get_data(as_text=True))


def without_csrf(html: str) -> str:
    """A page with its per-session CSRF tokens blanked, to compare two browsers' pages."""
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value="CSRF"', html)
