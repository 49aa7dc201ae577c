"""The checktoken endpoint (FranceConnect v2, RFC 9701) and the data providers' configuration.

A data provider presents a téléservice's access token with its own credentials and
learns exactly what its scopes allow: checklist A-13 (its credentials), A-17 (tokens
bound to client, user and scopes; expired or revoked ones inactive), A-28 (no token in
the logs), A-30 (scopes limited, pairwise ``sub`` per sector).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import textwrap
import threading

import pytest
from click.testing import CliRunner
from joserfc import jwe, jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from werkzeug.serving import make_server

from broker import grants
from broker.cli import main
from tests.conftest import ISSUER, SECRET, Flow, write_config

DP_SECRET = "foyer-s3cret-foyer-s3cret-foyer-s3cret-01"
ENC_SECRET = "enc-s3cret-enc-s3cret-enc-s3cret-enc-0002"
ALPHA = {"Authorization": "Basic " + base64.b64encode(f"alpha:{SECRET}".encode()).decode()}
RSA_KEY = RSAKey.generate_key(2048, private=True, parameters={"kid": "dp-rsa", "use": "enc"})
EC_KEY = ECKey.generate_key("P-256", private=True, parameters={"kid": "dp-ec", "use": "enc"})
PIVOT_CLAIMS = {"given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry",
                "preferred_username", "email", "email_verified"}


def public_jwks(*keys) -> str:
    return json.dumps({"keys": [k.as_dict(private=False) for k in keys]})


@pytest.fixture(scope="module")
def jwks_server():
    """The data provider's jwks_uri (a real HTTP server on loopback); and a closed port for one that is down."""
    body = public_jwks(EC_KEY).encode()

    def wsgi(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    yield {"up": f"http://127.0.0.1:{server.server_port}/jwks", "down": f"http://127.0.0.1:{closed.getsockname()[1]}/jwks"}
    server.shutdown()
    server.server_close()
    closed.close()


@pytest.fixture
def config_dir(config_dir, jwks_server):
    dps = config_dir / "data_providers"
    dps.mkdir()
    for name, uri in jwks_server.items():
        (dps / f"uri-{name}.yaml").write_text(textwrap.dedent(f"""
            name: Keys published at a jwks_uri ({name})
            client_id: dp-uri-{name}
            client_secret: {ENC_SECRET}
            scopes: [birth]
            jwks_uri: {uri}
            checktoken_encrypted_response_alg: ECDH-ES
        """))
    (dps / "foyer.yaml").write_text(textwrap.dedent(f"""
        name: Quotient familial (DSF)
        client_id: dsf-foyer
        client_secret: {DP_SECRET}
        scopes: [birth]
    """))
    (dps / "enc-rsa.yaml").write_text(textwrap.dedent(f"""
        name: Encrypted answers (RSA)
        client_id: dp-rsa
        client_secret: {ENC_SECRET}
        scopes: [profile, birth]
        jwks: {public_jwks(RSA_KEY)}
        checktoken_signed_response_alg: RS256
        checktoken_encrypted_response_alg: RSA-OAEP-256
    """))
    (dps / "enc-ec.yaml").write_text(textwrap.dedent(f"""
        name: Encrypted answers (EC)
        client_id: dp-ec
        client_secret: {ENC_SECRET}
        scopes: [email]
        jwks: {public_jwks(EC_KEY)}
        checktoken_encrypted_response_alg: ECDH-ES
    """))
    (dps / "same-sector.yaml").write_text(textwrap.dedent(f"""
        name: A data provider of the téléservice's own administration
        client_id: dp-alpha-sector
        client_secret: {DP_SECRET}
        scopes: [openid, profile]
        sector: alpha
    """))
    return config_dir


# -- helpers ---------------------------------------------------------------------------------

def access_token(client, scope: str = "openid profile email birth") -> dict:
    flow = Flow(client)
    response = flow.token(flow.code(scope=scope))
    assert response.status_code == 200, response.json
    return response.json


def checktoken(client, token: str, client_id: str = "dsf-foyer", secret: str = DP_SECRET):
    data = {"token": token, "client_id": client_id, "client_secret": secret}
    return client.post("/checktoken", data={k: v for k, v in data.items() if v is not None})


def jwks(client) -> KeySet:
    return KeySet.import_key_set(client.get("/jwks").json)


def verified(client, response, audience: str = "dsf-foyer", alg: str = "ES256") -> dict:
    """Check the RFC 9701 envelope; return ``token_introspection``."""
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/token-introspection+jwt"
    assert response.headers["Cache-Control"] == "no-store"
    token = jwt.decode(response.get_data(as_text=True), jwks(client), algorithms=[alg])
    assert token.header["typ"] == "token-introspection+jwt"
    assert token.header["alg"] == alg
    claims = token.claims
    assert claims["iss"] == ISSUER
    assert claims["aud"] == audience
    assert isinstance(claims["iat"], int)
    return claims["token_introspection"]


# -- what a data provider sees ------------------------------------------------------------------

def test_data_provider_sees_what_its_scopes_allow_and_nothing_more(client, account):
    tokens = access_token(client)
    info = verified(client, checktoken(client, tokens["access_token"]))
    assert info["active"] is True
    assert info["scope"] == "birth"
    assert info["aud"] == "alpha"  # the téléservice the token was issued to
    assert info["acr"] == "eidas1"
    assert info["birthplace"] == "98818" and info["birthcountry"] == "99100"
    assert set(info) == {"active", "aud", "sub", "iat", "exp", "acr", "jti", "scope", "birthplace", "birthcountry"}
    assert not set(info) & (PIVOT_CLAIMS - {"birthplace", "birthcountry"})
    assert info["exp"] - info["iat"] == tokens["expires_in"]
    # the token is still the téléservice's: checking it consumes nothing
    assert verified(client, checktoken(client, tokens["access_token"]))["jti"] == info["jti"]


def test_sub_is_pairwise_for_the_data_provider(client, account):
    tokens = access_token(client)
    userinfo = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).json
    info = verified(client, checktoken(client, tokens["access_token"]))
    assert info["sub"] != userinfo["sub"]
    # stable for one citizen and one data provider, whatever the token
    again = verified(client, checktoken(client, access_token(client)["access_token"]))
    assert again["sub"] == info["sub"]
    # a data provider declaring the téléservice's sector sees the téléservice's sub
    same = verified(client, checktoken(client, tokens["access_token"], "dp-alpha-sector"), "dp-alpha-sector")
    assert same["sub"] == userinfo["sub"]
    assert same["scope"] == "openid profile"
    assert {"given_name", "family_name", "birthdate", "gender"} <= set(same)
    assert "email" not in same and "birthplace" not in same


