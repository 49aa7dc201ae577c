"""The broker as seen by an independent OpenID Connect client library.

Téléservices will not use our code: they plug in whatever OpenID Connect
library their stack offers.  These tests serve the broker over real HTTP on a
loopback port and drive it with pyoidc (``oic``), a relying-party library
written independently of the broker and of Authlib, so that a misreading of a
specification shared by the broker and its own test helpers cannot go
unnoticed.

pyoidc does what a téléservice's library does: discovery, the authorization
request with PKCE S256, parsing the authorization response, the token request
with ``client_secret_basic``, ID token validation against the JWKS it fetched
(signature, ``iss``, ``aud``, ``exp``, ``nonce``, ``at_hash``), UserInfo with
the bearer token, refresh and the RP-initiated logout request.  A
``requests.Session`` plays the citizen's browser and stops at the client's
redirect URI (nothing listens there).  Introspection (RFC 7662) and
revocation (RFC 7009), which pyoidc's OpenID Connect client does not offer,
are called with plain ``requests``.

Every test runs on both storage backends (SQLite, and PostgreSQL + Redis).
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from jwkest import BadSignature
from oic import rndstr
from oic.oauth2.grant import Token
from oic.oauth2.message import ErrorResponse, Message
from oic.oic import Client
from oic.oic.message import (
    AccessTokenResponse, AuthorizationErrorResponse, AuthorizationResponse, EndSessionRequest, IdToken,
    OpenIDSchema, TokenErrorResponse, verify_id_token,
)
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from broker.accounts import create_account
from tests.conftest import PASSWORD, SECRET

EMAIL = "citoyen@example.nc"
SCOPE = ["openid", "profile", "email"]
SESSION_COOKIE = "ncc_session"  # the cookie's name when secure_cookies is false (no __Host- prefix on http)

ALPHA_CALLBACK = "http://localhost:8401/cb"
ALPHA_LOGGED_OUT = "http://localhost:8401/bye"
BETA_CALLBACK = "http://localhost:8402/cb"
BETA_SECRET = "beta-s3cret-beta-s3cret-beta-s3cret-0002"

CLIENTS = {
    "alpha": f"""
        name: Service Alpha
        redirect_uris: [{ALPHA_CALLBACK}]
        post_logout_redirect_uris: [{ALPHA_LOGGED_OUT}]
        client_secret: {SECRET}
        scopes: [openid, profile, email]
        grant_types: [authorization_code, refresh_token]
    """,
    "beta": f"""
        name: Service Beta
        redirect_uris: [{BETA_CALLBACK}]
        client_secret: {BETA_SECRET}
        scopes: [openid, profile, email]
    """,
}

# What UserInfo releases for ``openid profile email`` (besides ``sub``).
EXPECTED_CLAIMS = {
    "given_name": "Jean Pierre", "family_name": "Kabar", "birthdate": "1985-07-14", "gender": "male",
    "email": EMAIL, "email_verified": False,
}


# -- fixtures ---------------------------------------------------------------

@pytest.fixture
def live(serve_broker):
    """The broker on http://localhost:<port>, with one citizen account."""
    live = serve_broker(CLIENTS)
    create_account(live.broker.sessions, EMAIL, PASSWORD, given_name="Jean Pierre", family_name="Kabar",
                   birthdate="1985-07-14", gender="male", birthplace="98818", birthcountry="99100")
    return live


@pytest.fixture
def browser():
    with requests.Session() as session:
        yield session


# -- the relying party (pyoidc) ----------------------------------------------

def relying_party(issuer: str, client_id: str, secret: str, redirect_uri: str) -> Client:
    """A pyoidc client configured only through discovery of ``issuer``."""
    rp = Client(client_id=client_id, client_authn_method=CLIENT_AUTHN_METHOD)
    rp.client_secret = secret
    rp.redirect_uris = [redirect_uri]
    rp.provider_config(issuer)
    return rp


def alpha(live) -> Client:
    return relying_party(live.issuer, "alpha", SECRET, ALPHA_CALLBACK)


def beta(live) -> Client:
    return relying_party(live.issuer, "beta", BETA_SECRET, BETA_CALLBACK)


@dataclass
class Authorization:
    """One authorization request, as the relying party remembers it until the callback."""

    url: str
    request: Message
    state: str
    code_verifier: str


