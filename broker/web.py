"""Cross-cutting web concerns: the browser session, CSRF, security headers, error pages."""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, g, render_template, request
from werkzeug.exceptions import HTTPException

from broker.errors import UnsafeRedirect
from broker.sessions import BrowserSession

log = logging.getLogger("nc_connect.web")

# Endpoints whose responses may be cached by clients (public, no personal data).
_CACHEABLE = {"oidc.discovery", "oidc.jwks", "static"}
# Endpoints that téléservices call from browsers (CORS from the configured allowlist only).
_CORS = {"oidc.discovery", "oidc.jwks", "oidc.token", "oidc.userinfo"}


def browser() -> BrowserSession:
    return g.browser


def csrf_valid() -> bool:
    sent = request.form.get("csrf_token", "")
    expected = browser().get("csrf")
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def page(template: str, status: int = 200, **context) -> Response:
    html = render_template(template, csrf_token=browser().csrf_token(), **context)
    return Response(html, status=status, mimetype="text/html")


def error_page(title: str, message: str, status: int = 400, back_url: str | None = None) -> Response:
    return page("error.html", status=status, title=title, message=message, back_url=back_url)


def _form_action_sources(app: Flask) -> str:
    """Form submissions end in redirects to téléservices: CSP form-action must allow their origins."""
    from broker.app import current_broker

    with app.app_context():
        config = current_broker().config
    origins = set()
    for client in config.clients.values():
        for uri in client.redirect_uris + client.post_logout_redirect_uris:
            parts = urlsplit(uri)
            origins.add(f"{parts.scheme}://{parts.netloc}")
    return " ".join(["'self'", *sorted(origins)])


def init_app(app: Flask) -> None:
    from broker.app import current_broker

    form_action = _form_action_sources(app)
    with app.app_context():
        broker = current_broker()
    hsts = broker.config.broker.issuer.startswith("https://")
    cors_origins = set(broker.config.broker.cors_origins)

    @app.before_request
    def _load_session() -> None:
        g.correlation_id = secrets.token_hex(8)
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
            "Demande de connexion invalide",
            "Le service en ligne qui vous a envoyé ici a fait une demande que NC Connect ne peut pas accepter. "
            "Retournez sur le site du service et réessayez ; si le problème continue, contactez ce service.",
            status=400,
        ) if "browser" in g else ("invalid request", 400)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if request.path.startswith(("/token", "/userinfo", "/introspect", "/revoke")):
            return {"error": "invalid_request", "error_description": exc.description or exc.name}, exc.code
        titles = {404: "Page introuvable", 405: "Méthode non autorisée", 413: "Requête trop volumineuse"}
        return error_page(titles.get(exc.code or 400, "Requête invalide"),
                          "L'adresse demandée n'existe pas ou ne peut pas être utilisée ainsi.", status=exc.code or 400)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error (correlation id %s)", g.get("correlation_id"))
        if request.path.startswith(("/token", "/userinfo", "/introspect", "/revoke")):
            return {"error": "server_error", "error_description": "internal error"}, 500
        return error_page("Erreur technique",
                          f"Une erreur inattendue s'est produite. Réessayez dans quelques instants. "
                          f"Référence : {g.get('correlation_id', '')}.", status=500)
