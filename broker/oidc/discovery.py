"""OpenID Connect Discovery 1.0 metadata and the JWKS.

The metadata advertises only what the broker enforces (checklist A-07).
"""

from __future__ import annotations

from flask import Response, current_app, jsonify

from broker.app import current_broker
from broker.claims import SCOPE_CLAIMS
from broker.jose_out import ENCRYPTION_ALGS
from broker.keys import ALGORITHMS
from broker.oidc import blueprint
from broker.oidc.client_auth import ASSERTION_ALGS
from providers.base import LEVELS, level_rank

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


def metadata() -> dict:
    broker = current_broker()
    issuer = broker.config.broker.issuer
    best = max((level_rank(p.level) for p in broker.providers.values()), default=0)
    claims = sorted({c for cs in SCOPE_CLAIMS.values() for c in cs})
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "jwks_uri": issuer + "/jwks",
        "end_session_endpoint": issuer + "/logout",
        "introspection_endpoint": issuer + "/introspect",
        "revocation_endpoint": issuer + "/revoke",
        "scopes_supported": list(SCOPE_CLAIMS),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": list(ALGORITHMS),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS[:3],
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp", *claims],
        "acr_values_supported": list(LEVELS[:best]),
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": ["fr", "en"],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": True,
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "userinfo_signing_alg_values_supported": list(ALGORITHMS),
        "id_token_encryption_alg_values_supported": list(ENCRYPTION_ALGS[:3]),
        "id_token_encryption_enc_values_supported": ["A256GCM"],
        "userinfo_encryption_alg_values_supported": list(ENCRYPTION_ALGS[:3]),
        "userinfo_encryption_enc_values_supported": ["A256GCM"],
    }


@blueprint.route("/.well-known/openid-configuration")
def discovery() -> Response:
    extensions = current_app.extensions
    if "nc_connect_metadata" not in extensions:  # depends on the configuration only
        extensions["nc_connect_metadata"] = metadata()
    response = jsonify(extensions["nc_connect_metadata"])
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@blueprint.route("/jwks")
def jwks() -> Response:
    response = jsonify(current_broker().keys.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