def authorization_request(rp: Client, **extra) -> Authorization:
    pkce, verifier = rp.add_code_challenge()
    assert pkce["code_challenge_method"] == "S256"
    state = rndstr(24)
    args = {"response_type": "code", "scope": SCOPE, "redirect_uri": rp.redirect_uris[0], "state": state,
            "nonce": rndstr(24), **pkce, **extra}
    url, _body, _headers, request = rp.authorization_request_info(request_args=args)
    return Authorization(url, request, state, verifier)


def assert_issuer_identified(rp: Client, location: str) -> None:
    """RFC 9207: every authorization response, success or error, names the issuer."""
    assert parse_qs(urlsplit(location).query).get("iss") == [rp.provider_info["issuer"]], location


def authorization_response(rp: Client, auth: Authorization, location: str) -> AuthorizationResponse:
    assert_issuer_identified(rp, location)
    response = rp.parse_response(AuthorizationResponse, info=location, sformat="urlencoded")
    assert isinstance(response, AuthorizationResponse), response.to_dict()
    assert response["state"] == auth.state
    return response


def authorization_error(rp: Client, auth: Authorization, location: str) -> AuthorizationErrorResponse:
    assert_issuer_identified(rp, location)
    response = rp.parse_response(AuthorizationResponse, info=location, sformat="urlencoded")
    assert isinstance(response, AuthorizationErrorResponse), response.to_dict()
    assert response["state"] == auth.state
    return response


def redeem(rp: Client, auth: Authorization) -> AccessTokenResponse:
    """Token request with client_secret_basic; pyoidc verifies the ID token and compares the nonce."""
    tokens = rp.do_access_token_request(
        state=auth.state, authn_method="client_secret_basic",
        request_args={"redirect_uri": rp.redirect_uris[0], "code_verifier": auth.code_verifier},
    )
    assert isinstance(tokens, AccessTokenResponse), tokens.to_dict()
    assert tokens["token_type"].lower() == "bearer"
    return tokens


def validated_id_token(rp: Client, auth: Authorization, tokens: AccessTokenResponse) -> IdToken:
    """Everything OIDC Core §3.1.3.7 asks of a client, done by pyoidc."""
    id_token = tokens["id_token"]  # signature (JWKS from discovery), iss, aud, azp, exp and iat already checked
    # pyoidc accepts alg "none" silently: make sure the token really was signed with a published key.
    assert id_token.jws_header["alg"] == "ES256"
    published = {key.kid for key in rp.keyjar.get_verify_key(owner=rp.provider_info["issuer"])}
    assert id_token.jws_header["kid"] in published
    rp.verify_id_token(id_token, auth.request)  # iss, aud, exp, nonce against the authorization request
    # at_hash (§3.1.3.8): pyoidc checks it when asked to with check_hash.
    verify_id_token({"id_token": tokens["id_token_jwt"], "access_token": tokens["access_token"]}, check_hash=True,
                    keyjar=rp.keyjar, iss=rp.provider_info["issuer"], client_id=rp.client_id)
    assert "at_hash" in id_token
    return id_token


def userinfo(rp: Client, access_token: str) -> OpenIDSchema | ErrorResponse:
    """UserInfo with the access token in the Authorization header (RFC 6750 §2.1)."""
    return rp.do_user_info_request(method="GET", token=access_token)


def refresh(rp: Client, auth: Authorization, issued: AccessTokenResponse) -> AccessTokenResponse | TokenErrorResponse:
    """Refresh with the refresh token of ``issued`` (pyoidc itself forgets a token once it is replaced)."""
    return rp.do_access_token_refresh(state=auth.state, token=Token(issued), authn_method="client_secret_basic")


# -- the citizen's browser -----------------------------------------------------

def at(location: str, uri: str) -> bool:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" == uri


def browse(browser: requests.Session, url: str, stop_at: str) -> tuple[str, int]:
    """Follow the broker's redirects, signing in when the login form appears.

    Returns the URL the broker finally sends the browser to under ``stop_at``
    (the client's redirect URI) and how many times the password was asked for.
    """
    logins = 0
    response = browser.get(url, allow_redirects=False)
    for _ in range(10):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if at(location, stop_at):
                assert response.status_code == 303, "RFC 9700 §4.12: never 307 to the client"
                return location, logins
            response = browser.get(location, allow_redirects=False)
        elif response.status_code == 200 and urlsplit(response.url).path == "/login":
            logins += 1
            response = submit_login_form(browser, response)
        elif response.status_code == 200 and urlsplit(response.url).path == "/consentement":
            response = accept_consent(browser, response)
        else:
            raise AssertionError(f"unexpected {response.status_code} at {response.url}: {response.text[:300]}")
    raise AssertionError("too many redirects")


