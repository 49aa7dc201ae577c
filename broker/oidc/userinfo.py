"""UserInfo (OIDC Core §5.3, RFC 6750), introspection (RFC 7662) and revocation (RFC 7009)."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, jsonify, request

from broker import grants
from broker.accounts import get_account, pivot_attributes
from broker.app import current_broker
from broker.claims import release
from broker.jose_out import seal
from broker.errors import InvalidClient, InvalidRequest, InvalidToken, OAuthError
from broker.oidc import blueprint
from broker.oidc.client_auth import authenticate_client
from broker.oidc.params import single_params
from broker.oidc.responses import json_error


def bearer_token() -> str | None:
    """RFC 6750 §2.1 only: tokens in the query or the body are refused (checklist A-18)."""
    if "access_token" in request.args or (request.method == "POST" and "access_token" in request.form):
        raise InvalidRequest("send the access token in the Authorization header only")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@blueprint.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    broker = current_broker()
    try:
        token = bearer_token()
    except InvalidRequest as exc:
        return json_error(exc, www_authenticate=f'Bearer error="invalid_request", error_description="{exc.description}"')
    if token is None:  # RFC 6750 §3.1: no error code when no authentication was attempted
        response = Response(status=401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="nc-connect"'
        return response
    record = grants.lookup_access_token(broker, token)
    account = get_account(broker.sessions, record["account_id"]) if record else None
    if record is None or account is None:
        exc = InvalidToken("the access token is invalid, expired or revoked")
        return json_error(exc, www_authenticate='Bearer error="invalid_token", error_description="the access token is invalid, expired or revoked"')
    claims = {"sub": record["sub"], **release(pivot_attributes(account), record["scope"].split())}
    client = broker.config.clients.get(record["client_id"])
    if client is None or not (client.userinfo_alg or client.userinfo_encrypted_response_alg):
        return jsonify(claims)
    # OIDC Core §5.3.2: a signed (and possibly encrypted) response carries iss and aud
    claims.update(iss=broker.config.broker.issuer, aud=client.client_id)
    body = seal(broker, client, claims, sign_alg=client.userinfo_alg or client.id_token_signed_response_alg,
                enc_alg=client.userinfo_encrypted_response_alg, enc=client.userinfo_encrypted_response_enc)
    return Response(body, mimetype="application/jwt")


def _client_for(endpoint: str, *, confidential: bool):
    broker = current_broker()
    params = single_params(request, query=False)
    client = authenticate_client(broker, params, request.headers.get("Authorization", ""),
                                 broker.config.broker.issuer + endpoint)
    if confidential and client.is_public:
        raise InvalidClient("public clients may not use this endpoint")
    if "token" not in params:
        raise InvalidRequest("token is required")
    return broker, client, params


def _oauth_errors(view):
    def wrapped() -> Response:
        try:
            return view()
        except InvalidClient as exc:
            basic = request.headers.get("Authorization", "").lower().startswith("basic ")
            return json_error(exc, www_authenticate='Basic realm="nc-connect"' if basic else None)
        except OAuthError as exc:
            return json_error(exc)
    wrapped.__name__ = view.__name__
    return wrapped


@blueprint.route("/introspect", methods=["POST"])
@_oauth_errors
def introspect() -> Response:
    """A client may introspect the tokens issued to it; anything else is ``active: false``."""
    broker, client, params = _client_for("/introspect", confidential=True)
    token = params["token"]
    record = grants.lookup_access_token(broker, token)
    if record and record["client_id"] == client.client_id:
        return jsonify({
            "active": True, "scope": record["scope"], "client_id": record["client_id"], "sub": record["sub"],
            "token_type": "Bearer", "exp": record["exp"], "iat": record["iat"], "iss": broker.config.broker.issuer,
            "aud": record["client_id"], "acr": record["acr"],
        })
    found = grants.find_refresh_token(broker, token)
    if found:
        refresh, grant = found
        expires = grant.expires_at.replace(tzinfo=timezone.utc)
        if (grant.client_id == client.client_id and not grant.revoked and refresh.used_at is None
                and expires > datetime.now(timezone.utc)):
            return jsonify({
                "active": True, "scope": grant.scope, "client_id": grant.client_id,
                "sub": grants.subject(broker, client, grant.account_id), "exp": int(expires.timestamp()),
                "iss": broker.config.broker.issuer,
            })
    return jsonify({"active": False})


@blueprint.route("/revoke", methods=["POST"])
@_oauth_errors
def revoke() -> Response:
    """RFC 7009 §2.2: 200 whether or not the token was known; a refresh token takes its grant along."""
    broker, client, params = _client_for("/revoke", confidential=False)
    token = params["token"]
    record = grants.lookup_access_token(broker, token)
    if record and record["client_id"] == client.client_id:
        grants.revoke_access_token(broker, token)
    else:
        found = grants.find_refresh_token(broker, token)
        if found and found[1].client_id == client.client_id:
            grants.revoke_grant(broker, found[1].id)
    return Response(status=200)
