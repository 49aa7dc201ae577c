"""The token endpoint: code exchange, ID token, PKCE, grant types, refresh rotation.

RFC 6749 §4.1.3, §5, §6; RFC 7636 §4.6; OIDC Core §3.1.3, §12; checklist A-01, A-05,
A-06, A-10, A-11, A-12, A-19, A-20, A-27.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import ISSUER, SECRET, Flow, advance_clock

ALPHA = {"Authorization": "Basic " + base64.b64encode(f"alpha:{SECRET}".encode()).decode()}
RSA = {"Authorization": "Basic " + base64.b64encode(f"rsa:{SECRET}".encode()).decode()}
BETA = {"client_id": "beta", "client_secret": SECRET}


@pytest.fixture
def config_dir(config_dir):
    clients = config_dir / "clients"
    (clients / "rsa.yaml").write_text(f"""
name: RS256 service
redirect_uris: [https://rsa.example.nc/cb]
client_secret: {SECRET}
id_token_signed_response_alg: RS256
grant_types: [authorization_code, refresh_token]
""")
    (clients / "legacy.yaml").write_text(f"""
name: Legacy service without PKCE
redirect_uris: [https://legacy.example.nc/cb]
client_secret: {SECRET}
token_endpoint_auth_method: client_secret_post
require_pkce: false
""")
    return config_dir


# -- helpers ------------------------------------------------------------------

def assert_error(response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"] == error, response.json
    assert response.headers["Cache-Control"] == "no-store"


def exchange(flow: Flow, **authorize) -> dict:
    response = flow.token(flow.code(**authorize))
    assert response.status_code == 200, response.json
    return response.json


def refresh(client, token: str, headers=ALPHA, **extra):
    return client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token, **extra},
                       headers=headers)


def userinfo_status(client, access_token: str) -> int:
    return client.get("/userinfo", headers={"Authorization": "Bearer " + access_token}).status_code


def jose_header(token: str) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def expected_at_hash(access_token: str) -> str:
    """OIDC Core §3.1.3.6: base64url of the left half of SHA-256 (the hash of ES256 and RS256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()



# -- successful exchange -------------------------------------------------------

def test_exchange_returns_bearer_tokens_not_cacheable(client, account):
    flow = Flow(client)
    response = flow.token(flow.code())
    assert response.status_code == 200, response.json
    body = response.json
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and 0 < body["expires_in"] <= 3600
    assert body["scope"] == "openid profile email"
    assert body["access_token"] and body["refresh_token"] and body["id_token"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "application/json"
    assert userinfo_status(client, body["access_token"]) == 200


@pytest.mark.parametrize("client_id, redirect_uri, headers, alg, kty", [
    ("alpha", "https://alpha.example.nc/callback", ALPHA, "ES256", "EC"),
    ("rsa", "https://rsa.example.nc/cb", RSA, "RS256", "RSA"),
])
def test_id_token_claims_and_signature(client, account, client_id, redirect_uri, headers, alg, kty):
    flow = Flow(client, client_id, redirect_uri)
    flow.auth_headers = lambda: headers
    before = int(time.time())
    body = exchange(flow, scope="openid")
    header = jose_header(body["id_token"])
    jwks = client.get("/jwks").json
    published = {k["kid"]: k for k in jwks["keys"]}
    assert header["alg"] == alg
    assert header["kid"] in published and published[header["kid"]]["kty"] == kty
    claims = jwt.decode(body["id_token"], KeySet.import_key_set(jwks), algorithms=[alg]).claims

    assert claims["iss"] == ISSUER
    assert claims["aud"] == client_id
    assert claims["sub"] == client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).json["sub"]
    assert before - 1 <= claims["iat"] <= int(time.time()) + 1
    assert claims["iat"] < claims["exp"] <= claims["iat"] + 3600
    assert before - 5 <= claims["auth_time"] <= claims["iat"]
    assert claims["nonce"] == flow.nonce
    assert claims["acr"] == "eidas1"
    assert claims["amr"] == ["pwd"]
    assert claims["at_hash"] == expected_at_hash(body["access_token"])
    assert isinstance(claims["sid"], str) and claims["sid"]


# -- authorization code misuse -----------------------------------------------------

def test_replayed_code_is_refused_and_revokes_what_it_issued(client, account):
    """A-11: the second redemption fails and kills the first exchange's tokens."""
    flow = Flow(client)
    code = flow.code()
    first = flow.token(code)
    assert first.status_code == 200
    assert userinfo_status(client, first.json["access_token"]) == 200

    assert_error(flow.token(code), "invalid_grant")
    assert userinfo_status(client, first.json["access_token"]) == 401
    assert_error(refresh(client, first.json["refresh_token"]), "invalid_grant")


def test_expired_code_is_refused(client, account, broker, monkeypatch):
    """A-10: a code lives 60 s at most."""
    flow = Flow(client)
    code = flow.code()
    advance_clock(broker, monkeypatch, 61)
    assert_error(flow.token(code), "invalid_grant")


def test_code_presented_by_another_client_is_refused(client, account):
    """A-12: beta authenticates correctly but the code was issued to alpha."""
    flow = Flow(client)
    code = flow.code()
    response = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                           "redirect_uri": flow.redirect_uri, "code_verifier": flow.verifier, **BETA})
    assert_error(response, "invalid_grant")


def test_unknown_code_is_refused(client, account):
    assert_error(Flow(client).token("not-a-code"), "invalid_grant")


@pytest.mark.parametrize("redirect_uri, error", [
    ("https://alpha.example.nc/callback/", "invalid_grant"),
    ("https://alpha.example.nc/other", "invalid_grant"),
    (None, "invalid_request"),
])
def test_redirect_uri_must_repeat_the_authorization_request(client, account, redirect_uri, error):
    flow = Flow(client)
    assert_error(flow.token(flow.code(), redirect_uri=redirect_uri), error)


@pytest.mark.parametrize("verifier", [
    None,                                   # missing
    "A" * 43,                               # well formed, wrong
    "too-short",                            # under 43 characters
    "A" * 129,                              # over 128 characters
    "+" * 50,                               # outside the unreserved set
], ids=["missing", "wrong", "short", "long", "bad-chars"])
def test_pkce_verifier_must_match_the_challenge(client, account, verifier):
    """A-05."""
    flow = Flow(client)
    assert_error(flow.token(flow.code(), code_verifier=verifier), "invalid_grant")


def test_pkce_verifier_without_challenge_is_a_downgrade(client, account):
    """A-06: the authorization request had no code_challenge, the token request sends a verifier."""
    flow = Flow(client, "legacy", "https://legacy.example.nc/cb")
    flow.auth_headers = lambda: {}
    no_pkce = {"code_challenge": None, "code_challenge_method": None}
    downgrade = flow.token(flow.code(**no_pkce), client_id="legacy", client_secret=SECRET)
    assert_error(downgrade, "invalid_grant")
    plain = flow.token(flow.code(**no_pkce), client_id="legacy", client_secret=SECRET, code_verifier=None)
    assert plain.status_code == 200, plain.json


# -- grant types and request syntax ---------------------------------------------------

@pytest.mark.parametrize("grant_type, error", [
    ("password", "unsupported_grant_type"),
    ("client_credentials", "unsupported_grant_type"),
    ("implicit", "unsupported_grant_type"),
    ("urn:ietf:params:oauth:grant-type:jwt-bearer", "unsupported_grant_type"),
    (None, "invalid_request"),
])
def test_only_code_and_refresh_grants(client, grant_type, error):
    """A-01."""
    data = {"grant_type": grant_type, "username": "citoyen@example.nc", "password": "x", "scope": "openid"}
    response = client.post("/token", data={k: v for k, v in data.items() if v is not None}, headers=ALPHA)
    assert_error(response, error)


def test_refresh_grant_needs_registration(client, account):
    """A-19: beta is registered for authorization_code only: no refresh token, and the grant is refused."""
    flow = Flow(client, "beta", "https://beta.example.nc/cb")
    body = flow.token(flow.code(), **BETA).json
    assert "access_token" in body and "refresh_token" not in body
    response = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "anything", **BETA})
    assert_error(response, "unauthorized_client")