def submit_login_form(browser: requests.Session, page: requests.Response) -> requests.Response:
    # the login form is the one holding the password field (the page has others: language switch…)
    html = next(f for f in re.findall(r"<form.*?</form>", page.text, re.S) if 'type="password"' in f)
    action = re.search(r'action="([^"]+)"', html).group(1)
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    assert {"csrf_token", "rid"} <= set(hidden) and hidden["rid"], hidden
    return browser.post(urljoin(page.url, action), data={**hidden, "email": EMAIL, "password": PASSWORD},
                        allow_redirects=False)


def accept_consent(browser: requests.Session, page: requests.Response) -> requests.Response:
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    return browser.post(urljoin(page.url, "/consentement"), data={**hidden, "decision": "accept"}, allow_redirects=False)


def sign_in(browser: requests.Session, rp: Client) -> tuple[Authorization, AccessTokenResponse, IdToken]:
    """The whole authorization code flow for ``rp``, asserting the citizen typed the password once."""
    auth = authorization_request(rp)
    location, logins = browse(browser, auth.url, rp.redirect_uris[0])
    assert logins == 1
    authorization_response(rp, auth, location)
    tokens = redeem(rp, auth)
    return auth, tokens, validated_id_token(rp, auth, tokens)


# -- introspection and revocation (plain HTTP) ----------------------------------

def introspect(rp: Client, token: str) -> dict:
    response = requests.post(rp.provider_info["introspection_endpoint"], data={"token": token},
                             auth=(rp.client_id, rp.client_secret))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def revoke(rp: Client, token: str) -> None:
    response = requests.post(rp.provider_info["revocation_endpoint"], data={"token": token},
                             auth=(rp.client_id, rp.client_secret))
    assert response.status_code == 200, response.text


def forge(id_token_jwt: str, **changes) -> str:
    """The same JWT with altered claims and the original signature."""
    header, payload, signature = id_token_jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


# -- the tests ---------------------------------------------------------------

def test_code_flow_with_pkce_id_token_and_userinfo(live, browser):
    rp = alpha(live)
    assert rp.provider_info["issuer"] == live.issuer
    assert "S256" in rp.provider_info["code_challenge_methods_supported"]
    assert rp.provider_info["authorization_response_iss_parameter_supported"] is True

    before = int(time.time())
    auth, tokens, id_token = sign_in(browser, rp)
    after = int(time.time())

    assert tokens["scope"] == SCOPE
    assert id_token["aud"] == ["alpha"]
    assert id_token["acr"] == "eidas1"
    assert id_token["amr"] == ["pwd"]
    assert before <= id_token["auth_time"] <= after
    assert isinstance(id_token["sid"], str) and id_token["sid"]

    info = userinfo(rp, tokens["access_token"])
    assert isinstance(info, OpenIDSchema), info.to_dict()
    assert info.to_dict() == {"sub": id_token["sub"], **EXPECTED_CLAIMS}

    # The validation above is real: the same token with another sub fails pyoidc's signature check.
    with pytest.raises(BadSignature):
        verify_id_token({"id_token": forge(tokens["id_token_jwt"], sub="someone-else")},
                        keyjar=rp.keyjar, iss=live.issuer, client_id="alpha")


def test_refresh_token_rotates_and_reuse_revokes_the_grant(live, browser):
    rp = alpha(live)
    auth, tokens, id_token = sign_in(browser, rp)

    refreshed = refresh(rp, auth, tokens)
    assert isinstance(refreshed, AccessTokenResponse), refreshed.to_dict()
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    assert refreshed["access_token"] != tokens["access_token"]
    # OIDC Core §12.2: the refreshed ID token (verified by pyoidc) describes the same authentication.
    new_id_token = refreshed["id_token"]
    for claim in ("iss", "sub", "aud", "auth_time", "acr", "amr", "sid"):
        assert new_id_token[claim] == id_token[claim], claim
    assert userinfo(rp, refreshed["access_token"])["sub"] == id_token["sub"]

    # The old refresh token is refused, and its reuse revokes the whole grant (RFC 9700 §4.14.2).
    reuse = refresh(rp, auth, tokens)
    assert isinstance(reuse, TokenErrorResponse) and reuse["error"] == "invalid_grant", reuse.to_dict()
    after_reuse = refresh(rp, auth, refreshed)
    assert isinstance(after_reuse, TokenErrorResponse) and after_reuse["error"] == "invalid_grant"
    revoked = userinfo(rp, refreshed["access_token"])
    assert isinstance(revoked, ErrorResponse) and revoked["error"] == "invalid_token", revoked.to_dict()