def test_token_without_the_data_providers_scopes_is_inactive(client, account):
    tokens = access_token(client, scope="openid email")
    assert verified(client, checktoken(client, tokens["access_token"])) == {"active": False}


def test_expired_token_is_inactive(client, broker, account):
    token = access_token(client)["access_token"]
    key = "at:" + grants.token_hash(token)
    record = broker.store.get(key)
    record["exp"] = record["iat"] - 1  # what the store holds once the lifetime has passed
    broker.store.put(key, record, 60)
    assert verified(client, checktoken(client, token)) == {"active": False}


def test_revoked_token_is_inactive(client, account):
    token = access_token(client)["access_token"]
    assert client.post("/revoke", data={"token": token}, headers=ALPHA).status_code == 200
    assert verified(client, checktoken(client, token)) == {"active": False}


def test_token_of_a_logged_out_session_is_inactive(client, account):
    tokens = access_token(client)
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    assert verified(client, checktoken(client, tokens["access_token"])) == {"active": False}


@pytest.mark.parametrize("token", ["unknown-token", "x" * 500, "é"])
def test_unknown_token_is_inactive(client, token):
    assert verified(client, checktoken(client, token)) == {"active": False}


def test_refresh_token_is_not_an_access_token(client, account):
    tokens = access_token(client)
    assert verified(client, checktoken(client, tokens["refresh_token"])) == {"active": False}


# -- credentials -------------------------------------------------------------------------------

@pytest.mark.parametrize("client_id,secret", [
    ("dsf-foyer", "wrong-secret-wrong-secret-wrong-secret-00"),
    ("dsf-foyer", None),
    (None, DP_SECRET),
    ("unknown-dp", DP_SECRET),
    ("alpha", SECRET),  # a téléservice is not a data provider
    ("dp-rsa", DP_SECRET),  # another data provider's secret
])
def test_bad_credentials_are_invalid_client(client, account, client_id, secret):
    tokens = access_token(client)
    response = checktoken(client, tokens["access_token"], client_id, secret)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert response.headers["Cache-Control"] == "no-store"
    assert "birthplace" not in response.get_data(as_text=True)


