"""NC Connect as an identity provider of FranceConnect: the FranceConnect profile of a client.

An independent client (pyoidc) is configured exactly as FranceConnect calls its
identity providers (shared/franceconnect.md): client_secret_post,
``acr_values=eidas1``, ``prompt=login``, scopes ``openid profile email birth``, a
32-character state, ``amr`` asked through the ``claims`` parameter, and a
signed userinfo.  A second client publishes an encryption key and receives an
encrypted ID token and userinfo.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from joserfc import jwe, jwt
from joserfc.jwk import KeySet, RSAKey
from oic import rndstr

from broker.accounts import create_account
from tests.conftest import PASSWORD, SECRET
from tests.flows.test_independent_client import (
    EMAIL, Authorization, authorization_response, browse, relying_party, validated_id_token,
)

FC_CALLBACK = "http://localhost:8601/api/v2/oidc-callback"
FCPLUS_CALLBACK = "http://localhost:8602/api/v2/oidc-callback"
FCPLUS_KEY = RSAKey.generate_key(2048, private=True, parameters={"kid": "fcplus-enc", "use": "enc"})
FCPLUS_SIGNING_KEY = RSAKey.generate_key(2048, private=True, parameters={"kid": "fcplus-sig", "use": "sig"})
COG_COMMUNE = re.compile(r"^(2[AB]|\d{2})\d{3}$")

CLIENTS = {
    "franceconnect": f"""
        name: FranceConnect
        profile: franceconnect
        redirect_uris: [{FC_CALLBACK}]
        client_secret: {SECRET}
        token_endpoint_auth_method: client_secret_post
        require_pkce: false
        scopes: [openid, profile, email, birth]
    """,
    "fcplus": f"""
        name: FranceConnect+
        profile: franceconnect
        redirect_uris: [{FCPLUS_CALLBACK}]
        token_endpoint_auth_method: private_key_jwt
        jwks: {json.dumps({"keys": [FCPLUS_KEY.as_dict(private=False), FCPLUS_SIGNING_KEY.as_dict(private=False)]})}
        require_pkce: false
        scopes: [openid, profile, email, birth]
        id_token_encrypted_response_alg: RSA-OAEP-256
        userinfo_encrypted_response_alg: RSA-OAEP-256
    """,
}


# FranceConnect's rule: a second factor alone does not raise a declared identity above eIDAS low.
LOCAL_EIDAS1 = "type: local\nname: Compte NC Connect\nmapping: local.yaml\nsecond_factor_level: eidas1\n"


@pytest.fixture
def live(serve_broker):
    live = serve_broker(CLIENTS, lambda issuer: {"local": LOCAL_EIDAS1})
    create_account(live.broker.sessions, EMAIL, PASSWORD, given_name="Jean Pierre Marie", family_name="Kabar",
                   birthdate="1985-07-14", gender="male", birthplace="98818", birthcountry="99100")
    return live


def franceconnect_request(rp, **extra) -> Authorization:
    """What FranceConnect sends an identity provider: no PKCE, a 32-character state, prompt=login."""
    state = rndstr(32)
    args = {"response_type": "code", "scope": ["openid", "profile", "email", "birth"],
            "redirect_uri": rp.redirect_uris[0], "state": state, "nonce": rndstr(32), "acr_values": "eidas1",
            "prompt": "login", **extra}
    url, _body, _headers, request = rp.authorization_request_info(request_args=args)
    return Authorization(url, request, state, "")


def test_franceconnect_completes_the_flow_and_gets_its_claim_formats(live):
    rp = relying_party(live.issuer, "franceconnect", SECRET, FC_CALLBACK)
    rp.registration_response = {"userinfo_signed_response_alg": "ES256"}
    with requests.Session() as browser:
        auth = franceconnect_request(rp, claims={"id_token": {"amr": {"essential": True}}})
        location, logins = browse(browser, auth.url, FC_CALLBACK)
        assert logins == 1  # prompt=login: the password, even for a first login
        authorization_response(rp, auth, location)
        tokens = rp.do_access_token_request(state=auth.state, authn_method="client_secret_post",
                                            request_args={"redirect_uri": FC_CALLBACK})
        id_token = validated_id_token(rp, auth, tokens)
        assert id_token["acr"] == "eidas1" and id_token["amr"] == ["pwd"] and id_token["sid"]

        response = requests.get(rp.provider_info["userinfo_endpoint"],
                                headers={"Authorization": "Bearer " + tokens["access_token"]})
        assert response.headers["Content-Type"].startswith("application/jwt")
        keys = KeySet.import_key_set(requests.get(rp.provider_info["jwks_uri"]).json())
        info = jwt.decode(response.text, keys, algorithms=["ES256"]).claims
        assert info["iss"] == live.issuer and info["aud"] == "franceconnect" and info["sub"] == id_token["sub"]
        assert info["given_name"] == "Jean Pierre Marie" and info["family_name"] == "Kabar"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", info["birthdate"]) and info["gender"] in ("male", "female")
        assert COG_COMMUNE.match(info["birthplace"]) and info["birthplace"].startswith("988")
        assert info["birthcountry"] == "99100" and info["email"] == EMAIL

        # a second login a moment later: prompt=login asks for the password again
        again = franceconnect_request(rp)
        _, logins = browse(browser, again.url, FC_CALLBACK)
        assert logins == 1


def test_amr_only_when_asked_through_claims(live):
    rp = relying_party(live.issuer, "franceconnect", SECRET, FC_CALLBACK)
    with requests.Session() as browser:
        auth = franceconnect_request(rp)
        location, _ = browse(browser, auth.url, FC_CALLBACK)
        authorization_response(rp, auth, location)
        tokens = rp.do_access_token_request(state=auth.state, authn_method="client_secret_post",
                                            request_args={"redirect_uri": FC_CALLBACK})
        assert "amr" not in tokens["id_token"] and tokens["id_token"]["acr"] == "eidas1"


def test_eidas2_is_never_claimed_through_an_eidas1_source(live):
    rp = relying_party(live.issuer, "franceconnect", SECRET, FC_CALLBACK)
    with requests.Session() as browser:
        auth = franceconnect_request(rp, acr_values="eidas2")
        location, logins = browse(browser, auth.url, FC_CALLBACK)
    assert logins == 0 and "error=unmet_authentication_requirements" in location and "code=" not in location


def test_encrypted_id_token_and_userinfo_decrypt_with_the_clients_key(live):
    import secrets
    import time

    rp = relying_party(live.issuer, "fcplus", "", FCPLUS_CALLBACK)
    with requests.Session() as browser:
        auth = franceconnect_request(rp)
        location, _ = browse(browser, auth.url, FCPLUS_CALLBACK)
    code = authorization_response(rp, auth, location)["code"]
    token_endpoint = rp.provider_info["token_endpoint"]
    assertion = jwt.encode({"alg": "RS256", "kid": "fcplus-sig"}, {
        "iss": "fcplus", "sub": "fcplus", "aud": token_endpoint, "exp": int(time.time()) + 60,
        "jti": secrets.token_urlsafe(16)}, FCPLUS_SIGNING_KEY, algorithms=["RS256"])
    body = requests.post(token_endpoint, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": FCPLUS_CALLBACK,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion}).json()
    algs = ["RSA-OAEP-256", "A256GCM"]
    keys = KeySet.import_key_set(requests.get(rp.provider_info["jwks_uri"]).json())

    encrypted = body["id_token"]
    assert len(encrypted.split(".")) == 5  # a JWE, not a readable JWS
    decrypted = jwe.decrypt_compact(encrypted, FCPLUS_KEY, algorithms=algs)
    assert decrypted.protected["alg"] == "RSA-OAEP-256" and decrypted.protected["enc"] == "A256GCM"
    id_claims = jwt.decode(decrypted.plaintext, keys, algorithms=["ES256"]).claims
    assert id_claims["aud"] == "fcplus" and id_claims["nonce"] == auth.request["nonce"]

    response = requests.get(rp.provider_info["userinfo_endpoint"], headers={"Authorization": "Bearer " + body["access_token"]})
    assert response.headers["Content-Type"].startswith("application/jwt")
    info = jwt.decode(jwe.decrypt_compact(response.text, FCPLUS_KEY, algorithms=algs).plaintext, keys,
                      algorithms=["ES256"]).claims
    assert info["sub"] == id_claims["sub"] and info["birthcountry"] == "99100"
    with pytest.raises(Exception):
        jwe.decrypt_compact(encrypted, RSAKey.generate_key(2048, private=True), algorithms=algs)
