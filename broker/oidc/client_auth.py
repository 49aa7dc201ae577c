"""Client authentication at the token, introspection and revocation endpoints.

Each client authenticates with exactly the method registered for it
(checklist A-13): ``client_secret_basic``, ``client_secret_post``,
``private_key_jwt`` (RFC 7523, OIDC Core §9) or ``none`` for public clients.

Failed authentications are throttled (:func:`throttled`, also used by ``/checktoken``
for data providers) with :mod:`broker.throttle`'s soft locks: per client_id and source
IP, and more loosely per source IP whatever the client_id.  A lock ends by itself, and
failures from one address never lock the client out at another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import threading
import time
from typing import Any, Callable, TypeVar
from urllib.parse import unquote

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker import throttle
from broker.app import Broker
from broker.config import ClientSettings
from broker.errors import InvalidClient, InvalidRequest, TooManyFailedAttempts

log = logging.getLogger("nc_connect.client_auth")
T = TypeVar("T")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ["ES256", "RS256", "PS256"]
MAX_ASSERTION_LIFETIME = 300
_JWKS_CACHE_SECONDS = 300
_JWKS_MIN_REFETCH = 30  # a client that rotated its key is re-fetched, at most this often
_jwks_cache: dict[str, tuple[float, KeySet]] = {}
_jwks_lock = threading.Lock()
THROTTLE_SCOPE = "client_auth"
# failures allowed within throttle.WINDOW (an hour) before growing delays (1 s, 2 s, 4 s… 15 min at most);
# the per-IP allowance is looser: several clients, or data providers, may share one egress address
FREE_FAILURES = 10
FREE_FAILURES_PER_IP = 50


class KeysUnavailable(InvalidClient):
    """The client's ``jwks_uri`` could not be fetched: an outage, not a guess, so it is not counted."""


def throttled(broker: Broker, client_id: str, registered: bool, authenticate: Callable[[], T]) -> T:
    """Run ``authenticate`` unless failed attempts locked ``client_id`` from this IP.

    Failures count per (client_id, IP) and per IP.  The per-IP lock stops one address from
    trying many client_ids, but it only applies to ids that are not ``registered``: a
    registered client is never locked out by others sharing its address (a NAT, a hosting
    provider's egress), only by its own failures there.  While a lock lasts the credentials
    are not even checked (no oracle): 429 with ``Retry-After``
    (:class:`~broker.errors.TooManyFailedAttempts`).  A success clears the client's counter for
    this IP.  Logs name the client_id and the IP, never a secret or an assertion.
    """
    from broker.pages import client_ip

    ip = client_ip()
    pair, per_ip = f"client\0{client_id}\0{ip}", f"ip\0{ip}"
    limits = {pair: FREE_FAILURES, per_ip: FREE_FAILURES_PER_IP}
    wait = throttle.retry_after_scoped(broker.store, THROTTLE_SCOPE, [pair] if registered else limits)
    if wait:
        log.debug("client authentication throttled client_id=%r ip=%s retry_after=%d", client_id[:100], ip, wait)
        raise TooManyFailedAttempts(wait)
    try:
        result = authenticate()
    except KeysUnavailable:
        raise
    except InvalidClient:
        throttle.count_scoped(broker.store, THROTTLE_SCOPE, limits)
        log.warning("client authentication failed client_id=%r ip=%s", client_id[:100], ip)
        raise
    throttle.clear_scoped(broker.store, THROTTLE_SCOPE, pair)
    return result


