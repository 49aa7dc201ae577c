"""The token endpoint (RFC 6749 §3.2, §4.1.3, §6; RFC 7636 §4.6; OIDC Core §3.1.3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

from flask import Response, jsonify, request

from broker import grants
from broker.accounts import get_account
from broker.app import Broker, current_broker
from broker.config import ClientSettings
from broker.errors import InvalidClient, InvalidGrant, InvalidRequest, OAuthError, UnauthorizedClient, UnsupportedGrantType
from broker.oidc import blueprint
from broker.oidc.client_auth import authenticate_client
from broker.oidc.params import single_params
from broker.oidc.responses import json_error

PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


def check_pkce_verifier(binding: dict[str, Any], params: dict[str, str]) -> None:
    verifier = params.get("code_verifier")
    challenge = binding.get("code_challenge")
    if challenge is None:
        if verifier is not None:  # PKCE downgrade attempt (RFC 9700 §4.8.2)
            raise InvalidGrant("code_verifier sent but the authorization request had no code_challenge")
        return
    if verifier is None:
        raise InvalidGrant("code_verifier is required")
    if not PKCE_VERIFIER.match(verifier):
        raise InvalidGrant("code_verifier is malformed")
    computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    if not hmac.compare_digest(computed, challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")


def token_response(broker: Broker, client: ClientSettings, grant, *, refresh: bool, scope: str | None = None,
                   requested_claims: dict | None = None) -> Response:
    """RFC 6749 §5.1; ``scope`` narrows the access token on refresh (RFC 6749 §6)."""
    scope = scope or grant.scope
    if get_account(broker.sessions, grant.account_id) is None:
        grants.revoke_grant(broker, grant.id)
        raise InvalidGrant("the account no longer exists or is disabled")
    sub = grants.subject(broker, client, grant.account_id)
    access = grants.issue_access_token(broker, grant, sub, scope)
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": scope,
        "id_token": grants.id_token(broker, client, grant, sub, access.token, requested_claims),
    }
    if refresh:
        body["refresh_token"] = grants.issue_refresh_token(broker, grant)
    return jsonify(body)


def authorization_code_grant(broker: Broker, client: ClientSettings, params: dict[str, str]) -> Response:
    for name in ("code", "redirect_uri"):
        if name not in params:
            raise InvalidRequest(f"{name} is required")
    binding = grants.redeem_code(broker, params["code"])
    if binding["client_id"] != client.client_id:
        raise InvalidGrant("the authorization code was issued to another client")
    if binding["redirect_uri"] != params["redirect_uri"]:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    check_pkce_verifier(binding, params)
    grant = grants.create_grant(broker, binding)
    grants.remember_redeemed(broker, binding["_hash"], grant.id)
    return token_response(broker, client, grant, refresh="refresh_token" in client.grant_types,
                          requested_claims=(binding.get("claims") or {}).get("id_token"))


def refresh_token_grant(broker: Broker, client: ClientSettings, params: dict[str, str]) -> Response:
    if "refresh_token" not in params:
        raise InvalidRequest("refresh_token is required")
    asked = params.get("scope", "").split()
    grant = grants.rotate_refresh_token(broker, params["refresh_token"], client.client_id, asked)
    return token_response(broker, client, grant, refresh=True, scope=" ".join(asked) or grant.scope)


GRANTS = {"authorization_code": authorization_code_grant, "refresh_token": refresh_token_grant}


@blueprint.route("/token", methods=["POST"])
def token() -> Response:
    broker = current_broker()
    authorization = request.headers.get("Authorization", "")
    try:
        params = single_params(request, query=False)
        if request.args:
            raise InvalidRequest("parameters must be sent in the request body")
        client = authenticate_client(broker, params, authorization, broker.config.broker.issuer + "/token")
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise InvalidRequest("grant_type is required")
        handler = GRANTS.get(grant_type)
        if handler is None:
            raise UnsupportedGrantType(f"unsupported grant_type {grant_type}")
        if grant_type not in client.grant_types:
            raise UnauthorizedClient(f"this client may not use {grant_type}")
        return handler(broker, client, params)
    except InvalidClient as exc:
        basic = authorization.lower().startswith("basic ")
        return json_error(exc, www_authenticate='Basic realm="nc-connect"' if basic else None)
    except OAuthError as exc:
        return json_error(exc)