@pytest.mark.parametrize("name", ["grant_type", "code", "redirect_uri", "code_verifier"])
def test_repeated_parameter_is_refused(client, account, name):
    """A-27."""
    flow = Flow(client)
    code = flow.code()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier}
    data[name] = [data[name], data[name]]
    assert_error(client.post("/token", data=data, headers=ALPHA), "invalid_request")


@pytest.mark.parametrize("in_query", [["code"], ["grant_type", "code", "redirect_uri", "code_verifier"]],
                         ids=["split", "all"])
def test_parameters_in_query_string_are_refused(client, account, in_query):
    flow = Flow(client)
    data = {"grant_type": "authorization_code", "code": flow.code(), "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier}
    query = {k: data.pop(k) for k in in_query}
    assert_error(client.post("/token", query_string=query, data=data, headers=ALPHA), "invalid_request")


# -- refresh tokens ------------------------------------------------------------------

def test_refresh_rotates_and_reuse_revokes_the_grant(client, account):
    """A-19: every refresh gives a new refresh token; replaying an old one kills the whole grant."""
    first = exchange(Flow(client))
    second = refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.json
    second = second.json
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert userinfo_status(client, second["access_token"]) == 200

    assert_error(refresh(client, first["refresh_token"]), "invalid_grant")
    assert_error(refresh(client, second["refresh_token"]), "invalid_grant")
    assert userinfo_status(client, second["access_token"]) == 401
    assert userinfo_status(client, first["access_token"]) == 401


def test_refresh_scope_may_narrow_but_not_widen(client, account):
    """RFC 6749 §6: a narrower scope is granted; a wider one is invalid_scope and costs nothing."""
    first = exchange(Flow(client))
    narrow = refresh(client, first["refresh_token"], scope="openid email")
    assert narrow.status_code == 200, narrow.json
    assert narrow.json["scope"] == "openid email"
    claims = client.get("/userinfo", headers={"Authorization": "Bearer " + narrow.json["access_token"]}).json
    assert "email" in claims and "given_name" not in claims

    # "birth" is allowed for alpha but was not granted.
    assert_error(refresh(client, narrow.json["refresh_token"], scope="openid profile email birth"), "invalid_scope")
    # The refused request neither consumed the token nor narrowed the grant for good.
    full = refresh(client, narrow.json["refresh_token"], scope="openid profile email")
    assert full.status_code == 200, full.json
    assert full.json["scope"] == "openid profile email"


def test_refresh_id_token_keeps_subject_and_auth_time(client, account, broker):
    """OIDC Core §12.2."""
    first = exchange(Flow(client))
    original = broker.keys.verify(first["id_token"])
    second = refresh(client, first["refresh_token"]).json
    renewed = broker.keys.verify(second["id_token"])
    for claim in ("iss", "sub", "aud", "auth_time", "acr", "azp"):
        assert renewed[claim] == original[claim], claim
    assert renewed["iat"] >= original["iat"]
    assert renewed["at_hash"] == expected_at_hash(second["access_token"])


def test_refresh_token_is_bound_to_its_client(client, account):
    first = exchange(Flow(client))
    assert_error(refresh(client, first["refresh_token"], headers=RSA), "invalid_grant")
    # The attempt by another client did not consume alpha's token.
    assert refresh(client, first["refresh_token"]).status_code == 200


@pytest.mark.parametrize("token, error", [(None, "invalid_request"), ("unknown", "invalid_grant")])
def test_refresh_needs_a_known_token(client, token, error):
    data = {"grant_type": "refresh_token", "refresh_token": token}
    response = client.post("/token", data={k: v for k, v in data.items() if v}, headers=ALPHA)
    assert_error(response, error)
