"""Discovery metadata and JWKS (OIDC Discovery 1.0; checklist A-07, A-21, A-26, A-29)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import ISSUER, Flow

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
SPOOFED = [
    {"Host": "evil.example"},
    {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http", "X-Forwarded-Port": "8080"},
    {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example;proto=http"},
]


def metadata(client, headers=None) -> dict:
    response = client.get("/.well-known/openid-configuration", headers=headers or {})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.json


def test_metadata_advertises_only_what_is_enforced(client):
    meta = metadata(client)
    assert meta["issuer"] == ISSUER
    assert meta["response_types_supported"] == ["code"]
    assert meta["response_modes_supported"] == ["query"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["request_parameter_supported"] is False
    assert meta["request_uri_parameter_supported"] is False
    assert "password" not in meta["grant_types_supported"]
    assert "implicit" not in meta["grant_types_supported"]
    # only the local source is configured: eidas1 with a password, eidas2 with a second factor
    assert meta["acr_values_supported"] == ["eidas1", "eidas2"]


def test_no_none_algorithm_is_advertised(client):
    meta = metadata(client)
    alg_lists = {k: v for k, v in meta.items() if k.endswith("_alg_values_supported")}
    assert "id_token_signing_alg_values_supported" in alg_lists
    for name, values in alg_lists.items():
        assert values and all(v.lower() != "none" for v in values), name
    assert set(meta["id_token_signing_alg_values_supported"]) <= {"ES256", "RS256", "PS256"}


def test_every_endpoint_is_under_the_issuer(client):
    meta = metadata(client)
    urls = {k: v for k, v in meta.items() if k.endswith(("_endpoint", "_uri"))}
    assert {"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint"} <= set(urls)
    for name, url in urls.items():
        assert url.startswith(ISSUER + "/"), name


def test_advertised_endpoints_exist(client):
    meta = metadata(client)
    assert client.get(meta["jwks_uri"].removeprefix(ISSUER)).status_code == 200
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "end_session_endpoint",
                 "introspection_endpoint", "revocation_endpoint"):
        if name in meta:
            path = meta[name].removeprefix(ISSUER)
            assert client.post(path).status_code != 404, name


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", ["/register", "/connect/register", "/registration", "/clients"])
def test_no_dynamic_client_registration(client, method, path):
    assert "registration_endpoint" not in metadata(client)
    response = client.open(path, method=method, json={"redirect_uris": ["https://evil.example/cb"]})
    assert response.status_code == 404


def test_jwks_has_only_public_members(client):
    response = client.get("/jwks")
    assert response.status_code == 200
    keys = response.json["keys"]
    assert keys
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key["kid"]
        assert key["kid"] and key["alg"] in ("ES256", "RS256")
        assert key["use"] == "sig"
        assert key["kty"] in ("EC", "RSA")
    assert len({k["kid"] for k in keys}) == len(keys)


def test_id_token_kid_is_published(client, account):
    flow = Flow(client)
    id_token = flow.token(flow.code()).json["id_token"]
    header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
    published = {k["kid"]: k["alg"] for k in client.get("/jwks").json["keys"]}
    assert published[header["kid"]] == header["alg"]


@pytest.mark.parametrize("headers", SPOOFED)
def test_spoofed_host_headers_change_nothing(client, headers):
    assert metadata(client, headers) == metadata(client)


@pytest.mark.parametrize("headers", SPOOFED)
def test_spoofed_host_headers_do_not_reach_redirects(client, account, broker, headers):
    flow = Flow(client)
    response = client.get("/authorize", query_string=flow.authorize_params(), headers=headers)
    assert response.status_code == 303
    assert "evil" not in response.headers["Location"]
    error = client.get("/authorize", query_string=flow.authorize_params(response_type="token"), headers=headers)
    assert error.headers["Location"].startswith("https://alpha.example.nc/callback?")
    assert "iss=https%3A%2F%2Fnc-connect.test" in error.headers["Location"]
    # the ID token issuer comes from configuration too
    code = flow.code()
    token = client.post("/token", headers={**flow.auth_headers(), **headers}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.verifier})
    assert broker.keys.verify(token.json["id_token"])["iss"] == ISSUER
