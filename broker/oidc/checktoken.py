"""The checktoken endpoint: data providers verify a téléservice's access token (FranceConnect v2).

A data provider (fournisseur de données, ``config/data_providers/<id>.yaml``) receives
an access token from a téléservice acting for the citizen, and asks the broker what it
may do with it: ``POST <issuer>/checktoken`` with the form parameters ``token``,
``client_id`` and ``client_secret`` (its own credentials; wrong or missing ones are
answered 401 ``invalid_client``; repeated wrong ones are throttled like the clients'
at ``/token``: 429 with ``Retry-After`` while a soft lock lasts).

The answer is a JWT introspection response (RFC 9701), ``application/token-introspection+jwt``:
a JWT signed by the broker (``typ: token-introspection+jwt``, the data provider's
``checktoken_signed_response_alg``) with ``iss`` (the issuer), ``aud`` (the data
provider's client id), ``iat`` and ``token_introspection``:

- ``active: true``, ``aud`` (the téléservice's client id), ``sub`` (pairwise for the
  *data provider*: its ``sector``, by default its client id, so it cannot be matched
  with the téléservice's ``sub``), ``iat``, ``exp``, ``acr``, ``jti`` (stable for one
  access token), ``scope`` (the token's scopes that the data provider serves, nothing
  else) and the pivot identity claims those scopes release;
- ``active: false`` alone for an unknown, expired or revoked token, a token whose
  citizen or téléservice no longer exists, or one carrying none of the data provider's
  scopes (it tells the data provider nothing about a token it has no use for).

When the data provider declares ``checktoken_encrypted_response_alg`` the signed JWT is
encrypted to its key (``jwks`` or ``jwks_uri``: RSA-OAEP, RSA-OAEP-256 or ECDH-ES with
A256GCM).  Responses are never cached (``Cache-Control: no-store``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from typing import Any

from flask import Response, request

from broker import grants
from broker.accounts import get_account, pivot_attributes
from broker.app import Broker, current_broker
from broker.claims import release, subject_for
from broker.config import DataProviderSettings
from broker.errors import InvalidClient, InvalidRequest, OAuthError
from broker.oidc import blueprint
from broker.oidc.client_auth import throttled
from broker.oidc.params import single_params
from broker.oidc.responses import json_error

log = logging.getLogger("nc_connect.checktoken")
CONTENT_TYPE = "application/token-introspection+jwt"
TOKEN_TYPE = "token-introspection+jwt"
_DUMMY_SECRET = b"\x00" * 48


def authenticate_data_provider(broker: Broker, params: dict[str, str]) -> DataProviderSettings:
    client_id, secret = params.get("client_id"), params.get("client_secret")
    if not client_id or not secret:
        raise InvalidClient("client_id and client_secret are required")

    def verify() -> DataProviderSettings:
        dp = broker.config.data_providers.get(client_id)
        expected = dp.client_secret.encode() if dp else _DUMMY_SECRET
        if not hmac.compare_digest(expected, secret.encode()) or dp is None:
            raise InvalidClient("client authentication failed", detail=f"data provider {client_id!r}")
        return dp

    return throttled(broker, client_id, client_id in broker.config.data_providers, verify)


def token_id(token: str) -> str:
    """A stable identifier of an access token that reveals nothing of it (and differs from its store key)."""
    digest = hashlib.sha256(b"nc-connect checktoken jti\x00" + token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def introspection(broker: Broker, dp: DataProviderSettings, token: str) -> dict[str, Any]:
    """What the data provider may know of ``token``: the ``token_introspection`` claim."""
    record = grants.lookup_access_token(broker, token)
    if record is None or record["client_id"] not in broker.config.clients:
        return {"active": False}
    account = get_account(broker.sessions, record["account_id"])
    served = [s for s in record["scope"].split() if s in dp.scopes]
    if account is None or not served:
        return {"active": False}
    info: dict[str, Any] = {
        "active": True,
        "aud": record["client_id"],
        "sub": subject_for(account.id, dp.sector_id, "pairwise", broker.keys.ensure_subject_secret()),
        "iat": record["iat"],
        "exp": record["exp"],
        "acr": record["acr"],
        "jti": token_id(token),
        "scope": " ".join(served),
    }
    info.update(release(pivot_attributes(account), served))
    return info


@blueprint.route("/checktoken", methods=["POST"])
def checktoken() -> Response:
    from broker.jose_out import NoEncryptionKey, seal

    broker = current_broker()
    try:
        if request.args:
            raise InvalidRequest("send the parameters in the form body, not in the query string")
        params = single_params(request, query=False)
        dp = authenticate_data_provider(broker, params)
        token = params.get("token")
        if not token:
            raise InvalidRequest("token is required")
    except OAuthError as exc:
        return _no_store(json_error(exc))
    info = introspection(broker, dp, token)
    claims = {"iss": broker.config.broker.issuer, "aud": dp.client_id, "iat": int(time.time()),
              "token_introspection": info}
    try:
        body = seal(broker, dp, claims, sign_alg=dp.checktoken_signed_response_alg,  # type: ignore[arg-type]
                    enc_alg=dp.checktoken_encrypted_response_alg, enc=dp.checktoken_encrypted_response_enc,
                    typ=TOKEN_TYPE)
    except (NoEncryptionKey, InvalidClient) as exc:  # no usable key, or its jwks_uri could not be fetched
        log.error("checktoken for %s: cannot encrypt the answer: %s %s", dp.client_id, exc,
                  getattr(exc, "detail", ""))
        return _no_store(json_error(ServerError("the data provider's encryption key could not be used")))
    # audit: who asked about which téléservice's token, and what was released (never the token)
    log.info("checktoken data_provider=%s client=%s active=%s scope=%s jti=%s", dp.client_id, info.get("aud", "-"),
             info["active"], info.get("scope", "-"), info.get("jti", "-"))
    return Response(body, status=200, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
