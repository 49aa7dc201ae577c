"""The second factor of local accounts: TOTP (RFC 6238) and recovery codes.

* Enrolment: a fresh secret (160 bits) kept in the server-side session until the citizen
  types a first code from their application (QR code as an inline SVG ``data:`` URI, and
  the secret in text for manual entry).  Ten recovery codes (80 random bits each) are then
  shown once; only their SHA-256 is stored, and each serves once.
* Login: after a correct password, the half-authenticated state stays in the server-side
  session (``mfa_pending``, a new session identifier) and a code is asked on its own page,
  throttled per account and per IP, with five tries before the password is asked again.
  A code (time step) is never accepted twice.
* At rest: the TOTP secret is encrypted (broker.secretbox, bound to its account); a legacy
  clear value is re-encrypted at its next successful use, or by ``nc-connect keys seal-totp``.
  A value that does not open with the data key refuses every code (fail closed; the recovery
  codes still serve).
* Level: with the second factor a local login reaches the provider's ``second_factor_level``
  (amr pwd, otp, mfa); with the password alone, eidas1.  When a téléservice asks more than a
  password gives, an account without a second factor is offered to enrol, or goes back to
  the service with ``unmet_authentication_requirements``; never a false ``acr``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field

import pyotp
import segno
from flask import Response, redirect, request, url_for
from flask_babel import gettext, lazy_gettext, ngettext
from sqlalchemy import delete, func, inspect, or_, select, update

from broker import secretbox, throttle
from broker.account import blueprint, sessions_index
from broker.account.common import (
    client_ip, credential, form_page, page_expired, record, require_fresh, signed_in, signed_in_account,
    user_agent,
)
from broker.account.recovery import issuer_url
from broker.app import current_broker
from broker.mail import MailError, send
from broker.models import Account, LocalCredential, RecoveryCode, utcnow
from broker.oidc.authorize import (
    RedirectableError, UnmetAuthenticationRequirements, error_response, pending_request,
)
from broker.web import browser, csrf_valid, error_page, page, page_title
from providers.base import UpstreamIdentity, level_rank
from providers.local import PASSWORD_LEVEL

ISSUER_NAME = "NC Connect"
RECOVERY_CODES = 10
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32: no i, l, o, u
PENDING_LIFETIME = 5 * 60
MAX_TRIES = 5
SECOND_FACTOR_AMR = ["pwd", "otp", "mfa"]
log = logging.getLogger("nc_connect.mfa")
LOGIN_EXPIRED = (lazy_gettext("Demande expirée"),
                 lazy_gettext("La connexion a pris trop de temps. Recommencez depuis le site du service, ou depuis la "
                              "page de connexion."))


# -- TOTP and recovery codes ------------------------------------------------------------

def enabled(broker, account_id: str) -> bool:
    cred = credential(broker, account_id)
    return bool(cred and cred.totp_secret)


def new_secret() -> str:
    return pyotp.random_base32(32)


def otpauth_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER_NAME)


def qr_data_uri(uri: str) -> str:
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def totp_clock() -> float:
    return time.time()


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step (30 s) whose code is ``code``, allowing one step of clock drift either way."""
    code = "".join(code.split())
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    now = int((totp_clock() if at is None else at) // totp.interval)
    for step in (now, now - 1, now + 1):
        if hmac.compare_digest(totp.at(step * totp.interval), code):
            return step
    return None


def _seal(broker, account_id: str, secret: str) -> str:
    return secretbox.seal(broker.keys.ensure_data_key(), secret, secretbox.aad("totp", account_id))


def sealed_count(engine) -> int:
    """How many TOTP secrets the database holds sealed with a data key (0 before the schema has them)."""
    inspector = inspect(engine)
    if not inspector.has_table(LocalCredential.__tablename__) or "totp_secret" not in {
            c["name"] for c in inspector.get_columns(LocalCredential.__tablename__)}:
        return 0
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(LocalCredential).where(
            LocalCredential.totp_secret.like(secretbox.PREFIX + "%"))).scalar_one()


@dataclass
class SealReport:
    sealed: int = 0  # legacy clear values sealed by this run
    already: int = 0  # sealed values that open with the data key
    not_opening: list[str] = field(default_factory=list)  # accounts whose sealed value does not open


