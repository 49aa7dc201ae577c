"""Cross-cutting web concerns: the browser session, CSRF, security headers, error pages."""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, g, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

from broker.errors import UnsafeRedirect
from broker.health import ENDPOINTS as HEALTH_ENDPOINTS
from broker.sessions import BrowserSession
from broker.ui import N_

log = logging.getLogger("nc_connect.web")

# Endpoints whose responses may be cached by clients (public, no personal data).
_CACHEABLE = {"oidc.discovery", "oidc.jwks", "static", "ui.brand_css", "ui.brand_logo"}
# Endpoints that téléservices call from browsers (CORS from the configured allowlist only).
_CORS = {"oidc.discovery", "oidc.jwks", "oidc.token", "oidc.userinfo"}


# Titles of HTTP error pages, marked for translation (translated when shown).
_HTTP_TITLES = {400: N_("Requête invalide"), 404: N_("Page introuvable"), 405: N_("Méthode non autorisée"),
                413: N_("Requête trop volumineuse")}


def browser() -> BrowserSession:
    return g.browser


def csrf_valid() -> bool:
    sent = request.form.get("csrf_token", "")
    expected = browser().get("csrf")
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def page(template: str, status: int = 200, **context) -> Response:
    html = render_template(template, csrf_token=browser().csrf_token(), template_name=template, **context)
    return Response(html, status=status, mimetype="text/html")


def page_title(title: str, *, error: bool = False) -> str:
    """``<title>``: the page, then the service; "Erreur : " first when a form came back with errors."""
    from broker.app import current_broker

    text = f"{title} – {current_broker().config.broker.branding.service_name}"
    return gettext("Erreur : %(title)s", title=text) if error else text


def _current_client():
    """The téléservice the citizen came from, when a pending authorization request says so."""
    from broker.app import current_broker
    from broker.oidc.authorize import pending_request

    if "browser" not in g:
        return None
    try:
        rid = g.get("rid") or request.args.get("rid") or (request.form.get("rid") if request.method == "POST" else None)
        req = pending_request(str(rid)[:100]) if rid else None
    except Exception:  # an error page must render even when the session store is what failed
        return None
    return current_broker().config.clients.get(req.client_id) if req else None


def error_page(title: str, message: str, status: int = 400, back_url: str | None = None,
               advice: str | None = None, back_label: str | None = None) -> Response:
    """A page a citizen can act on: what happened (``message``), what to do (``advice``), and a way back
    to the téléservice when it is known (``back_url``, else the pending request's client)."""
    from broker.ui import client_home, localized

    client = _current_client() if back_url is None else None
    if client is not None:
        back_url = client_home(client)
        back_label = back_label or gettext("Retourner sur %(service)s", service=localized(client))
    return page("error.html", status=status, title=page_title(title), heading=title, message=message,
                advice=advice, back_url=back_url, back_label=back_label or gettext("Retourner au service"),
                reference=g.get("correlation_id") if status >= 500 else None)


def _form_action_sources(app: Flask) -> str:
    """Form submissions end in redirects to téléservices, or post to SAML IdPs: CSP form-action must allow them."""
    from broker.app import current_broker

    with app.app_context():
        config = current_broker().config
        providers = list(current_broker().providers.values())
    origins = set()
    for client in config.clients.values():
        for uri in client.redirect_uris + client.post_logout_redirect_uris:
            parts = urlsplit(uri)
            origins.add(f"{parts.scheme}://{parts.netloc}")
    for provider in providers:  # SAML IdPs: auto-posted AuthnRequests, logout redirects
        origins.update(getattr(provider, "form_action_origins", set)())
    return " ".join(["'self'", *sorted(origins)])


def init_app(app: Flask) -> None:
    from broker.app import current_broker

    from broker import ui

    ui.init_app(app)
    form_action = _form_action_sources(app)
    with app.app_context():
        broker = current_broker()
    hsts = broker.config.broker.issuer.startswith("https://")
    cors_origins = set(broker.config.broker.cors_origins)

    @app.before_request
    def _load_session() -> None:
        g.correlation_id = secrets.token_hex(8)
        if request.endpoint in HEALTH_ENDPOINTS:
            return  # no session: the store may be the very thing that is down
        g.browser = BrowserSession(broker.store, broker.config)
        g.browser.load(request)

    @app.after_request
    def _finish(response: Response) -> Response:
        if "browser" in g:
            g.browser.save(response)
        h = response.headers
        h["X-Content-Type-Options"] = "nosniff"
        h.setdefault("Referrer-Policy", "no-referrer")
        if hsts:
            h["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
        if request.endpoint not in _CACHEABLE:
            h["Cache-Control"] = "no-store"
            h["Pragma"] = "no-cache"
        if response.mimetype == "text/html":
            h["Content-Security-Policy"] = (
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                f"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action {form_action}"
            )
            h["X-Frame-Options"] = "DENY"
            h["Cross-Origin-Opener-Policy"] = "same-origin"
        origin = request.headers.get("Origin")
        if origin and origin in cors_origins and request.endpoint in _CORS:
            h["Access-Control-Allow-Origin"] = origin
            h["Vary"] = "Origin"
        return response

    @app.errorhandler(UnsafeRedirect)
    def _unsafe(exc: UnsafeRedirect):
        log.warning("authorization request refused without redirect: %s", exc.message)
        return error_page(
            gettext("Demande de connexion invalide"),
            gettext("Le service en ligne qui vous a envoyé ici a fait une demande de connexion que NC Connect "
                    "ne peut pas accepter. Ce n'est pas de votre fait."),
            status=400,
            advice=gettext("Retournez sur le site du service et réessayez. Si le problème continue, contactez ce "
                           "service en lui indiquant l'heure de votre essai."),
        ) if "browser" in g else ("invalid request", 400)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if request.path.startswith(("/token", "/userinfo", "/introspect", "/revoke", "/checktoken")):
            return {"error": "invalid_request", "error_description": exc.description or exc.name}, exc.code
        titles = {404: _HTTP_TITLES[404], 405: _HTTP_TITLES[405], 413: _HTTP_TITLES[413]}
        return error_page(gettext(titles.get(exc.code or 400, _HTTP_TITLES[400])),
                          gettext("L'adresse demandée n'existe pas ou ne peut pas être utilisée ainsi."),
                          status=exc.code or 400,
                          advice=gettext("Vérifiez l'adresse, ou revenez à l'accueil et recommencez."))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error (correlation id %s)", g.get("correlation_id"))
        if request.path.startswith(("/token", "/userinfo", "/introspect", "/revoke", "/checktoken")):
            return {"error": "server_error", "error_description": "internal error"}, 500
        return error_page(gettext("Erreur technique"),
                          gettext("Une erreur inattendue s'est produite de notre côté. Vos données ne sont pas "
                                  "perdues."), status=500,
                          advice=gettext("Réessayez dans quelques instants. Si le problème continue, contactez le "
                                         "service en ligne en indiquant la référence ci-dessous."))