def test_basic_authentication_is_not_a_data_provider_method(client, account):
    tokens = access_token(client)
    auth = base64.b64encode(f"dsf-foyer:{DP_SECRET}".encode()).decode()
    response = client.post("/checktoken", data={"token": tokens["access_token"]},
                           headers={"Authorization": "Basic " + auth})
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_missing_token_and_protocol_errors(client):
    response = client.post("/checktoken", data={"client_id": "dsf-foyer", "client_secret": DP_SECRET})
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    response = client.post("/checktoken?token=abc", data={"client_id": "dsf-foyer", "client_secret": DP_SECRET})
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    response = client.post("/checktoken", data={"client_id": "dsf-foyer", "client_secret": DP_SECRET,
                                                "token": ["a", "b"]})
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    response = client.get("/checktoken")
    assert response.status_code == 405 and response.json["error"] == "invalid_request"


def test_tokens_never_reach_the_logs(client, account, caplog):
    tokens = access_token(client)
    with caplog.at_level(logging.DEBUG):
        verified(client, checktoken(client, tokens["access_token"]))
        checktoken(client, tokens["access_token"], secret="wrong-secret-wrong-secret-wrong-secret-00")
    text = caplog.text
    assert "checktoken data_provider=dsf-foyer client=alpha active=True scope=birth" in text
    assert tokens["access_token"] not in text and DP_SECRET not in text


# -- encryption ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dp,key,enc_alg,sign_alg", [
    ("dp-rsa", RSA_KEY, "RSA-OAEP-256", "RS256"),
    ("dp-ec", EC_KEY, "ECDH-ES", "ES256"),
])
def test_encrypted_answer_decrypts_with_the_data_providers_key(client, account, dp, key, enc_alg, sign_alg):
    tokens = access_token(client)
    response = checktoken(client, tokens["access_token"], dp, ENC_SECRET)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/token-introspection+jwt"
    body = response.get_data(as_text=True)
    assert body.count(".") == 4  # a compact JWE
    decrypted = jwe.decrypt_compact(body, key, algorithms=[enc_alg, "A256GCM"])
    assert decrypted.protected["alg"] == enc_alg and decrypted.protected["enc"] == "A256GCM"
    assert decrypted.protected["kid"] == key.kid
    inner = jwt.decode(decrypted.plaintext, jwks(client), algorithms=[sign_alg])
    assert inner.header["typ"] == "token-introspection+jwt"
    assert inner.claims["iss"] == ISSUER and inner.claims["aud"] == dp
    info = inner.claims["token_introspection"]
    assert info["active"] is True and info["aud"] == "alpha"
    if dp == "dp-rsa":
        assert info["scope"] == "profile birth"
        assert {"given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"} <= set(info)
        assert "email" not in info
    else:
        assert info["scope"] == "email"
        assert info["email"] == "citoyen@example.nc"
        assert not set(info) & (PIVOT_CLAIMS - {"email", "email_verified"})
    # an inactive answer is encrypted too
    inactive = jwe.decrypt_compact(checktoken(client, "nope", dp, ENC_SECRET).get_data(as_text=True), key,
                                   algorithms=[enc_alg, "A256GCM"])
    assert jwt.decode(inactive.plaintext, jwks(client), algorithms=[sign_alg]).claims["token_introspection"] == {
        "active": False}


def test_encryption_key_fetched_from_jwks_uri(client, account):
    tokens = access_token(client)
    response = checktoken(client, tokens["access_token"], "dp-uri-up", ENC_SECRET)
    assert response.status_code == 200
    decrypted = jwe.decrypt_compact(response.get_data(as_text=True), EC_KEY, algorithms=["ECDH-ES", "A256GCM"])
    info = jwt.decode(decrypted.plaintext, jwks(client), algorithms=["ES256"]).claims["token_introspection"]
    assert info["active"] is True and info["scope"] == "birth"


