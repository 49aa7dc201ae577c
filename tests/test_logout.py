"""RP-Initiated Logout 1.0 (checklist A-25, D-13, E-09, E-10).

Only a valid ``id_token_hint`` lets the broker redirect, and only to a
``post_logout_redirect_uri`` registered for the hint's client; without one the
citizen confirms with a CSRF-protected POST.
"""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from tests.conftest import Flow, csrf_of, query_of
from tests.test_authorize import assert_error_page, has_sso, plant_cookie, session_cookie

BYE = "https://alpha.example.nc/bye"


def sign_in(client) -> dict:
    """Log in through alpha; return the token response."""
    flow = Flow(client)
    response = flow.token(flow.code())
    assert response.status_code == 200, response.json
    return response.json


def other_browser(app, client):
    c = app.test_client()
    c.environ_base.update(client.environ_base)
    return c


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_hints(real: str) -> dict[str, str]:
    """Tokens carrying the claims of a real ID token, not signed by the broker."""
    header = json.loads(base64.urlsafe_b64decode(real.split(".")[0] + "=="))
    claims = json.loads(base64.urlsafe_b64decode(real.split(".")[1] + "=="))
    stranger = ECKey.generate_key("P-256", private=True)
    return {
        "unknown key, real kid": jwt.encode({"alg": "ES256", "kid": header["kid"]}, claims, stranger),
        "unknown key, own kid": jwt.encode({"alg": "ES256", "kid": "attacker"}, claims, stranger),
        "unknown key, no kid": jwt.encode({"alg": "ES256"}, claims, stranger),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.",
        "alg none, real kid": f"{b64({'alg': 'none', 'kid': header['kid']})}.{b64(claims)}.",
        "HS256 with a guessable key": jwt.encode({"alg": "HS256", "kid": header["kid"]}, claims,
                                                 OctKey.import_key("secret" * 6), algorithms=["HS256"]),
        "tampered claims": ".".join([real.split(".")[0], b64(dict(claims, sub="someone-else")), real.split(".")[2]]),
        "truncated": real[:-10],
        "garbage": "not-a-jwt",
        "empty segments": "..",
    }


# -- with a valid hint ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST"])
def test_valid_hint_and_registered_uri_redirect_with_state_and_end_the_session(client, app, account, method):
    tokens = sign_in(client)
    old_cookie = session_cookie(client)
    params = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE, "state": "xyz 1/2"}
    if method == "GET":
        response = client.get("/logout", query_string=params)
    else:
        response = client.post("/logout", data=params)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.split("?")[0] == BYE
    assert query_of(location) == {"state": "xyz 1/2"}
    assert not has_sso(client)
    replay = other_browser(app, client)
    plant_cookie(replay, old_cookie)
    assert not has_sso(replay)
    # the tokens issued in that session are revoked as well
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert info.status_code == 401


def test_valid_hint_without_state_redirects_to_the_exact_uri(client, account):
    tokens = sign_in(client)
    response = client.get("/logout", query_string={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE})
    assert response.status_code == 303 and response.headers["Location"] == BYE


def test_valid_hint_without_uri_shows_signed_out_page(client, account):
    tokens = sign_in(client)
    response = client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    assert response.status_code == 200 and "Location" not in response.headers
    assert "Vous êtes déconnecté" in response.get_data(as_text=True)
    assert not has_sso(client)


@pytest.mark.parametrize("uri", [
    "https://evil.example/bye",
    "https://alpha.example.nc/bye/",
    "https://alpha.example.nc/bye?next=https://evil.example",
    "https://alpha.example.nc/bye#x",
    "https://ALPHA.example.nc/bye",
    "http://alpha.example.nc/bye",
    "https://alpha.example.nc/callback",  # a redirect_uri, not a post-logout URI
    "https://beta.example.nc/cb",
])
def test_unregistered_post_logout_uri_shows_error_page(client, account, uri):
    tokens = sign_in(client)
    response = client.get("/logout", query_string={"id_token_hint": tokens["id_token"],
                                                   "post_logout_redirect_uri": uri, "state": "s"})
    assert "Demande de déconnexion invalide" in assert_error_page(response)
    assert has_sso(client)  # nothing happened


