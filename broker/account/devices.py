"""The browsers a citizen logs in from with their password, and the notice of a new one (checklist D-09,
ASVS 6.3.7).

Each browser gets a long-lived random identifier (256 bits) in the ``__Host-ncc_device`` cookie:
HttpOnly, Secure, SameSite=Lax, Path=/, one year, renewed at every login.  When ``secure_cookies`` is
off (plain HTTP on localhost), the cookie is ``ncc_device`` and is not Secure, like the session's.  The
``known_devices`` table keeps, per account, only a SHA-256 of the account id and that identifier (so the
same browser is not linkable across two accounts), the browser and system families ("Firefox",
"Windows": a few well-known names, never the User-Agent itself), and when the browser was first and
last seen.  At most :data:`MAX_PER_ACCOUNT` are kept, the least recently seen dropped first, and none
unseen for longer than the cookie lives.

At a password login (after the second factor, if any) from a browser the account does not know, the
citizen is emailed a notice: when, from which browser, to which téléservice, and how to react; no
secret, no IP address, no location.  The one exception is the account's very first login: it knows no
browser yet, its history (kept :data:`~broker.account.common.HISTORY_DAYS` days) holds no earlier login
from any source, and it was created less than that long ago, so nothing is missing from the history:
that login follows the sign-up, which was itself emailed.  An account that existed before browsers were
remembered, or whose known browsers were all dropped, is therefore still notified, and of two
concurrent first logins at least the one whose login was recorded second is.  A mail server that fails
is logged and the login goes on.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import timedelta

from flask import after_this_request, request
from flask_babel import gettext
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from broker.account.common import HISTORY_DAYS, credential, local_time, mail_enabled
from broker.app import Broker
from broker.mail import MailError, send
from broker.models import Account, AccountEvent, KnownDevice, utcnow

log = logging.getLogger("nc_connect.account")

LIFETIME = timedelta(days=365)
MAX_PER_ACCOUNT = 20
_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)

# (marker in the User-Agent, family), first match wins: Edge and Opera say "Chrome" too, Chrome says "Safari".
_BROWSERS = (("Edg/", "Edge"), ("EdgA/", "Edge"), ("EdgiOS/", "Edge"), ("Edge/", "Edge"), ("OPR/", "Opera"),
             ("Opera", "Opera"), ("SamsungBrowser/", "Samsung Internet"), ("Firefox/", "Firefox"),
             ("FxiOS/", "Firefox"), ("CriOS/", "Chrome"), ("Chrome/", "Chrome"), ("Chromium/", "Chromium"),
             ("Safari/", "Safari"), ("Trident/", "Internet Explorer"), ("MSIE ", "Internet Explorer"))
# Android and iOS say "Linux" and "like Mac OS X" too.
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("iPod", "iPhone"),
            ("Windows", "Windows"), ("CrOS", "ChromeOS"), ("Macintosh", "macOS"), ("Mac OS X", "macOS"),
            ("Linux", "Linux"))


def families(user_agent: str | None) -> tuple[str | None, str | None]:
    """The browser and system families of a User-Agent, among a few well-known ones (None otherwise)."""
    ua = (user_agent or "")[:512]
    browser = next((name for marker, name in _BROWSERS if marker in ua), None)
    system = next((name for marker, name in _SYSTEMS if marker in ua), None)
    return browser, system


def summary(browser: str | None, system: str | None, *, capitalised: bool = False) -> str:
    """"Firefox sur Windows", in the current language; "un navigateur inconnu" when nothing is recognised
    (``capitalised``: "Un navigateur inconnu", to stand alone, as in a table's cell)."""
    if browser and system:
        text = gettext("%(browser)s sur %(system)s", browser=browser, system=system)
    elif browser:
        text = browser
    elif system:
        text = gettext("un navigateur sur %(system)s", system=system)
    else:
        text = gettext("un navigateur inconnu")
    return text[:1].upper() + text[1:] if capitalised else text


def describe(user_agent: str | None, *, capitalised: bool = False) -> str:
    """:func:`summary` of a User-Agent's families."""
    return summary(*families(user_agent), capitalised=capitalised)


def cookie_name(broker: Broker) -> str:
    return "__Host-ncc_device" if broker.config.broker.secure_cookies else "ncc_device"


def _hash(account_id: str, value: str) -> str:
    return hashlib.sha256(f"ncc-device\0{account_id}\0{value}".encode()).hexdigest()


def _set_cookie(broker: Broker, value: str) -> None:
    secure = broker.config.broker.secure_cookies

    @after_this_request
    def _cookie(response):
        # on whatever response ends this request (the login may go on to a second step's redirect)
        response.set_cookie(cookie_name(broker), value, max_age=int(LIFETIME.total_seconds()), httponly=True,
                            secure=secure, samesite="Lax", path="/")
        return response


def known(broker: Broker, account_id: str) -> list[KnownDevice]:
    """The account's known browsers, the most recently seen first."""
    with broker.sessions() as s:
        return list(s.execute(select(KnownDevice).where(KnownDevice.account_id == account_id)
                              .order_by(KnownDevice.last_seen.desc())).scalars())


def password_login(broker: Broker, account_id: str, service: str | None = None) -> bool:
    """Called once a password login is complete (``service``: the téléservice's name, when one asked).
    Remembers the browser; True when it was new and this is not the account's very first login (notice sent or
    tried).  It runs after :func:`broker.account.hooks.signed_in` recorded this login in the account's history."""
    value = request.cookies.get(cookie_name(broker), "")
    if not _VALUE.match(value):
        value = secrets.token_urlsafe(32)
    device_hash = _hash(account_id, value)
    browser, system = families(request.headers.get("User-Agent"))
    now = utcnow()
    new = False
    try:
        with broker.sessions.begin() as s:
            row = s.get(KnownDevice, device_hash)
            if row is not None:
                row.last_seen, row.browser, row.system = now, browser, system
            else:
                new = not _first_login(s, account_id, now)
                s.add(KnownDevice(device_hash=device_hash, account_id=account_id, browser=browser, system=system,
                                  first_seen=now, last_seen=now))
            s.flush()
            _prune(s, account_id, now)
    except IntegrityError:  # the same browser's concurrent login remembered it first
        new = False
    _set_cookie(broker, value)
    if new:
        _notify(broker, account_id, summary(browser, system), service)
    return new


def _first_login(s, account_id: str, now) -> bool:
    """The account's very first login: no known browser, no earlier login in its history (only this one, just
    recorded), and created recently enough that its history is complete.  Decided from the history rather
    than from ``known_devices`` alone, which is empty for accounts older than this feature; of two concurrent
    first logins, the one recorded second sees both."""
    if s.execute(select(KnownDevice.device_hash).where(KnownDevice.account_id == account_id).limit(1)).first():
        return False
    logins = s.execute(select(func.count()).select_from(AccountEvent)
                       .where(AccountEvent.account_id == account_id, AccountEvent.kind == "login")).scalar_one()
    if logins > 1:
        return False
    return s.execute(select(Account.id).where(Account.id == account_id,
                                              Account.created_at >= now - timedelta(days=HISTORY_DAYS))).first() \
        is not None


def _prune(s, account_id: str, now) -> None:
    s.execute(delete(KnownDevice).where(KnownDevice.account_id == account_id, KnownDevice.last_seen < now - LIFETIME))
    extra = list(s.execute(select(KnownDevice.device_hash).where(KnownDevice.account_id == account_id)
                           .order_by(KnownDevice.last_seen.desc()).offset(MAX_PER_ACCOUNT)).scalars())
    if extra:
        s.execute(delete(KnownDevice).where(KnownDevice.device_hash.in_(extra)))


def _notify(broker: Broker, account_id: str, device: str, service: str | None) -> None:
    from broker.account.signup import issuer_url

    cred = credential(broker, account_id)
    if cred is None or not mail_enabled(broker):
        return
    try:
        send(broker.config.broker.smtp, cred.email, "new_device", when=local_time(utcnow()), device=device,
             service=service, totp=bool(cred.totp_secret), reset_url=issuer_url("account.reset_request"),
             mfa_url=issuer_url("account.mfa_manage"))
    except MailError:  # already logged by broker.mail, without the address
        log.warning("new-device notice not sent account=%s; the login goes on", account_id)
