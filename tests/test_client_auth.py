"""Client authentication at the token endpoint (RFC 6749 §2.3, §5.2; RFC 7523; OIDC Core §9).

Checklist A-13 (exactly the registered method) and A-14 (JWT client assertions).
A request whose client authentication succeeds but whose code is unknown gets
``invalid_grant``: that is how these tests tell "authenticated" from ``invalid_client``.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from urllib.parse import quote_plus

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from tests.conftest import ISSUER, SECRET, Flow

TOKEN_ENDPOINT = ISSUER + "/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ODD_SECRET = "p+ss:w%rd/25 & more=chars?ok-0123456789"
UNKNOWN_CODE = {"grant_type": "authorization_code", "code": "unknown-code", "redirect_uri": "https://x.example.nc/cb"}


def basic(client_id: str, secret: str, *, encode: bool = True) -> dict:
    """RFC 6749 §2.3.1: client_id and secret are form-urlencoded, then Basic-encoded."""
    if encode:
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def client_key() -> ECKey:
    return ECKey.generate_key("P-256", private=True, parameters={"kid": "client-key-1"})


@pytest.fixture
def served_keys(client_key) -> list:
    """The public keys the client's jwks_uri serves; a test may change them (key rotation)."""
    return [client_key.as_dict(private=False)]


@pytest.fixture
def jwks_uri(served_keys):
    """The client's JWKS served over loopback HTTP by a real server, at a fresh path (no cache reuse)."""

    def wsgi(environ, start_response):
        return Response(json.dumps({"keys": served_keys}), mimetype="application/json")(environ, start_response)

    server = make_server("127.0.0.1", 0, wsgi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks/{secrets.token_hex(8)}"
    server.shutdown()
    thread.join()


@pytest.fixture
def config_dir(config_dir, client_key, jwks_uri):
    clients = config_dir / "clients"
    public_jwks = json.dumps({"keys": [client_key.as_dict(private=False)]})
    (clients / "odd.yaml").write_text(f"""
name: Service with an awkward secret
redirect_uris: [https://odd.example.nc/cb]
client_secret: '{ODD_SECRET}'
""")
    (clients / "jwtc.yaml").write_text(f"""
name: Service with private_key_jwt and inline keys
redirect_uris: [https://jwtc.example.nc/cb]
token_endpoint_auth_method: private_key_jwt
jwks: {public_jwks}
""")
    (clients / "jwturi.yaml").write_text(f"""
name: Service with private_key_jwt and a jwks_uri
redirect_uris: [https://jwturi.example.nc/cb]
token_endpoint_auth_method: private_key_jwt
jwks_uri: {jwks_uri}
""")
    (clients / "deadkeys.yaml").write_text("""
name: Service whose jwks_uri does not answer
redirect_uris: [https://deadkeys.example.nc/cb]
token_endpoint_auth_method: private_key_jwt
jwks_uri: http://127.0.0.1:1/jwks
""")
    return config_dir


def assertion(key, client_id: str = "jwtc", alg: str = "ES256", header: dict | None = None, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_ENDPOINT, "exp": now + 60, "iat": now,
              "jti": secrets.token_urlsafe(16), **overrides}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(header or {"alg": alg, "kid": "client-key-1"}, claims, key, algorithms=[alg])


def jwt_auth(token: str) -> dict:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token}


def post_token(client, data: dict, headers: dict | None = None):
    return client.post("/token", data=data, headers=headers or {})


def assert_error(response, error: str, status: int) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"] == error, response.json


def assert_invalid_client(response, *, basic_used: bool = False) -> None:
    """RFC 6749 §5.2: 401, and WWW-Authenticate when the client tried the Authorization header."""
    assert_error(response, "invalid_client", 401)
    if basic_used:
        assert response.headers["WWW-Authenticate"].startswith("Basic ")


def assert_authenticated(response) -> None:
    assert_error(response, "invalid_grant", 400)


# -- shared secrets ----------------------------------------------------------------

@pytest.mark.parametrize("headers, data", [
    (basic("alpha", SECRET), {}),
    (None, {"client_id": "beta", "client_secret": SECRET}),
    (basic("odd", ODD_SECRET), {}),
], ids=["basic", "post", "basic-urlencoded-secret"])
def test_registered_method_with_right_secret_authenticates(client, headers, data):
    assert_authenticated(post_token(client, {**UNKNOWN_CODE, **data}, headers))


