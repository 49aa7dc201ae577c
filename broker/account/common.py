"""Helpers shared by the account pages: the signed-in citizen, fresh authentication (D-16),
form errors, throttling of the mail-sending forms (D-06) and the account's history."""

from __future__ import annotations

import functools
import logging
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from babel.dates import format_datetime
from flask import Response, redirect, request, url_for
from flask_babel import get_locale, gettext, ngettext
from sqlalchemy import delete, select

from broker import throttle
from broker.app import Broker, current_broker
from broker.models import Account, AccountEvent, LocalCredential, utcnow
from broker.web import browser, error_page, page, page_title

audit = logging.getLogger("nc_connect.audit")

# D-16: a change of password, email, second factor or the account's deletion needs an
# authentication (login or password confirmation) at most this old.
FRESH_AUTH = 10 * 60
HISTORY_DAYS = 365
NOUMEA = timezone(timedelta(hours=11), "Nouméa")  # New Caledonia has no daylight saving time
EMAIL = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]{2,}$")
# Where the login may send the citizen back to (E-12: fixed internal paths only)
AFTER_LOGIN = {"/compte"}


def valid_email(value: str) -> bool:
    return len(value) <= 254 and bool(EMAIL.match(value))


def mail_enabled(broker: Broker) -> bool:
    return broker.config.broker.smtp is not None


def client_ip() -> str:
    from broker.pages import client_ip as ip

    return ip()


def signed_in_account() -> Account | None:
    from broker.accounts import get_account

    account_id = browser().account_id
    return get_account(current_broker().sessions, account_id) if account_id else None


def signed_in(view: Callable[..., Response]) -> Callable[..., Response]:
    """A page of the citizen's space: the view gets the signed-in ``account``; anyone else signs in first."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        account = signed_in_account()
        if account is None:
            return to_login()
        return view(account, *args, **kwargs)
    return wrapper


def to_login() -> Response:
    """Sign in first, then come back to the citizen's space."""
    browser()["after_login"] = "/compte"
    return redirect(url_for("pages.login"), code=303)


def page_expired() -> Response:
    """A form of the citizen's space came back without its anti-CSRF token (E-09)."""
    return error_page(gettext("Page expirée"), gettext("La page a expiré. Recommencez."), 400,
                      back_url=url_for("account.space"))


def credential(broker: Broker, account_id: str) -> LocalCredential | None:
    with broker.sessions() as s:
        return s.get(LocalCredential, account_id)


def is_fresh() -> bool:
    session = browser()
    last = max(session.get("auth_time", 0), session.get("reauth_at", 0))
    return last + FRESH_AUTH >= time.time()


def require_fresh(step: str) -> Response | None:
    """None when the last authentication is fresh; otherwise the confirmation page, then back to ``step``."""
    if is_fresh():
        return None
    return redirect(url_for("account.reauth", suite=step), code=303)


def brand() -> str:
    """The service's name (``branding.service_name``), for the messages that name it."""
    return current_broker().config.broker.branding.service_name


def form_page(template: str, title: str, errors: dict[str, str] | None = None, status: int = 200,
              **context: Any) -> Response:
    """A form page; with errors, the title says so first (WCAG 3.3.1) and each error sits by its field."""
    errors = errors or {}
    title = page_title(title)
    if errors:
        title = ngettext("Erreur (%(num)d) : %(title)s", "Erreurs (%(num)d) : %(title)s", len(errors), title=title)
    return page(template, status=status, title=title, errors=errors, **context)


def throttled(scope: str, *subjects: str) -> Response | None:
    """The answer when the form is throttled for one of ``subjects`` (IP, email…), else None."""
    wait = throttle.retry_after_scoped(current_broker().store, scope, subjects)
    if not wait:
        return None
    minutes = max(1, round(wait / 60))
    audit.info("%s throttled ip=%s", scope, client_ip())
    return error_page(gettext("Trop de demandes"),
                      ngettext("Trop de demandes ont été faites depuis votre connexion ou pour cette adresse. "
                               "Réessayez dans %(num)d minute.",
                               "Trop de demandes ont été faites depuis votre connexion ou pour cette adresse. "
                               "Réessayez dans %(num)d minutes.", minutes), 429)


def record(broker: Broker, account_id: str, kind: str, *, client_id: str | None = None,
           provider_id: str | None = None, acr: str | None = None) -> None:
    """One line of the account's history (and of the audit log); no personal data beyond the ids."""
    audit.info("account event %s account=%s client=%s source=%s acr=%s", kind, account_id, client_id or "-",
               provider_id or "-", acr or "-")
    with broker.sessions.begin() as s:
        s.add(AccountEvent(account_id=account_id, kind=kind, client_id=client_id, provider_id=provider_id, acr=acr))
        s.execute(delete(AccountEvent).where(AccountEvent.account_id == account_id,
                                             AccountEvent.at < utcnow() - timedelta(days=HISTORY_DAYS)))


def history(broker: Broker, account_id: str, limit: int = 50) -> list[AccountEvent]:
    with broker.sessions() as s:
        return list(s.execute(select(AccountEvent).where(AccountEvent.account_id == account_id)
                              .order_by(AccountEvent.at.desc()).limit(limit)).scalars())


def local_time(value: datetime | float | None) -> str:
    """A date and time in Nouméa, in the page's language: "12/04/2026 à 14:05", "12/04/2026 at 14:05"."""
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    locale = get_locale() or "fr"
    return gettext("%(date)s à %(time)s",
                   date=format_datetime(value, "dd/MM/yyyy", tzinfo=NOUMEA, locale=locale),
                   time=format_datetime(value, "HH:mm", tzinfo=NOUMEA, locale=locale))


def service_names(broker: Broker) -> list[str]:
    return [c.name for c in broker.config.clients.values()] + [p.name for p in broker.providers.values()]


def user_agent() -> str:
    return (request.headers.get("User-Agent") or "")[:200]