def test_unreachable_jwks_uri_never_yields_a_plaintext_answer(client, account):
    tokens = access_token(client)
    response = checktoken(client, tokens["access_token"], "dp-uri-down", ENC_SECRET)
    assert response.status_code == 500
    assert response.json == {"error": "server_error",
                             "error_description": "the data provider's encryption key could not be used"}
    assert response.headers["Cache-Control"] == "no-store"


# -- configuration ---------------------------------------------------------------------------------

def check_config(tmp_path, files: dict[str, str]):
    conf = write_config(tmp_path / "conf", database_url="sqlite:///broker.db")
    (conf / "data_providers").mkdir()
    for name, body in files.items():
        (conf / "data_providers" / name).write_text(textwrap.dedent(body))
    return CliRunner().invoke(main, ["--config", str(conf), "check-config"])


def test_valid_data_provider_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("NC_TEST_DP_SECRET", DP_SECRET)
    result = check_config(tmp_path, {"foyer.yaml": """
        name: Foyer fiscal
        client_id: dsf-foyer
        client_secret: ${NC_TEST_DP_SECRET}
        scopes: [identite_pivot]
        jwks_uri: https://dsf.gouv.nc/jwks
        checktoken_encrypted_response_alg: RSA-OAEP-256
    """})
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("body,expected", [
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: [birth]\ncolour: blue\n",
     "data_providers/x.yaml: colour: unknown key"),
    ("name: X\nclient_id: x\nclient_secret: short\nscopes: [birth]\n",
     "data_providers/x.yaml: client_secret: String should have at least 32 characters"),
    ("name: X\nclient_id: x\nclient_secret: ${NC_TEST_UNSET_DP_SECRET}\nscopes: [birth]\n",
     "data_providers/x.yaml: client_secret: environment variable NC_TEST_UNSET_DP_SECRET is not set"),
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: [birth, household]\n",
     "data_providers/x.yaml: scopes: unknown scope(s) household"),
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: [offline_access]\n",
     "data_providers/x.yaml: scopes: unknown scope(s) offline_access"),
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: []\n", "data_providers/x.yaml: scopes:"),
    (f"name: X\nclient_secret: {DP_SECRET}\nscopes: [birth]\n", "data_providers/x.yaml: client_id: Field required"),
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: [birth]\nchecktoken_signed_response_alg: HS256\n",
     "checktoken_signed_response_alg: Input should be 'ES256' or 'RS256'"),
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: [birth]\n"
     "checktoken_encrypted_response_alg: RSA-OAEP-256\n",
     "checktoken_encrypted_response_alg needs the data provider's keys in jwks or jwks_uri"),
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: [birth]\njwks: {public_jwks(RSA_KEY)}\n"
     "checktoken_encrypted_response_alg: A128KW\n", "checktoken_encrypted_response_alg: Input should be"),
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: [birth]\nchecktoken_signed_response_alg: none\n",
     "checktoken_signed_response_alg: Input should be 'ES256' or 'RS256'"),
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: [birth]\njwks_uri: http://dsf.gouv.nc/jwks\n",
     "jwks_uri: 'http://dsf.gouv.nc/jwks' must use https"),
    (f"name: X\nclient_id: x\nclient_secret: {DP_SECRET}\nscopes: [birth]\n"
     f"jwks: {json.dumps({'keys': [RSA_KEY.as_dict(private=True)]})}\n",
     "data_providers/x.yaml: jwks: contains private key material"),
    (f"name: X\nclient_id: alpha\nclient_secret: {DP_SECRET}\nscopes: [birth]\n",
     "data_providers/x.yaml: client_id: 'alpha' is already a téléservice's client_id"),
    ("- a list\n", "data_providers/x.yaml: must be a mapping of keys to values"),
])
def test_data_provider_problems_name_file_and_key(tmp_path, body, expected):
    result = check_config(tmp_path, {"x.yaml": body})
    assert result.exit_code != 0
    assert expected in result.output, result.output


def test_duplicated_data_provider_client_id(tmp_path):
    body = f"name: X\nclient_id: same\nclient_secret: {DP_SECRET}\nscopes: [birth]\n"
    result = check_config(tmp_path, {"a.yaml": body, "b.yaml": body})
    assert result.exit_code != 0
    assert "data_providers/b.yaml: client_id: duplicated client_id 'same'" in result.output
