"""The authorization endpoint (OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636, RFC 9207).

The request is checked by small functions in a fixed order.  Until the client
and its redirect URI are trusted, errors are shown on a page and never
redirected (RFC 9700 §4.11.2); after that, errors go back to the client with
``error``, ``error_description``, ``state`` and ``iss``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field

from flask import Response, redirect, request, url_for

from broker import consent, grants
from broker.app import Broker, current_broker
from broker.config import ClientSettings
from broker.errors import (
    InvalidRequest, InvalidScope, LoginRequired, OAuthError, RequestNotSupported, RequestUriNotSupported,
    UnsafeRedirect, UnsupportedResponseType,
)
from broker.oidc import blueprint
from broker.oidc.params import single_params
from broker.oidc.responses import log, redirect_to_client
from broker.web import browser
from providers.base import LEVELS, level_rank

PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL(SHA256(verifier)) without padding
PROMPTS = {"none", "login", "consent", "select_account"}
MAX_PENDING = 5


class ConsentRequired(OAuthError):
    error = "consent_required"


class UnmetAuthenticationRequirements(OAuthError):
    """OpenID Connect Core Unmet Authentication Requirements 1.0."""

    error = "unmet_authentication_requirements"


@dataclass
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: list[str] = field(default_factory=list)
    max_age: int | None = None
    login_hint: str | None = None
    ui_locales: str | None = None
    acr_required: str | None = None
    idp_hint: str | None = None
    claims: dict | None = None
    requested_at: float = 0.0


# -- checks, in the order they run -------------------------------------------

def check_client(broker: Broker, params: dict[str, str]) -> ClientSettings:
    client = broker.config.clients.get(params.get("client_id", ""))
    if client is None:
        raise UnsafeRedirect(f"unknown client_id {params.get('client_id')!r}")
    return client


def check_redirect_uri(client: ClientSettings, params: dict[str, str]) -> str:
    """Exact string comparison with a registered URI (RFC 9700 §2.1, checklist A-02)."""
    uri = params.get("redirect_uri")
    if uri is None:
        raise UnsafeRedirect(f"missing redirect_uri for client {client.client_id}")
    if uri not in client.redirect_uris:
        raise UnsafeRedirect(f"redirect_uri {uri!r} is not registered for client {client.client_id}")
    return uri


def check_request_objects(params: dict[str, str]) -> None:
    if "request" in params:
        raise RequestNotSupported("request objects are not supported")
    if "request_uri" in params:
        raise RequestUriNotSupported("request_uri is not supported")


def check_response_type(params: dict[str, str]) -> None:
    if "response_type" not in params:
        raise InvalidRequest("response_type is required")
    if params["response_type"] != "code":
        raise UnsupportedResponseType("only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        raise InvalidRequest("only response_mode=query is supported")


def check_scope(client: ClientSettings, params: dict[str, str]) -> list[str]:
    scopes = params.get("scope", "").split()
    if "openid" not in scopes:
        raise InvalidScope("the openid scope is required")
    refused = [s for s in scopes if s not in client.scopes]
    if refused:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(refused)}")
    return list(dict.fromkeys(scopes))


def check_state_and_nonce(client: ClientSettings, params: dict[str, str]) -> None:
    """ANSSI R12 and R16: both are required unless the client is flagged as legacy."""
    if client.require_state_and_nonce:
        if "state" not in params:
            raise InvalidRequest("state is required")
        if "nonce" not in params:
            raise InvalidRequest("nonce is required")
    if len(params.get("nonce", "")) > 512 or len(params.get("state", "")) > 1024:
        raise InvalidRequest("state or nonce is too long")


def check_pkce(client: ClientSettings, params: dict[str, str]) -> str | None:
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise InvalidRequest("code_challenge_method without code_challenge")
        if client.require_pkce:
            raise InvalidRequest("PKCE is required: send code_challenge with code_challenge_method=S256")
        return None
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256 (plain is not allowed)")
    if not PKCE_CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge is not a base64url SHA-256 value")
    return challenge


def check_prompt(params: dict[str, str]) -> list[str]:
    prompt = params.get("prompt", "").split()
    unknown = set(prompt) - PROMPTS
    if unknown:
        raise InvalidRequest(f"unsupported prompt value: {' '.join(sorted(unknown))}")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values")
    return prompt


def check_max_age(params: dict[str, str]) -> int | None:
    if "max_age" not in params:
        return None
    # ASCII digits only: str.isdigit() also accepts "²", which int() then rejects (a 500)
    if not re.fullmatch(r"[0-9]{1,10}", params["max_age"]):
        raise InvalidRequest("max_age must be a non-negative integer")
    return int(params["max_age"])


def check_claims(params: dict[str, str]) -> dict | None:
    """OIDC Core §5.5: a JSON object with optional ``id_token`` and ``userinfo`` members."""
    if "claims" not in params:
        return None
    try:
        claims = json.loads(params["claims"])
    except ValueError:
        raise InvalidRequest("claims is not valid JSON") from None
    if not isinstance(claims, dict) or set(claims) - {"id_token", "userinfo"} or not all(
            isinstance(member, dict) and all(v is None or isinstance(v, dict) for v in member.values())
            for member in claims.values()):
        raise InvalidRequest("claims must be an object with id_token and userinfo members")
    return claims


def requested_acr_values(params: dict[str, str], claims: dict | None) -> list[str]:
    """From ``acr_values``, or else from an ``acr`` claim request with ``values`` (OIDC Core §5.5.1.1)."""
    if "acr_values" in params:
        return params["acr_values"].split()
    acr = ((claims or {}).get("id_token") or {}).get("acr") or {}
    values = acr.get("values") or ([acr["value"]] if "value" in acr else [])
    return [v for v in values if isinstance(v, str)]


def check_acr_values(broker: Broker, params: dict[str, str], claims: dict | None = None) -> str | None:
    """The lowest eIDAS level listed is the minimum the request needs."""
    requested = [v for v in requested_acr_values(params, claims) if v in LEVELS]
    if not requested:
        return None
    minimum = min(requested, key=level_rank)
    best = max((level_rank(p.level) for p in broker.providers.values()), default=0)
    if level_rank(minimum) > best:
        raise UnmetAuthenticationRequirements(f"no identity source can reach the requested level {minimum}")
    return minimum


def check_idp_hint(broker: Broker, params: dict[str, str], acr_required: str | None) -> str | None:
    """``idp_hint=<provider id>`` skips the identity source page."""
    hint = params.get("idp_hint")
    if hint is None:
        return None
    provider = broker.providers.get(hint)
    if provider is None:
        raise InvalidRequest(f"idp_hint {hint!r} is not an enabled identity source")
    if level_rank(provider.level) < level_rank(acr_required):
        raise UnmetAuthenticationRequirements(f"the identity source {hint} cannot reach the level {acr_required}")
    return hint


def validate(broker: Broker, params: dict[str, str]) -> AuthorizationRequest:
    client = check_client(broker, params)
    redirect_uri = check_redirect_uri(client, params)
    try:
        check_request_objects(params)
        check_response_type(params)
        check_state_and_nonce(client, params)
        scope = check_scope(client, params)
        challenge = check_pkce(client, params)
        prompt = check_prompt(params)
        max_age = check_max_age(params)
        claims = check_claims(params)
        acr = check_acr_values(broker, params, claims)
        idp_hint = check_idp_hint(broker, params, acr)
    except OAuthError as exc:
        raise RedirectableError(exc, redirect_uri, params.get("state")) from None
    return AuthorizationRequest(
        client_id=client.client_id, redirect_uri=redirect_uri, scope=scope, state=params.get("state"),
        nonce=params.get("nonce"), code_challenge=challenge, prompt=prompt, max_age=max_age,
        login_hint=params.get("login_hint"), ui_locales=params.get("ui_locales"), acr_required=acr,
        idp_hint=idp_hint, claims=claims, requested_at=time.time(),
    )


class RedirectableError(Exception):
    def __init__(self, error: OAuthError, redirect_uri: str, state: str | None) -> None:
        self.error, self.redirect_uri, self.state = error, redirect_uri, state


def error_response(exc: RedirectableError) -> Response:
    log.info("authorization error %s: %s", exc.error.error, exc.error.description)
    params = exc.error.body()
    if exc.state is not None:
        params["state"] = exc.state
    params["iss"] = current_broker().config.broker.issuer
    return redirect_to_client(exc.redirect_uri, params)


# -- deciding: log in, or answer -------------------------------------------

def missing_authentication(req: AuthorizationRequest, *, after_login: bool) -> OAuthError | None:
    """What the current session lacks for this request, as the error to answer if no login can follow."""
    session = browser()
    if not session.account_id:
        return LoginRequired("the citizen is not signed in")
    auth_time = session.get("auth_time", 0)
    if "login" in req.prompt and session.get("authenticated_at", 0) < req.requested_at:
        return LoginRequired("a fresh authentication is required")
    if req.max_age is not None and auth_time + req.max_age < time.time() - (5 if after_login else 0):
        return LoginRequired("the authentication is older than max_age")
    if req.acr_required and level_rank(session.get("acr")) < level_rank(req.acr_required):
        return UnmetAuthenticationRequirements(f"the authentication did not reach the level {req.acr_required}")
    return None


def answer(broker: Broker, req: AuthorizationRequest) -> Response:
    """Issue the code bound to everything the token request must prove (checklist A-10)."""
    session = browser()
    code = grants.issue_code(broker, {
        "client_id": req.client_id, "redirect_uri": req.redirect_uri, "code_challenge": req.code_challenge,
        "nonce": req.nonce, "scope": " ".join(req.scope), "account_id": session.account_id,
        "auth_time": session["auth_time"], "acr": session["acr"], "amr": session["amr"], "sid": session["sid"],
        "claims": req.claims,
    })
    from broker.account.hooks import code_issued

    code_issued(broker, session, req.client_id)
    clients = session.get("clients", [])
    if req.client_id not in clients:
        session["clients"] = clients + [req.client_id]
    params = {"code": code}
    if req.state is not None:
        params["state"] = req.state
    params["iss"] = broker.config.broker.issuer
    return redirect_to_client(req.redirect_uri, params)


def park(req: AuthorizationRequest) -> str:
    """Keep the request in the browser session while the citizen logs in or consents."""
    session = browser()
    pending = dict(session.get("authz", {}))
    if len(pending) >= MAX_PENDING:
        pending.pop(min(pending, key=lambda k: pending[k]["requested_at"]))
    rid = secrets.token_urlsafe(16)
    pending[rid] = asdict(req)
    session["authz"] = pending
    return rid


def proceed(broker: Broker, req: AuthorizationRequest, *, after_login: bool = False) -> Response:
    missing = missing_authentication(req, after_login=after_login)
    if missing is None:
        client = broker.config.clients[req.client_id]
        to_ask = consent.missing(broker.sessions, browser().account_id, client, req.scope,
                                 forced="consent" in req.prompt)
        if not to_ask:
            return answer(broker, req)
        if "none" in req.prompt:
            raise RedirectableError(ConsentRequired("the citizen has not consented yet"), req.redirect_uri, req.state)
        return redirect(url_for("pages.consent", rid=park(req)), code=303)
    if "none" in req.prompt or after_login:
        raise RedirectableError(missing, req.redirect_uri, req.state)
    return redirect(url_for("pages.login", rid=park(req)), code=303)


@blueprint.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    broker = current_broker()
    try:
        params = single_params(request)
    except InvalidRequest as exc:
        # A repeated parameter: redirect only if client_id and redirect_uri themselves are unambiguous.
        # Every occurrence counts, not only the first duplicate found, and query and body together.
        merged = request.values
        for name in ("client_id", "redirect_uri"):
            if len(merged.getlist(name)) > 1:
                raise UnsafeRedirect(f"the parameter {name} is included more than once") from None
        client = check_client(broker, {"client_id": merged.get("client_id", "")})
        uri = check_redirect_uri(client, {"redirect_uri": merged.get("redirect_uri")} if merged.get("redirect_uri") else {})
        states = merged.getlist("state")
        state = states[0] if len(states) == 1 and states[0] else None
        return error_response(RedirectableError(exc, uri, state))
    try:
        return proceed(broker, validate(broker, params))
    except RedirectableError as exc:
        return error_response(exc)


@blueprint.route("/authorize/resume")
def resume() -> Response:
    """Back from the login page: answer the pending request once the citizen is signed in."""
    broker = current_broker()
    session = browser()
    pending = dict(session.get("authz", {}))
    data = pending.pop(request.args.get("rid", ""), None)
    if data is None:
        raise UnsafeRedirect("unknown or expired pending authorization request")
    session["authz"] = pending
    req = AuthorizationRequest(**data)
    if req.requested_at + broker.config.broker.lifetimes.login_transaction < time.time():
        raise UnsafeRedirect("the pending authorization request has expired")
    try:
        return proceed(broker, req, after_login=True)
    except RedirectableError as exc:
        return error_response(exc)


def pending_request(rid: str) -> AuthorizationRequest | None:
    data = browser().get("authz", {}).get(rid)
    return AuthorizationRequest(**data) if data else None