def test_client_id_must_match_the_hint(client, account):
    tokens = sign_in(client)
    response = client.get("/logout", query_string={"id_token_hint": tokens["id_token"], "client_id": "beta",
                                                   "post_logout_redirect_uri": BYE})
    assert_error_page(response)
    assert has_sso(client)


def test_repeated_parameter_shows_error_page(client, account):
    tokens = sign_in(client)
    response = client.get("/logout", query_string=[("id_token_hint", tokens["id_token"]),
                                                   ("post_logout_redirect_uri", BYE),
                                                   ("post_logout_redirect_uri", "https://evil.example/")])
    assert_error_page(response)
    assert has_sso(client)


def test_hint_from_another_session_asks_for_confirmation(client, app, account):
    tokens = sign_in(client)
    browser = other_browser(app, client)
    sign_in(browser)
    page = browser.get("/logout", query_string={"id_token_hint": tokens["id_token"],
                                                "post_logout_redirect_uri": BYE, "state": "s"})
    assert page.status_code == 200 and "Location" not in page.headers
    assert has_sso(browser)
    response = browser.post("/logout", data={"confirm": "1", "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert response.status_code == 303 and response.headers["Location"] == BYE + "?state=s"
    assert not has_sso(browser)
    assert has_sso(client)


def test_valid_hint_without_session_still_redirects(client, app, account):
    tokens = sign_in(client)
    response = other_browser(app, client).get("/logout", query_string={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE, "state": "s"})
    assert response.status_code == 303 and response.headers["Location"] == BYE + "?state=s"


# -- without a valid hint: no redirect, no sign-out by GET ------------------------------------------

def test_post_logout_uri_without_hint_shows_error_page(client, account):
    sign_in(client)
    response = client.get("/logout", query_string={"post_logout_redirect_uri": BYE, "state": "s"})
    assert "Demande de déconnexion invalide" in assert_error_page(response)
    assert has_sso(client)


def test_get_without_hint_shows_confirmation_and_does_not_sign_out(client, account):
    sign_in(client)
    page = client.get("/logout")
    assert page.status_code == 200 and "Location" not in page.headers
    html = page.get_data(as_text=True)
    assert 'method="post"' in html and 'name="csrf_token"' in html
    assert has_sso(client)


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_confirmation_post_needs_the_csrf_token(client, account, token):
    sign_in(client)
    client.get("/logout")
    data = {"confirm": "1"}
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/logout", data=data)
    assert_error_page(response)
    assert has_sso(client)


def test_confirmation_post_with_csrf_token_signs_out(client, account):
    sign_in(client)
    page = client.get("/logout")
    response = client.post("/logout", data={"confirm": "1", "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert response.status_code == 200 and "Location" not in response.headers
    assert "Vous êtes déconnecté" in response.get_data(as_text=True)
    deleted = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-ncc_session=")]
    assert deleted and "Secure" in deleted[0] and "Path=/" in deleted[0]
    assert not has_sso(client)


# -- forged hints: an error page, never a redirect, never a 500 --------------------------------------

def test_forged_id_token_hints_are_refused(client, account):
    tokens = sign_in(client)
    for name, hint in forged_hints(tokens["id_token"]).items():
        response = client.get("/logout", query_string={"id_token_hint": hint, "post_logout_redirect_uri": BYE,
                                                       "state": "s"})
        assert response.status_code == 400, name
        assert "Location" not in response.headers, name
        assert "Demande de déconnexion invalide" in response.get_data(as_text=True), name
        response = client.get("/logout", query_string={"id_token_hint": hint})
        assert response.status_code == 400, name
    assert has_sso(client)