def test_single_sign_on_to_a_second_client_with_a_pairwise_subject(live, browser):
    _, _, alpha_id_token = sign_in(browser, alpha(live))

    rp = beta(live)
    auth = authorization_request(rp)
    location, logins = browse(browser, auth.url, BETA_CALLBACK)
    assert logins == 0
    authorization_response(rp, auth, location)
    tokens = redeem(rp, auth)
    id_token = validated_id_token(rp, auth, tokens)

    assert id_token["aud"] == ["beta"]
    assert id_token["sub"] != alpha_id_token["sub"]  # pairwise: the two services cannot correlate the citizen
    assert id_token["sid"] == alpha_id_token["sid"]  # one session at the broker
    assert id_token["auth_time"] == alpha_id_token["auth_time"]  # no new authentication
    assert id_token["acr"] == "eidas1"
    assert userinfo(rp, tokens["access_token"]).to_dict() == {"sub": id_token["sub"], **EXPECTED_CLAIMS}


def test_rp_initiated_logout_ends_the_session(live, browser):
    rp = alpha(live)
    _, tokens, _ = sign_in(browser, rp)
    cookie = {"Cookie": f"{SESSION_COOKIE}={browser.cookies[SESSION_COOKIE]}"}

    def silent_authorization(headers: dict) -> tuple[Authorization, str]:
        auth = authorization_request(rp, prompt="none")
        response = requests.get(auth.url, headers=headers, allow_redirects=False)
        assert response.status_code == 303 and at(response.headers["Location"], ALPHA_CALLBACK), response.text
        return auth, response.headers["Location"]

    auth, location = silent_authorization(cookie)
    authorization_response(rp, auth, location)  # the cookie gives single sign-on before logout

    state = rndstr(24)
    url, _, _, _ = rp.request_info(EndSessionRequest, method="GET", request_args={
        "id_token_hint": tokens["id_token_jwt"], "post_logout_redirect_uri": ALPHA_LOGGED_OUT, "state": state,
    })
    response = browser.get(url, allow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["Location"]
    assert at(location, ALPHA_LOGGED_OUT)
    assert parse_qs(urlsplit(location).query) == {"state": [state]}

    # The old session cookie no longer signs anyone in, and the browser has dropped it.
    auth, location = silent_authorization(cookie)
    assert authorization_error(rp, auth, location)["error"] == "login_required"
    assert SESSION_COOKIE not in browser.cookies
    # Logout revokes what the session issued.
    ended = userinfo(rp, tokens["access_token"])
    assert isinstance(ended, ErrorResponse) and ended["error"] == "invalid_token"


def test_introspection_and_revocation(live, browser):
    rp = alpha(live)
    auth, tokens, id_token = sign_in(browser, rp)
    issued_at = int(time.time())

    live_token = introspect(rp, tokens["access_token"])
    assert live_token["active"] is True
    assert live_token["scope"] == "openid profile email"
    assert live_token["client_id"] == "alpha"
    assert live_token["sub"] == id_token["sub"]
    assert abs(live_token["exp"] - (issued_at + tokens["expires_in"])) <= 2
    # Another client learns nothing about alpha's token (RFC 7662 §4).
    assert introspect(beta(live), tokens["access_token"]) == {"active": False}

    refresh_token = introspect(rp, tokens["refresh_token"])
    assert refresh_token["active"] is True and refresh_token["client_id"] == "alpha"
    assert refresh_token["sub"] == id_token["sub"]

    revoke(rp, tokens["access_token"])
    assert introspect(rp, tokens["access_token"]) == {"active": False}
    revoked = userinfo(rp, tokens["access_token"])
    assert isinstance(revoked, ErrorResponse) and revoked["error"] == "invalid_token"

    revoke(rp, tokens["refresh_token"])
    assert introspect(rp, tokens["refresh_token"]) == {"active": False}
    refused = refresh(rp, auth, tokens)
    assert isinstance(refused, TokenErrorResponse) and refused["error"] == "invalid_grant"

    revoke(rp, "never-issued")  # RFC 7009 §2.2: an unknown token is not an error
    unauthenticated = requests.post(rp.provider_info["introspection_endpoint"], data={"token": tokens["access_token"]})
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "invalid_client"