def _basic(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        client_id, secret = decoded.split(":", 1)
    except (ValueError, UnicodeDecodeError):
        raise InvalidClient("malformed Basic authorization header") from None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _client(broker: Broker, client_id: str | None) -> ClientSettings:
    client = broker.config.clients.get(client_id) if isinstance(client_id, str) else None
    if client is None:
        raise InvalidClient("client authentication failed", detail=f"unknown client {client_id!r}")
    return client


def _secret_ok(client: ClientSettings, secret: str) -> bool:
    return hmac.compare_digest((client.client_secret or "").encode(), secret.encode())


def _unverified_claims(assertion: str) -> dict[str, Any]:
    try:
        payload = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise InvalidClient("the client assertion is not a JWT") from None
    if not isinstance(claims, dict):
        raise InvalidClient("the client assertion is not a JWT")
    return claims


def client_keys(client: ClientSettings) -> KeySet:
    if client.jwks:
        return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
    uri = client.jwks_uri or ""
    with _jwks_lock:
        cached = _jwks_cache.get(uri)
        if cached and cached[0] > time.time():
            return cached[1]
    try:
        response = requests.get(uri, timeout=5)
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
    except (requests.RequestException, ValueError, JoseError) as exc:
        raise KeysUnavailable("the client's keys could not be fetched", detail=f"{uri}: {exc}") from None
    with _jwks_lock:
        _jwks_cache[uri] = (time.time() + _JWKS_CACHE_SECONDS, keys)
    return keys


def _refetch_allowed(client: ClientSettings) -> bool:
    """Forget a cached jwks_uri older than the minimum interval, so a rotated key is found."""
    if not client.jwks_uri:
        return False
    with _jwks_lock:
        cached = _jwks_cache.get(client.jwks_uri)
        if cached is None or cached[0] - _JWKS_CACHE_SECONDS + _JWKS_MIN_REFETCH > time.time():
            return False
        del _jwks_cache[client.jwks_uri]
        return True


def _decode_assertion(client: ClientSettings, assertion: str):
    try:
        return jwt.decode(assertion, client_keys(client), algorithms=ASSERTION_ALGS)
    except (JoseError, ValueError):
        if not _refetch_allowed(client):
            raise
        return jwt.decode(assertion, client_keys(client), algorithms=ASSERTION_ALGS)


def _check_assertion(broker: Broker, client: ClientSettings, assertion: str, audiences: set[str]) -> None:
    try:
        token = _decode_assertion(client, assertion)
    except (JoseError, ValueError) as exc:
        raise InvalidClient("the client assertion signature is invalid", detail=str(exc)) from None
    claims = token.claims
    now = time.time()
    aud = claims.get("aud")
    auds = {a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str)}
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise InvalidClient("the client assertion's iss and sub must be the client_id")
    if not auds & audiences:
        raise InvalidClient("the client assertion's aud must be the token endpoint or the issuer")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool) or not math.isfinite(exp) or exp <= now - 30:
        raise InvalidClient("the client assertion has expired or has no exp")
    if exp > now + MAX_ASSERTION_LIFETIME:
        raise InvalidClient(f"the client assertion must expire within {MAX_ASSERTION_LIFETIME} seconds")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClient("the client assertion must carry a jti")
    key = f"jti:{client.client_id}:{hashlib.sha256(jti.encode()).hexdigest()}"
    if not broker.store.add(key, {}, int(exp - now) + 60):
        raise InvalidClient("the client assertion was already used")


def authenticate_client(broker: Broker, params: dict[str, str], authorization: str, endpoint_url: str) -> ClientSettings:
    """Return the authenticated client or raise ``InvalidClient`` / ``InvalidRequest``."""
    basic = _basic(authorization) if authorization else None
    used = [m for m, present in (
        ("client_secret_basic", basic is not None),
        ("client_secret_post", "client_secret" in params),
        ("private_key_jwt", "client_assertion" in params),
    ) if present]
    if len(used) > 1:
        raise InvalidRequest("use exactly one client authentication method")
    method = used[0] if used else "none"

    if method == "client_secret_basic":
        client_id, secret = basic  # type: ignore[misc]
        if params.get("client_id") not in (None, client_id):
            raise InvalidRequest("client_id does not match the authenticated client")
    elif method == "private_key_jwt":
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidRequest(f"client_assertion_type must be {ASSERTION_TYPE}")
        client_id = params.get("client_id") or _unverified_claims(params["client_assertion"]).get("sub")
        secret = ""
    else:
        client_id, secret = params.get("client_id"), params.get("client_secret", "")
        if not client_id:
            raise InvalidClient("client authentication is required")
    client_id = str(client_id)
    return throttled(broker, client_id, client_id in broker.config.clients,
                     lambda: _verify(broker, params, method, client_id, secret, endpoint_url))


def _verify(broker: Broker, params: dict[str, str], method: str, client_id: Any, secret: str,
            endpoint_url: str) -> ClientSettings:
    client = _client(broker, client_id)
    if client.token_endpoint_auth_method != method:
        raise InvalidClient(f"this client must authenticate with {client.token_endpoint_auth_method}")
    if method in ("client_secret_basic", "client_secret_post") and not _secret_ok(client, secret):
        raise InvalidClient("client authentication failed", detail=f"wrong secret for {client.client_id}")
    if method == "private_key_jwt":
        issuer = broker.config.broker.issuer
        _check_assertion(broker, client, params["client_assertion"], {endpoint_url, issuer, issuer + "/token"})
    return client