def seal_legacy_secrets(sessions, data_key: bytes) -> SealReport:
    """Seal every TOTP secret still stored in clear (``nc-connect keys seal-totp``), and check
    that the sealed ones open with ``data_key``.  Idempotent; safe alongside logins and another
    run: a row is only rewritten while it still holds the clear value read (a login that sealed
    it meanwhile, a disable or a new enrolment wins)."""
    report = SealReport()
    with sessions() as s:
        rows = s.execute(select(LocalCredential.account_id, LocalCredential.totp_secret)
                         .where(LocalCredential.totp_secret.is_not(None))).all()
    for account_id, value in rows:
        associated = secretbox.aad("totp", account_id)
        if secretbox.is_sealed(value):
            try:
                secretbox.unseal(data_key, value, associated)
                report.already += 1
            except secretbox.SecretBoxError:
                report.not_opening.append(account_id)
            continue
        with sessions.begin() as s:
            report.sealed += s.execute(update(LocalCredential).where(
                LocalCredential.account_id == account_id, LocalCredential.totp_secret == value,
            ).values(totp_secret=secretbox.seal(data_key, value, associated))).rowcount
    return report


def _clear_secret(broker, account_id: str, stored: str) -> str | None:
    """The TOTP secret in clear (a legacy value is stored in clear); None when it does not open."""
    if not secretbox.is_sealed(stored):
        return stored
    try:
        return secretbox.unseal(broker.keys.ensure_data_key(), stored, secretbox.aad("totp", account_id))
    except secretbox.SecretBoxError:
        log.error("TOTP secret of account %s does not open: the data key does not match the one it was "
                  "encrypted with (or the value belongs to another account); every code is refused", account_id)
        return None


def verify_totp(broker, account_id: str, code: str) -> bool:
    cred = credential(broker, account_id)
    if not cred or not cred.totp_secret:
        return False
    secret = _clear_secret(broker, account_id, cred.totp_secret)
    step = matching_step(secret, code) if secret else None
    if step is None:
        return False
    values = {"totp_last_step": step}
    if not secretbox.is_sealed(cred.totp_secret):
        values["totp_secret"] = _seal(broker, account_id, secret)  # legacy clear value: encrypted from now on
    with broker.sessions.begin() as s:  # a code is accepted once: the step must move forward
        return s.execute(update(LocalCredential).where(
            LocalCredential.account_id == account_id, LocalCredential.totp_secret == cred.totp_secret,
            or_(LocalCredential.totp_last_step.is_(None), LocalCredential.totp_last_step < step),
        ).values(**values)).rowcount == 1


def _code_hash(code: str) -> str:
    normal = code.lower().replace("-", "").replace(" ", "").translate(str.maketrans("oil", "011"))
    return hashlib.sha256(normal.encode()).hexdigest()


def new_recovery_codes(broker, account_id: str) -> list[str]:
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(16)) for _ in range(RECOVERY_CODES)]
    codes = ["-".join(c[i:i + 4] for i in range(0, 16, 4)) for c in codes]
    with broker.sessions.begin() as s:
        s.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account_id))
        s.add_all(RecoveryCode(code_hash=_code_hash(c), account_id=account_id) for c in codes)
    return codes


def use_recovery_code(broker, account_id: str, code: str) -> bool:
    if not 8 <= len(code) <= 40:
        return False
    with broker.sessions.begin() as s:
        return s.execute(update(RecoveryCode).where(
            RecoveryCode.code_hash == _code_hash(code), RecoveryCode.account_id == account_id,
            RecoveryCode.used_at.is_(None)).values(used_at=utcnow())).rowcount == 1


def recovery_codes_left(broker, account_id: str) -> int:
    with broker.sessions() as s:
        return len(s.execute(select(RecoveryCode.code_hash).where(
            RecoveryCode.account_id == account_id, RecoveryCode.used_at.is_(None))).all())


def enable(broker, account_id: str, secret: str, step: int) -> list[str]:
    with broker.sessions.begin() as s:
        s.execute(update(LocalCredential).where(LocalCredential.account_id == account_id)
                  .values(totp_secret=_seal(broker, account_id, secret), totp_enabled_at=utcnow(),
                          totp_last_step=step))
    return new_recovery_codes(broker, account_id)


def disable(broker, account_id: str) -> None:
    with broker.sessions.begin() as s:
        s.execute(update(LocalCredential).where(LocalCredential.account_id == account_id)
                  .values(totp_secret=None, totp_enabled_at=None, totp_last_step=None))
        s.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account_id))


def _notify(account, template: str) -> None:
    try:
        send(current_broker().config.broker.smtp, account.email, template,
             account_url=issuer_url("account.space"), reset_url=issuer_url("account.reset_request"))
    except MailError:
        pass


