"""Citizens' pages: home, the identity source choice, the local login form, and the end of every login."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from flask import Blueprint, Response, redirect, request, url_for
from flask_babel import gettext, lazy_gettext, ngettext

from broker import throttle
from broker.ui import localized
from broker.app import current_broker
from broker.errors import AccessDenied
from broker.identities import link_after_proof, resolve
from broker.oidc.authorize import AuthorizationRequest, RedirectableError, error_response, pending_request
from broker.web import browser, csrf_valid, error_page, page, page_title
from providers.base import PasswordProvider, UpstreamIdentity, level_rank

blueprint = Blueprint("pages", __name__)
audit = logging.getLogger("nc_connect.audit")

GENERIC_FAILURE = lazy_gettext("Adresse électronique ou mot de passe incorrect.")
LAST_SOURCE_COOKIE = "ncc_last_source"
EXPIRED = (lazy_gettext("Demande expirée"),
           lazy_gettext("Votre demande de connexion a expiré. Retournez sur le site du service "
                        "et cliquez à nouveau sur son bouton de connexion."))


def client_ip() -> str:
    hops = current_broker().config.broker.trusted_proxies
    if hops:
        forwarded = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.remote_addr or "unknown"


def remember_source(response: Response, provider_id: str) -> Response:
    """The citizen's last choice, shown first next time (an identifier only, no personal data)."""
    broker = current_broker()
    response.set_cookie(LAST_SOURCE_COOKIE, provider_id, max_age=365 * 86400, httponly=True,
                        secure=broker.config.broker.secure_cookies, samesite="Lax", path="/")
    return response


def local_provider() -> PasswordProvider | None:
    return next((p for p in current_broker().providers.values() if isinstance(p, PasswordProvider)), None)


@blueprint.route("/")
def home() -> Response:
    session = browser()
    since = session.get("authenticated_at") or session.get("auth_time") if session.account_id else None
    return page("home.html", title=current_broker().config.broker.branding.service_name,
                account_id=session.account_id,
                signed_in_at=datetime.fromtimestamp(since, timezone.utc) if since else None)


# -- choosing a source ------------------------------------------------------

def _request_or_none(rid: str | None) -> tuple[AuthorizationRequest | None, Response | None]:
    if not rid:
        return None, None
    req = pending_request(rid)
    return (req, None) if req else (None, error_page(*EXPIRED, status=400))


def start_source(provider_id: str, rid: str | None) -> Response:
    provider = current_broker().providers.get(provider_id)
    if provider is None:
        return error_page(gettext("Moyen de connexion inconnu"),
                          gettext("Ce moyen de connexion n'existe pas ou n'est pas activé."), 404,
                          advice=gettext("Revenez au choix du moyen de connexion et choisissez-en un autre."))
    if isinstance(provider, PasswordProvider):
        return _login_page(rid)
    from broker.upstream import begin

    return begin(provider, rid)


@blueprint.route("/login", methods=["GET"])
def login() -> Response:
    """The identity source page, skipped with a single source or an ``idp_hint``."""
    broker = current_broker()
    rid = request.args.get("rid")
    req, expired = _request_or_none(rid)
    if expired:
        return expired
    if req and req.idp_hint:
        return start_source(req.idp_hint, rid)
    sources = list(broker.providers.values())
    if len(sources) == 1:
        return start_source(sources[0].provider_id, rid)
    required = level_rank(req.acr_required) if req else 0
    last = request.cookies.get(LAST_SOURCE_COOKIE)
    sources.sort(key=lambda p: p.provider_id != last)
    settings = broker.config.providers
    choices = [{"id": p.provider_id, "name": localized(settings[p.provider_id]),
                "description": localized(settings[p.provider_id], "description"),
                "usable": level_rank(p.level) >= required, "last": p.provider_id == last,
                "franceconnect": settings[p.provider_id].button == "franceconnect",
                "plus": level_rank(p.level) >= level_rank("eidas2")}
               for p in sources]
    client = broker.config.clients.get(req.client_id) if req else None
    return page("choose.html", title=page_title(gettext("Choisir comment se connecter")), choices=choices, rid=rid or "",
                client=client, level=req.acr_required if req else None)


@blueprint.route("/login/<provider_id>", methods=["GET"])
def login_with(provider_id: str) -> Response:
    rid = request.args.get("rid")
    _, expired = _request_or_none(rid)
    return expired or remember_source(start_source(provider_id, rid), provider_id)


# -- the local source -------------------------------------------------------

