"""UserInfo (OIDC Core §5.3, RFC 6750), introspection (RFC 7662) and revocation (RFC 7009).

Checklist A-13 (client authentication at introspection and revocation), A-17, A-18, E-06.
"""

from __future__ import annotations

import base64
import time

import pytest

from tests.conftest import PASSWORD, SECRET, Flow, advance_clock, query_of

ALPHA = {"Authorization": "Basic " + base64.b64encode(f"alpha:{SECRET}".encode()).decode()}
BETA = {"client_id": "beta", "client_secret": SECRET}
INVALID_TOKEN = 'error="invalid_token"'


# -- helpers -------------------------------------------------------------------

def tokens(client, scope: str = "openid profile email", email: str | None = None) -> dict:
    """Run the code flow for alpha (logging in as ``email`` when given) and return the token response."""
    flow = Flow(client)
    if email is None:
        code = flow.code(scope=scope)
    else:
        response = flow.login(flow.authorize(scope=scope), email=email)
        code = query_of(client.get(response.headers["Location"]).headers["Location"])["code"]
    response = flow.token(code)
    assert response.status_code == 200, response.json
    return response.json


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def userinfo(client, token: str):
    return client.get("/userinfo", headers=bearer(token))


def introspect(client, token: str | None, headers=ALPHA, **data):
    if token is not None:
        data["token"] = token
    return client.post("/introspect", data=data, headers=headers)


def revoke(client, token: str, headers=ALPHA, **data):
    return client.post("/revoke", data={"token": token, **data}, headers=headers)


def refresh(client, token: str):
    return client.post("/token", data={"grant_type": "refresh_token", "refresh_token": token}, headers=ALPHA)


def assert_error(response, error: str, status: int) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"] == error, response.json


def assert_invalid_token(response) -> None:
    """RFC 6750 §3.1: 401 with a Bearer challenge naming the error."""
    assert response.status_code == 401, response.get_data(as_text=True)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and INVALID_TOKEN in challenge



# -- UserInfo --------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST"])
def test_userinfo_with_bearer_header(client, account, broker, method):
    body = tokens(client)
    response = client.open("/userinfo", method=method, headers=bearer(body["access_token"]))
    assert response.status_code == 200, response.json
    assert response.json["sub"] == broker.keys.verify(body["id_token"])["sub"]
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method, where", [("GET", "query"), ("POST", "query"), ("POST", "form")])
@pytest.mark.parametrize("with_header", [False, True], ids=["alone", "with-header"])
def test_userinfo_refuses_token_outside_header(client, account, method, where, with_header):
    """A-18, RFC 6750 §2.2-2.3: the form and query methods are not offered."""
    token = tokens(client)["access_token"]
    place = {"query_string" if where == "query" else "data": {"access_token": token}}
    response = client.open("/userinfo", method=method, headers=bearer(token) if with_header else {}, **place)
    assert_error(response, "invalid_request", 400)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, ALPHA], ids=["none", "empty", "basic"])