# -- the login: after the password ------------------------------------------------------------

def after_password(identity: UpstreamIdentity, rid: str | None, provider) -> Response | None:
    """Called by the login form once the password is right.  A response when a second step
    is needed (the code, or an offer to enrol); None to finish the login with the password."""
    broker = current_broker()
    account_id = identity.subject
    if enabled(broker, account_id):
        session = browser()
        carried = {k: session.get(k) for k in ("pending_link",) if session.get(k)}
        session.regenerate()  # half-authenticated: a new identifier already
        for key, value in carried.items():
            session[key] = value
        session["mfa_pending"] = {"account_id": account_id, "provider_id": provider.provider_id, "rid": rid,
                                  "started": time.time(), "tries": 0}
        return redirect(url_for("account.login_code"), code=303)
    req = pending_request(rid) if rid else None
    if req and level_rank(req.acr_required) > level_rank(PASSWORD_LEVEL) \
            and level_rank(provider.second_factor_level) >= level_rank(req.acr_required):
        from broker.pages import finish_login

        finish_login(identity, rid, local_account=account_id)  # signed in at the password's level
        return redirect(url_for("account.step_up", rid=rid), code=303)
    return None


def _pending() -> dict | None:
    pending = browser().get("mfa_pending")
    if not pending or pending["started"] + PENDING_LIFETIME < time.time():
        return None
    return pending


def _code_page(errors: dict[str, str] | None = None, status: int = 200) -> Response:
    return form_page("account/login_code.html", gettext("Code de vérification"), errors, status)


@blueprint.route("/login/code", methods=["GET"])
def login_code() -> Response:
    if _pending() is None:
        return error_page(*LOGIN_EXPIRED, 400)
    return _code_page()


@blueprint.route("/login/code", methods=["POST"])
def login_code_submit() -> Response:
    from broker.pages import finish_login, local_provider, remember_source

    broker = current_broker()
    session = browser()
    pending = _pending()
    if pending is None:
        return error_page(*LOGIN_EXPIRED, 400)
    if not csrf_valid():
        return _code_page({"form": gettext("La page a expiré. Saisissez à nouveau le code.")}, 400)
    account_id, ip = pending["account_id"], client_ip()
    wait = throttle.retry_after_scoped(broker.store, "mfa", (account_id, ip))
    if wait:
        minutes = max(1, round(wait / 60))
        return _code_page({"code": ngettext("Trop de tentatives. Réessayez dans %(num)d minute.",
                                            "Trop de tentatives. Réessayez dans %(num)d minutes.", minutes)}, 429)
    code = request.form.get("code", "").strip()
    recovery = request.form.get("recovery_code", "").strip()
    ok = use_recovery_code(broker, account_id, recovery) if recovery else verify_totp(broker, account_id, code)
    if not ok:
        throttle.count_scoped(broker.store, "mfa", {account_id: throttle.FREE_ATTEMPTS, ip: 10 * throttle.FREE_ATTEMPTS})
        pending["tries"] += 1
        if pending["tries"] >= MAX_TRIES:
            session.pop("mfa_pending")
            return error_page(gettext("Trop d'essais"), gettext("Le code a été refusé trop de fois. Recommencez la "
                                                                "connexion depuis le début."), 400)
        session["mfa_pending"] = pending
        field = "recovery_code" if recovery else "code"
        return _code_page({field: gettext("Ce code n'est pas valide. Vérifiez-le et réessayez.") if not recovery else
                           gettext("Ce code de secours n'est pas valide ou a déjà servi.")})
    session.pop("mfa_pending")
    throttle.clear_scoped(broker.store, "mfa", account_id)
    provider = local_provider()
    identity = UpstreamIdentity(provider_id=pending["provider_id"], subject=account_id,
                                acr=provider.second_factor_level, amr=tuple(SECOND_FACTOR_AMR),
                                auth_time=int(time.time()))
    if recovery:
        record(broker, account_id, "recovery_code_used")
    return remember_source(finish_login(identity, pending["rid"], local_account=account_id), provider.provider_id)


# -- a téléservice asks more than a password gives ----------------------------------------------

