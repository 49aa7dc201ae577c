"""What the rest of the broker calls at a login and at each authorization (imported lazily)."""

from __future__ import annotations

from broker.account import sessions_index
from broker.account.common import AFTER_LOGIN, record, user_agent
from broker.app import Broker
from broker.sessions import BrowserSession


def signed_in(broker: Broker, session: BrowserSession, provider_id: str, acr: str) -> None:
    """Right after ``session.sign_in``: index the session under its account, and note the login."""
    sessions_index.register(broker, session, user_agent())
    record(broker, session.account_id, "login", provider_id=provider_id, acr=acr)


def password_login(broker: Broker, account_id: str, service: str | None) -> None:
    """A login with the local password is complete: remember the browser, notify a new one (D-09)."""
    from broker.account import devices

    devices.password_login(broker, account_id, service)


def code_issued(broker: Broker, session: BrowserSession, client_id: str) -> None:
    """The connection history: which téléservice, when, with which source and level; and the session's
    index remembers the téléservice, for a back-channel logout even after the session's state expired."""
    sessions_index.note_client(broker, session.store_key, client_id)
    record(broker, session.account_id, "authorized", client_id=client_id, provider_id=session.get("provider_id"),
           acr=session.get("acr"))


def after_login(session: BrowserSession) -> str | None:
    """Where a login without a pending authorization returns (a fixed internal path, E-12)."""
    target = session.pop("after_login", None) if session.get("after_login") else None
    return target if target in AFTER_LOGIN else None