def test_userinfo_without_token_is_challenged(client, headers):
    """RFC 6750 §3.1: no credentials, so a bare challenge without an error code."""
    response = client.get("/userinfo", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["WWW-Authenticate"]


def _unknown(client, broker, monkeypatch):
    return "x" * 43


def _expired(client, broker, monkeypatch):
    token = tokens(client)["access_token"]
    advance_clock(broker, monkeypatch, 301)  # access tokens live 300 s by default
    return token


def _revoked(client, broker, monkeypatch):
    token = tokens(client)["access_token"]
    assert revoke(client, token).status_code == 200
    return token


def _grant_revoked(client, broker, monkeypatch):
    body = tokens(client)
    assert revoke(client, body["refresh_token"]).status_code == 200
    return body["access_token"]


@pytest.mark.parametrize("make", [_unknown, _expired, _revoked, _grant_revoked],
                         ids=["unknown", "expired", "revoked", "grant-revoked"])
def test_userinfo_refuses_dead_tokens(client, account, broker, monkeypatch, make):
    assert_invalid_token(userinfo(client, make(client, broker, monkeypatch)))


@pytest.mark.parametrize("scope, expected", [
    ("openid", {}),
    ("openid profile", {"given_name": "Jean Pierre", "family_name": "Kabar", "birthdate": "1985-07-14",
                        "gender": "male"}),
    ("openid email", {"email": "citoyen@example.nc", "email_verified": False}),
    ("openid birth", {"birthplace": "98818", "birthcountry": "99100"}),
])
def test_userinfo_releases_claims_by_scope(client, account, scope, expected):
    """A-18, A-30: a claim the token's scopes do not cover is never released."""
    claims = userinfo(client, tokens(client, scope)["access_token"]).json
    sub = claims.pop("sub")
    assert sub
    assert claims == expected


def test_userinfo_birthplace_is_empty_for_someone_born_abroad(client, broker):
    from broker.accounts import create_account

    create_account(broker.sessions, "ailleurs@example.nc", PASSWORD, given_name="Maria", family_name="Lopez",
                   birthdate="1990-01-02", gender="female", birthcountry="99134")
    claims = userinfo(client, tokens(client, "openid birth", email="ailleurs@example.nc")["access_token"]).json
    assert claims["birthcountry"] == "99134"
    assert claims["birthplace"] == ""


# -- introspection -----------------------------------------------------------------

@pytest.mark.parametrize("headers, data, basic_used", [
    ({}, {}, False),
    ({}, {"client_id": "spa"}, False),
    ({"Authorization": "Basic " + base64.b64encode(f"alpha:{SECRET}x".encode()).decode()}, {}, True),
    ({}, {"client_id": "alpha", "client_secret": SECRET}, False),
], ids=["none", "public-client", "wrong-secret", "wrong-method"])
def test_introspection_requires_confidential_client(client, account, headers, data, basic_used):
    """A-13: and nothing about the token leaks in the error."""
    token = tokens(client)["access_token"]
    response = introspect(client, token, headers=headers, **data)
    assert_error(response, "invalid_client", 401)
    assert "active" not in response.json
    if basic_used:
        assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_introspection_of_a_live_access_token(client, account, broker):
    body = tokens(client)
    response = introspect(client, body["access_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    data = response.json
    assert data["active"] is True
    assert data["scope"] == "openid profile email"
    assert data["client_id"] == "alpha"
    assert data["sub"] == broker.keys.verify(body["id_token"])["sub"]
    assert data["token_type"] == "Bearer"
    assert data["iat"] <= time.time() + 1 and data["exp"] - data["iat"] == body["expires_in"]


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_introspection_by_another_client_is_inactive(client, account, which):
    token = tokens(client)[which]
    response = introspect(client, token, headers={}, **BETA)
    assert response.status_code == 200
    assert response.json == {"active": False}
    assert introspect(client, token).json["active"] is True


def test_introspection_of_an_unknown_token_is_inactive(client):
    assert introspect(client, "unknown-token").json == {"active": False}


@pytest.mark.parametrize("spend", [
    lambda client, token: refresh(client, token),
    lambda client, token: revoke(client, token),
], ids=["used", "revoked"])
def test_introspection_of_a_refresh_token(client, account, spend):
    token = tokens(client)["refresh_token"]
    data = introspect(client, token).json
    assert data["active"] is True and data["client_id"] == "alpha" and data["scope"] == "openid profile email"
    assert spend(client, token).status_code == 200
    assert introspect(client, token).json == {"active": False}


def test_introspection_requires_token(client):
    assert_error(introspect(client, None), "invalid_request", 400)


# -- revocation ----------------------------------------------------------------------

@pytest.mark.parametrize("token", ["unknown-token", "x" * 500])
def test_revoking_an_unknown_token_succeeds(client, token):
    """RFC 7009 §2.2: invalid tokens do not cause an error."""
    assert revoke(client, token).status_code == 200


def test_revoked_access_token_fails_at_userinfo(client, account):
    body = tokens(client)
    assert userinfo(client, body["access_token"]).status_code == 200
    assert revoke(client, body["access_token"], token_type_hint="access_token").status_code == 200
    assert_invalid_token(userinfo(client, body["access_token"]))
    assert introspect(client, body["access_token"]).json == {"active": False}


def test_revoking_a_refresh_token_revokes_its_grant(client, account):
    body = tokens(client)
    assert revoke(client, body["refresh_token"], token_type_hint="refresh_token").status_code == 200
    assert_invalid_token(userinfo(client, body["access_token"]))
    assert_error(refresh(client, body["refresh_token"]), "invalid_grant", 400)


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_client_cannot_revoke_another_clients_token(client, account, which):
    body = tokens(client)
    assert revoke(client, body[which], headers={}, **BETA).status_code == 200
    assert userinfo(client, body["access_token"]).status_code == 200
    assert refresh(client, body["refresh_token"]).status_code == 200


def test_public_client_revokes_its_own_token(client, account):
    flow = Flow(client, "spa", "https://spa.example.nc/cb")
    token = flow.token(flow.code(), client_id="spa").json["access_token"]
    assert revoke(client, token, headers={}, client_id="spa").status_code == 200
    assert_invalid_token(userinfo(client, token))


@pytest.mark.parametrize("headers, data, status, error", [
    ({}, {}, 401, "invalid_client"),
    ({"Authorization": "Basic " + base64.b64encode(f"alpha:{SECRET}x".encode()).decode()}, {}, 401, "invalid_client"),
    (ALPHA, {"token": None}, 400, "invalid_request"),
], ids=["no-client", "wrong-secret", "no-token"])
def test_revocation_errors(client, account, headers, data, status, error):
    token = tokens(client)["access_token"]
    data = {"token": token, **data}
    response = client.post("/revoke", data={k: v for k, v in data.items() if v}, headers=headers)
    assert_error(response, error, status)
    assert userinfo(client, token).status_code == 200