@pytest.mark.parametrize("headers, data, basic_used", [
    (basic("alpha", SECRET + "x"), {}, True),                                     # wrong secret, basic
    (None, {"client_id": "beta", "client_secret": SECRET + "x"}, False),          # wrong secret, post
    (None, {"client_id": "alpha", "client_secret": SECRET}, False),               # basic client uses post
    (basic("beta", SECRET), {}, True),                                            # post client uses basic
    (basic("nobody", SECRET), {}, True),                                          # unknown client, basic
    (None, {"client_id": "nobody", "client_secret": SECRET}, False),              # unknown client, post
    (None, {"client_id": "alpha"}, False),                                        # no credentials
    (None, {}, False),                                                            # nothing at all
    ({"Authorization": "Basic %%%not-base64"}, {}, True),                         # malformed header
    ({"Authorization": "Basic " + base64.b64encode(b"alpha").decode()}, {}, True),  # no colon
    (basic("odd", ODD_SECRET, encode=False), {}, True),                           # '+' not urlencoded
    (None, {"client_id": "spa", "client_secret": SECRET}, False),                 # public client with a secret
    (basic("spa", SECRET), {}, True),                                             # public client with basic
    (None, {"client_id": "jwtc", "client_secret": SECRET}, False),                # private_key_jwt client uses a secret
], ids=["wrong-basic", "wrong-post", "alpha-post", "beta-basic", "unknown-basic", "unknown-post",
        "no-credentials", "nothing", "malformed-basic", "basic-no-colon", "unencoded-secret",
        "spa-secret", "spa-basic", "jwt-client-secret"])
def test_wrong_secret_or_method_is_invalid_client(client, headers, data, basic_used):
    """A-13: only the registered method, with the right credentials."""
    assert_invalid_client(post_token(client, {**UNKNOWN_CODE, **data}, headers), basic_used=basic_used)