def _login_page(rid: str | None, email: str = "", error: str | None = None, status: int = 200,
                errors: dict[str, str] | None = None) -> Response:
    """The login form; ``error`` concerns the whole form, ``errors`` each field (shown beside it)."""
    broker = current_broker()
    req = pending_request(rid) if rid else None
    client = broker.config.clients.get(req.client_id) if req else None
    errors = {**({"form": error} if error else {}), **(errors or {})}
    title = page_title(gettext("Connexion"), error=bool(errors))
    return page("login.html", status=status, title=title, rid=rid or "", errors=errors, client=client,
                email=email or (req.login_hint if req else "") or "", provider=local_provider(),
                other_sources=len(broker.providers) > 1)


@blueprint.route("/login", methods=["POST"])
def login_submit() -> Response:
    broker = current_broker()
    rid = request.form.get("rid") or None
    if not csrf_valid():
        return _login_page(rid, request.form.get("email", ""),
                           gettext("La page a expiré. Saisissez à nouveau vos identifiants."), 400)
    req, expired = _request_or_none(rid)
    if expired:
        return expired
    if request.form.get("cancel") and req:
        return error_response(RedirectableError(AccessDenied("the citizen cancelled the login"), req.redirect_uri, req.state))
    provider = local_provider()
    if provider is None:
        return error_page(gettext("Moyen de connexion inconnu"),
                          gettext("La connexion par mot de passe n'est pas activée."), 404)
    email = request.form.get("email", "").strip()[:254]
    password = request.form.get("password", "")
    missing = {**({"email": gettext("Saisissez votre adresse électronique.")} if not email else {}),
               **({"password": gettext("Saisissez votre mot de passe.")} if not password else {})}
    if missing:
        return _login_page(rid, email, errors=missing)
    ip = client_ip()
    wait = throttle.retry_after(broker.store, email, ip)
    if wait:
        audit.info("login throttled source=%s ip=%s", provider.provider_id, ip)
        minutes = max(1, round(wait / 60))
        return _login_page(rid, email, ngettext("Trop de tentatives. Réessayez dans %(num)d minute.",
                                                "Trop de tentatives. Réessayez dans %(num)d minutes.", minutes), 429)
    identity = provider.authenticate(email, password) if email and password and len(password) <= 1024 else None
    if identity is None:
        throttle.record_failure(broker.store, email, ip)
        audit.info("login failure source=%s ip=%s", provider.provider_id, ip)
        return _login_page(rid, email, status=200, errors={"password": GENERIC_FAILURE})
    throttle.record_success(broker.store, email, ip)
    from broker.account.mfa import after_password

    second_step = after_password(identity, rid, provider)  # the second factor, or an offer to enrol
    if second_step is not None:
        return remember_source(second_step, provider.provider_id)
    return remember_source(finish_login(identity, rid, local_account=identity.subject), provider.provider_id)


# -- the end of every login ---------------------------------------------------

def continue_after_login(rid: str | None) -> Response:
    if rid:
        return redirect(url_for("oidc.resume", rid=rid), code=303)
    from broker.account.hooks import after_login

    return redirect(after_login(browser()) or url_for("pages.home"), code=303)


def finish_login(identity: UpstreamIdentity, rid: str | None, *, local_account: str | None = None) -> Response:
    """Resolve the account, honour a pending link, and start a fresh session (new identifier)."""
    broker = current_broker()
    session = browser()
    # a login with the local password (possibly proving the account to link another source to)
    with_password = isinstance(broker.providers.get(identity.provider_id), PasswordProvider)
    account_id = local_account
    if account_id is None:
        resolution = resolve(broker, identity)
        if resolution.candidates:
            session["pending_link"] = {
                "provider_id": identity.provider_id, "subject": identity.subject, "acr": identity.acr,
                "amr": list(identity.amr), "auth_time": identity.auth_time, "candidates": resolution.candidates,
                "pivot": resolution.pivot, "session_data": dict(identity.session_data), "rid": rid,
            }
            return redirect(url_for("pages.link", rid=rid or None), code=303)
        account_id = resolution.account_id
    pending = session.get("pending_link")
    if pending and link_after_proof(broker, account_id, pending):
        # the session goes on with the source first chosen, now linked to the proven account
        identity = UpstreamIdentity(provider_id=pending["provider_id"], subject=pending["subject"],
                                    acr=pending["acr"], amr=tuple(pending["amr"]), auth_time=pending["auth_time"],
                                    session_data=pending["session_data"])
        rid = pending["rid"] or rid
    session.sign_in(account_id, identity.acr, list(identity.amr), identity.auth_time, identity.provider_id)
    from broker.account.hooks import password_login, signed_in

    signed_in(broker, session, identity.provider_id, identity.acr)
    if with_password:
        req = pending_request(rid) if rid else None
        client = broker.config.clients.get(req.client_id) if req else None
        password_login(broker, account_id, localized(client) if client else None)
    if identity.session_data:
        session["upstream"] = {"provider_id": identity.provider_id, "data": dict(identity.session_data)}
    audit.info("login success account=%s source=%s acr=%s", account_id, identity.provider_id, identity.acr)
    return continue_after_login(rid)
