"""Turning protocol errors and results into HTTP responses (one boundary)."""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Response, jsonify, redirect

from broker.errors import OAuthError

log = logging.getLogger("nc_connect.oidc")


def add_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redirect_to_client(redirect_uri: str, params: dict[str, str], status: int = 303) -> Response:
    """Authorization response (RFC 6749 §4.1.2) through a 303, never 307/308 (RFC 9700 §4.12)."""
    return redirect(add_query(redirect_uri, params), code=status)


def json_error(exc: OAuthError, *, www_authenticate: str | None = None) -> Response:
    log.info("oauth error %s: %s %s", exc.error, exc.description, exc.detail)
    response = jsonify(exc.body())
    response.status_code = exc.status_code
    if www_authenticate:
        response.headers["WWW-Authenticate"] = www_authenticate
    if getattr(exc, "retry_after", None):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response