@pytest.mark.parametrize("headers, data", [
    (basic("alpha", SECRET), {"client_secret": SECRET}),
    (basic("alpha", SECRET), {"client_assertion_type": ASSERTION_TYPE, "client_assertion": "x.y.z"}),
    (None, {"client_id": "beta", "client_secret": SECRET, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": "x.y.z"}),
    (basic("alpha", SECRET), {"client_id": "beta"}),
], ids=["basic+post", "basic+jwt", "post+jwt", "basic-and-other-client_id"])
def test_ambiguous_authentication_is_invalid_request(client, headers, data):
    assert_error(post_token(client, {**UNKNOWN_CODE, **data}, headers), "invalid_request", 400)


def test_public_client_exchanges_with_pkce_only(client, account):
    flow = Flow(client, "spa", "https://spa.example.nc/cb")
    missing = flow.token(flow.code(), client_id="spa", code_verifier=None)
    assert_error(missing, "invalid_grant", 400)
    response = flow.token(flow.code(), client_id="spa")
    assert response.status_code == 200, response.json
    assert response.json["access_token"] and response.json["id_token"]
    assert "refresh_token" not in response.json


# -- private_key_jwt ---------------------------------------------------------------

def test_private_key_jwt_exchanges_a_code(client, account, client_key):
    flow = Flow(client, "jwtc", "https://jwtc.example.nc/cb")
    response = flow.token(flow.code(), **jwt_auth(assertion(client_key)))
    assert response.status_code == 200, response.json
    assert response.json["access_token"] and response.json["id_token"]


@pytest.mark.parametrize("overrides, extra", [
    (lambda: {}, {}),
    (lambda: {}, {"client_id": "jwtc"}),
    (lambda: {"aud": ISSUER}, {}),
    (lambda: {"aud": [TOKEN_ENDPOINT, "https://other.example.nc"]}, {}),
    (lambda: {"exp": int(time.time()) + 290}, {}),
], ids=["plain", "with-client_id", "aud-issuer", "aud-list", "exp-under-5-min"])
def test_valid_assertions_authenticate(client, client_key, overrides, extra):
    data = {**UNKNOWN_CODE, **jwt_auth(assertion(client_key, **overrides())), **extra}
    assert_authenticated(post_token(client, data))


def test_replayed_assertion_is_invalid_client(client, client_key):
    """A-14: a jti is accepted once."""
    data = {**UNKNOWN_CODE, **jwt_auth(assertion(client_key))}
    assert_authenticated(post_token(client, data))
    assert_invalid_client(post_token(client, data))


def _alg_none(key) -> str:
    now = int(time.time())
    claims = {"iss": "jwtc", "sub": "jwtc", "aud": TOKEN_ENDPOINT, "exp": now + 60, "jti": secrets.token_hex(8)}
    return f"{b64url({'alg': 'none'})}.{b64url(claims)}."


def _hs256(key) -> str:
    return assertion(OctKey.import_key(SECRET.encode() * 2), alg="HS256", header={"alg": "HS256", "kid": "client-key-1"})


def _other_key(key) -> str:
    return assertion(ECKey.generate_key("P-256", private=True), header={"alg": "ES256", "kid": "client-key-1"})


def _other_key_no_kid(key) -> str:
    return assertion(ECKey.generate_key("P-256", private=True), header={"alg": "ES256"})


BAD_ASSERTIONS = {
    "wrong-iss": lambda k: assertion(k, iss="alpha"),
    "wrong-sub": lambda k: assertion(k, sub="alpha"),
    "wrong-aud": lambda k: assertion(k, aud="https://evil.example/token"),
    "aud-userinfo": lambda k: assertion(k, aud=ISSUER + "/userinfo"),
    "expired": lambda k: assertion(k, exp=int(time.time()) - 120),
    "exp-too-far": lambda k: assertion(k, exp=int(time.time()) + 600),
    "no-exp": lambda k: assertion(k, exp=None),
    "exp-nan": lambda k: assertion(k, exp=float("nan")),
    "exp-string": lambda k: assertion(k, exp=str(int(time.time()) + 60)),
    "no-jti": lambda k: assertion(k, jti=None),
    "empty-jti": lambda k: assertion(k, jti=""),
    "another-key": _other_key,
    "another-key-no-kid": _other_key_no_kid,
    "alg-none": _alg_none,
    "hs256": _hs256,
    "not-a-jwt": lambda k: "not-a-jwt",
    "sub-not-a-string": lambda k: f"{b64url({'alg': 'ES256'})}.{b64url({'sub': ['jwtc']})}.c2ln",
    "aud-not-a-string": lambda k: assertion(k, aud={"url": TOKEN_ENDPOINT}),
    "aud-list-of-objects": lambda k: assertion(k, aud=[{"url": TOKEN_ENDPOINT}]),
    "payload-not-object": lambda k: f"{b64url({'alg': 'ES256'})}.{base64.urlsafe_b64encode(b'[1]').decode()}.c2ln",
}


@pytest.mark.parametrize("make", BAD_ASSERTIONS.values(), ids=BAD_ASSERTIONS.keys())
def test_bad_assertion_is_invalid_client(client, client_key, make):
    """A-14."""
    assert_invalid_client(post_token(client, {**UNKNOWN_CODE, **jwt_auth(make(client_key))}))
    assert_invalid_client(post_token(client, {**UNKNOWN_CODE, **jwt_auth(make(client_key)), "client_id": "jwtc"}))


@pytest.mark.parametrize("assertion_type", ["urn:ietf:params:oauth:client-assertion-type:saml2-bearer", None])
def test_wrong_assertion_type_is_invalid_request(client, client_key, assertion_type):
    data = {**UNKNOWN_CODE, "client_assertion": assertion(client_key), "client_assertion_type": assertion_type}
    assert_error(post_token(client, {k: v for k, v in data.items() if v}), "invalid_request", 400)


def test_assertion_for_a_secret_client_is_invalid_client(client, client_key):
    """A-13: alpha is registered for client_secret_basic; a (validly signed) assertion is not its method."""
    assert_invalid_client(post_token(client, {**UNKNOWN_CODE, **jwt_auth(assertion(client_key, client_id="alpha"))}))


def test_jwks_uri_keys_are_fetched(client, client_key):
    assert_authenticated(post_token(client, {**UNKNOWN_CODE, **jwt_auth(assertion(client_key, "jwturi"))}))
    other = assertion(ECKey.generate_key("P-256", private=True), "jwturi", header={"alg": "ES256", "kid": "client-key-1"})
    assert_invalid_client(post_token(client, {**UNKNOWN_CODE, **jwt_auth(other)}))


def test_rotated_client_key_is_refetched_at_a_limited_rate(client, client_key, served_keys, monkeypatch):
    assert_authenticated(post_token(client, {**UNKNOWN_CODE, **jwt_auth(assertion(client_key, "jwturi"))}))
    new_key = ECKey.generate_key("P-256", private=True)
    served_keys[:] = [dict(new_key.as_dict(private=False), kid="client-key-2")]
    rotated = lambda: assertion(new_key, "jwturi", header={"alg": "ES256", "kid": "client-key-2"})  # noqa: E731
    # the cached set was fetched moments ago: no new fetch yet, so the new key is unknown
    assert_invalid_client(post_token(client, {**UNKNOWN_CODE, **jwt_auth(rotated())}))
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 31)
    assert_authenticated(post_token(client, {**UNKNOWN_CODE, **jwt_auth(rotated())}))


def test_unreachable_jwks_uri_is_invalid_client(client, client_key):
    assert_invalid_client(post_token(client, {**UNKNOWN_CODE, **jwt_auth(assertion(client_key, "deadkeys"))}))