@blueprint.route("/compte/connexion-renforcee", methods=["GET", "POST"])
def step_up() -> Response:
    broker = current_broker()
    rid = request.values.get("rid", "")
    req = pending_request(rid) if rid else None
    account = signed_in_account()
    if req is None or account is None:
        return error_page(gettext("Demande expirée"),
                          gettext("Votre demande de connexion a expiré. Retournez sur le site du service."), 400)
    if request.method == "POST":
        if not csrf_valid():
            return error_page(gettext("Page expirée"), gettext("La page a expiré. Retournez sur le site du service."),
                              400)
        pending = dict(browser().get("authz", {}))
        pending.pop(rid, None)
        browser()["authz"] = pending
        return error_response(RedirectableError(
            UnmetAuthenticationRequirements(f"the local account has no second factor for {req.acr_required}"),
            req.redirect_uri, req.state))
    client = broker.config.clients.get(req.client_id)
    return page("account/step_up.html", title=page_title(gettext("Connexion renforcée demandée")), client=client,
                rid=rid, level=req.acr_required)


# -- managing the second factor ---------------------------------------------------------------

def _enrol_page(account, secret: str, rid: str, errors: dict[str, str] | None = None) -> Response:
    uri = otpauth_uri(secret, account.email or account.id)
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return form_page("account/mfa_enrol.html", gettext("Activer la double authentification"), errors,
                     qr=qr_data_uri(uri), secret=grouped, rid=rid)


@blueprint.route("/compte/double-authentification", methods=["GET"])
@signed_in
def mfa_manage(account: Account) -> Response:
    broker = current_broker()
    if credential(broker, account.id) is None:
        return error_page(gettext("Sans objet"), gettext("La double authentification protège les comptes à mot de "
                                                         "passe ; votre compte n'en a pas."),
                          400, back_url=url_for("account.space"))
    rid = request.args.get("rid", "") if pending_request(request.args.get("rid", "")) else ""
    if enabled(broker, account.id):
        return page("account/mfa_manage.html", title=page_title(gettext("Double authentification")),
                    codes_left=recovery_codes_left(broker, account.id))
    stale = require_fresh("2fa")
    if stale:
        return stale
    session = browser()
    secret = session.get("totp_setup") or new_secret()
    session["totp_setup"] = secret
    return _enrol_page(account, secret, rid)


@blueprint.route("/compte/double-authentification", methods=["POST"])
@signed_in
def mfa_submit(account: Account) -> Response:
    from broker.pages import local_provider

    broker = current_broker()
    session = browser()
    if not csrf_valid():
        return page_expired()
    stale = require_fresh("2fa")
    if stale:
        return stale
    action = request.form.get("action")
    if action == "enable" and not enabled(broker, account.id):
        secret = session.get("totp_setup")
        rid = request.form.get("rid", "")
        if not secret:
            return redirect(url_for("account.mfa_manage"), code=303)
        step = matching_step(secret, request.form.get("code", ""))
        if step is None:
            return _enrol_page(account, secret, rid, {"code": gettext("Ce code ne correspond pas. Vérifiez l'heure de "
                                                              "votre téléphone et saisissez le code affiché "
                                                              "maintenant.")})
        codes = enable(broker, account.id, secret, step)
        session.pop("totp_setup")
        record(broker, account.id, "totp_enabled")
        _notify(account, "totp_enabled")
        provider = local_provider()
        if provider and session.get("provider_id") == provider.provider_id:
            # both factors were just proven: the session reaches the second factor's level (new identifier)
            session.sign_in(account.id, provider.second_factor_level, SECOND_FACTOR_AMR, int(time.time()),
                            provider.provider_id)
            sessions_index.register(broker, session, user_agent())
        next_url = url_for("oidc.resume", rid=rid) if rid and pending_request(rid) else url_for("account.space")
        return page("account/recovery_codes.html", title=page_title(gettext("Vos codes de secours")), codes=codes,
                    next_url=next_url, enrolled=True)
    if action == "codes" and enabled(broker, account.id):
        codes = new_recovery_codes(broker, account.id)
        record(broker, account.id, "recovery_codes_renewed")
        return page("account/recovery_codes.html", title=page_title(gettext("Vos codes de secours")), codes=codes,
                    next_url=url_for("account.space"), enrolled=False)
    if action == "disable" and enabled(broker, account.id):
        disable(broker, account.id)
        record(broker, account.id, "totp_disabled")
        _notify(account, "totp_disabled")
        heading = gettext("Double authentification désactivée")
        return page("account/message.html", title=page_title(heading), heading=heading,
                    paragraphs=[gettext("Votre compte est de nouveau protégé par votre seul mot de passe.")],
                    links=[(gettext("Mon compte"), url_for("account.space"))])
    return redirect(url_for("account.mfa_manage"), code=303)
