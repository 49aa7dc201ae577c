"""Citizens' pages: home, login with the local source."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, redirect, request, url_for

from broker import throttle
from broker.app import current_broker
from broker.oidc.authorize import RedirectableError, error_response, pending_request
from broker.errors import AccessDenied
from broker.web import browser, csrf_valid, error_page, page

blueprint = Blueprint("pages", __name__)
audit = logging.getLogger("nc_connect.audit")

GENERIC_FAILURE = "Adresse électronique ou mot de passe incorrect."


def client_ip() -> str:
    hops = current_broker().config.broker.trusted_proxies
    if hops:
        forwarded = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.remote_addr or "unknown"


@blueprint.route("/")
def home() -> Response:
    return page("home.html", title="NC Connect", account_id=browser().account_id)


def _login_page(rid: str | None, email: str = "", error: str | None = None, status: int = 200) -> Response:
    broker = current_broker()
    req = pending_request(rid) if rid else None
    client = broker.config.clients.get(req.client_id) if req else None
    provider = next(iter(broker.providers.values()))
    title = ("Erreur : " if error else "") + "Connexion – NC Connect"
    return page("login.html", status=status, title=title, rid=rid or "", email=email or (req.login_hint if req else "") or "",
                error=error, client=client, provider=provider)


@blueprint.route("/login", methods=["GET"])
def login() -> Response:
    rid = request.args.get("rid")
    if rid and pending_request(rid) is None:
        return error_page("Demande expirée",
                          "Votre demande de connexion a expiré. Retournez sur le site du service et cliquez à nouveau sur son bouton de connexion.",
                          400)
    return _login_page(rid)


@blueprint.route("/login", methods=["POST"])
def login_submit() -> Response:
    broker = current_broker()
    rid = request.form.get("rid") or None
    if not csrf_valid():
        return _login_page(rid, request.form.get("email", ""), "La page a expiré. Saisissez à nouveau vos identifiants.", 400)
    if rid and pending_request(rid) is None:
        return error_page("Demande expirée", "Votre demande de connexion a expiré. Retournez sur le site du service.", 400)
    if request.form.get("cancel") and rid:
        req = pending_request(rid)
        return error_response(RedirectableError(AccessDenied("the citizen cancelled the login"), req.redirect_uri, req.state))
    email = request.form.get("email", "").strip()[:254]
    password = request.form.get("password", "")
    ip = client_ip()
    provider = next(iter(broker.providers.values()))
    wait = throttle.retry_after(broker.store, email, ip)
    if wait:
        audit.info("login throttled source=%s ip=%s", provider.provider_id, ip)
        minutes = max(1, round(wait / 60))
        return _login_page(rid, email, f"Trop de tentatives. Réessayez dans {minutes} minute{'s' if minutes > 1 else ''}.", 429)
    identity = provider.authenticate(email, password) if email and password and len(password) <= 1024 else None
    if identity is None:
        throttle.record_failure(broker.store, email, ip)
        audit.info("login failure source=%s ip=%s", provider.provider_id, ip)
        return _login_page(rid, email, GENERIC_FAILURE, 200)
    throttle.record_success(broker.store, email, ip)
    browser().sign_in(identity.subject, identity.acr, list(identity.amr), identity.auth_time, identity.provider_id)
    audit.info("login success account=%s source=%s acr=%s", identity.subject, identity.provider_id, identity.acr)
    if rid:
        return redirect(url_for("oidc.resume", rid=rid), code=303)
    return redirect(url_for("pages.home"), code=303)
