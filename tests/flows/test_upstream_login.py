"""A citizen logs into a téléservice through an upstream OpenID provider (FranceConnect-like).

The upstream is panva's ``oidc-provider`` run by Node (tests/upstream), configured
the way FranceConnect is: pivot claims, eIDAS acr values, ES256.  The broker is
served over real HTTP; a ``requests.Session`` plays the browser, and the
téléservice's back end is plain ``requests`` + joserfc.  What is checked is what
the téléservice receives after the broker's mapping, and the account-linking
rules: same ``sub`` through two linked sources, no takeover on a matching email.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from broker.accounts import create_account, links_of
from tests.conftest import PASSWORD, SECRET
from tests.upstream.fixture import upstream  # noqa: F401  (session-scoped real upstream)

CALLBACK = "http://localhost:8501/cb"
BYE = "http://localhost:8501/bye"
CLIENTS = {"alpha": f"""
name: Service Alpha
redirect_uris: [{CALLBACK}]
post_logout_redirect_uris: [{BYE}]
client_secret: {SECRET}
scopes: [openid, profile, email, birth]
"""}


def provider_file(upstream_client, *, level: str = "eidas2", name: str = "FranceConnect", button: str = "franceconnect") -> str:
    return f"""
type: oidc
name: {name}
button: {button}
mapping: franceconnect.yaml
issuer: {upstream_client.issuer}
client_id: {upstream_client.client_id}
client_secret: {upstream_client.client_secret}
scopes: [openid, given_name, family_name, birthdate, gender, birthplace, birthcountry, email, preferred_username]
level: {level}
"""


class _Registered:
    def __init__(self, issuer, registered):
        self.issuer, self.client_id, self.client_secret = issuer, registered.client_id, registered.client_secret


@pytest.fixture
def live(serve_broker, upstream):  # noqa: F811
    def providers(issuer: str) -> dict[str, str]:
        fc = upstream.register_client([f"{issuer}/callback/fc"], post_logout_redirect_uris=[f"{issuer}/logout/return"])
        low = upstream.register_client([f"{issuer}/callback/low"])
        return {
            "fc": provider_file(_Registered(upstream.issuer, fc)),
            "low": provider_file(_Registered(upstream.issuer, low), level="eidas1", name="Annuaire des agents",
                                 button="default"),
        }

    return serve_broker(CLIENTS, providers)


class Browser:
    """The citizen's browser and the téléservice alpha, talking to the live broker."""

    def __init__(self, live, upstream):  # noqa: F811
        self.live, self.upstream = live, upstream
        self.session = requests.Session()
        self.verifier = secrets.token_urlsafe(48)
        self.state, self.nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)

    def authorize(self, **extra) -> requests.Response:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        params = {"response_type": "code", "client_id": "alpha", "redirect_uri": CALLBACK,
                  "scope": "openid profile email birth", "state": self.state, "nonce": self.nonce,
                  "code_challenge": challenge, "code_challenge_method": "S256", **extra}
        return self.get(f"{self.live.issuer}/authorize?{urlencode(params)}")

    def get(self, url: str, **kwargs) -> requests.Response:
        return self.session.get(url, allow_redirects=False, timeout=10, **kwargs)

    def follow(self, response: requests.Response, stop_at: str) -> requests.Response:
        """Follow broker redirects until one leaves for ``stop_at`` (the upstream or the téléservice)."""
        while response.status_code in (302, 303) and not response.headers["Location"].startswith(stop_at):
            location = response.headers["Location"]
            response = self.get(location if location.startswith("http") else self.live.issuer + location)
        return response

    def via_upstream(self, response: requests.Response, account: str, **kwargs) -> requests.Response:
        """At the upstream's door: log in there and bring the browser back to the broker's callback."""
        to_upstream = self.follow(response, self.upstream.issuer)
        assert to_upstream.status_code == 303, to_upstream.text
        callback = self.upstream.login(self.session, to_upstream.headers["Location"], account, **kwargs)
        return self.get(callback)

    def password_form(self, page: requests.Response, email: str, password: str = PASSWORD) -> requests.Response:
        html = page.text
        fields = {name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1) for name in ("csrf_token", "rid")}
        return self.session.post(f"{self.live.issuer}/login", data={**fields, "email": email, "password": password},
                                 allow_redirects=False, timeout=10)

    def code(self, response: requests.Response) -> str:
        back = self.follow(response, CALLBACK)
        if back.status_code == 200 and "/consentement" in back.url:
            hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', back.text))
            back = self.follow(self.session.post(f"{self.live.issuer}/consentement", allow_redirects=False,
                                                 data={**hidden, "decision": "accept"}, timeout=10), CALLBACK)
        params = {k: v[0] for k, v in parse_qs(urlsplit(back.headers["Location"]).query).items()}
        assert params.get("state") == self.state and params.get("iss") == self.live.issuer, params
        assert "code" in params, params
        return params["code"]

    def tokens(self, code: str) -> tuple[dict, dict]:
        issuer = self.live.issuer
        body = requests.post(f"{issuer}/token", auth=("alpha", SECRET), timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": self.verifier,
        }).json()
        keys = KeySet.import_key_set(requests.get(f"{issuer}/jwks", timeout=10).json())
        claims = jwt.decode(body["id_token"], keys, algorithms=["ES256"]).claims
        assert claims["iss"] == issuer and claims["aud"] == "alpha" and claims["nonce"] == self.nonce
        userinfo = requests.get(f"{issuer}/userinfo", timeout=10,
                                headers={"Authorization": "Bearer " + body["access_token"]}).json()
        assert userinfo["sub"] == claims["sub"]
        return claims, userinfo


def franceconnect_button(live, choice) -> str:
    """Where the DSFR FranceConnect button (a link carrying the pending request's rid) leads."""
    return live.issuer + re.search(r'href="(/login/fc\?rid=[^"]+)"', choice.text).group(1)


def test_citizen_logs_in_through_the_upstream_and_the_teleservice_gets_the_mapped_pivot_identity(live, upstream):  # noqa: F811
    browser = Browser(live, upstream)
    choice = browser.follow(browser.authorize(), live.issuer + "/never")
    assert choice.status_code == 200 and "Choisir comment se connecter" in choice.text
    assert re.search(r'<a class="fr-connect[^"]*" href="/login/fc\?rid=[^"]+" lang="fr">\s*<span class="fr-connect__login">'
                     r'S’identifier avec</span>\s*<span class="fr-connect__brand">FranceConnect</span>', choice.text)
    start = browser.get(franceconnect_button(live, choice))
    claims, userinfo = browser.tokens(browser.code(browser.via_upstream(start, "jean.kabar")))
    assert claims["acr"] == "eidas1" and claims["amr"] == ["pwd"]
    assert {k: userinfo[k] for k in ("given_name", "family_name", "birthdate", "gender", "birthplace",
                                     "birthcountry", "email")} == {
        "given_name": "Jean Pierre Marie", "family_name": "Kabar", "birthdate": "1985-07-14", "gender": "male",
        "birthplace": "98818", "birthcountry": "99100", "email": "jean.kabar@example.nc"}
    # the same person again through the same source: the same account, the same sub
    again = Browser(live, upstream)
    claims2, _ = again.tokens(again.code(again.via_upstream(again.authorize(idp_hint="fc"), "jean.kabar")))
    assert claims2["sub"] == claims["sub"]


def test_born_abroad_has_an_empty_birthplace(live, upstream):  # noqa: F811
    browser = Browser(live, upstream)
    _, userinfo = browser.tokens(browser.code(browser.via_upstream(browser.authorize(idp_hint="fc"), "marie.wamytan")))
    assert userinfo["birthplace"] == "" and userinfo["birthcountry"] == "99134"


def test_substantial_level_comes_from_the_upstream_and_weaker_sources_are_explained(live, upstream):  # noqa: F811
    browser = Browser(live, upstream)
    choice = browser.follow(browser.authorize(acr_values="eidas2"), live.issuer + "/never")
    assert "Annuaire des agents" in choice.text and "ne permet pas d'atteindre le niveau de garantie" in choice.text
    assert 'href="/login/low' not in choice.text
    start = browser.get(franceconnect_button(live, choice))
    claims, _ = browser.tokens(browser.code(browser.via_upstream(start, "marie.wamytan")))
    assert claims["acr"] == "eidas2"


def test_idp_hint_skips_the_page_and_a_too_weak_hint_is_refused(live, upstream):  # noqa: F811
    browser = Browser(live, upstream)
    to_upstream = browser.follow(browser.authorize(idp_hint="fc"), upstream.issuer)
    assert to_upstream.headers["Location"].startswith(upstream.issuer)
    refused = browser.follow(Browser(live, upstream).authorize(idp_hint="low", acr_values="eidas2"), CALLBACK)
    assert "error=unmet_authentication_requirements" in refused.headers["Location"]
    unknown = browser.follow(Browser(live, upstream).authorize(idp_hint="nope"), CALLBACK)
    assert "error=invalid_request" in unknown.headers["Location"]


def test_the_last_choice_is_remembered(live, upstream):  # noqa: F811
    browser = Browser(live, upstream)
    start = browser.get(live.issuer + "/login/low")  # choosing a source sets the remembered choice
    assert start.status_code == 303
    choice = browser.follow(browser.authorize(), live.issuer + "/never")
    first = re.search(r'href="/login/(\w+)', choice.text).group(1)
    assert first == "low" and "Utilisé lors de votre dernière connexion" in choice.text


def test_two_linked_sources_give_the_same_sub_after_the_citizen_proves_control(live, upstream):  # noqa: F811
    sessions = live.broker.sessions
    local = create_account(sessions, "jean.kabar@example.nc", PASSWORD, given_name="Jean Pierre Marie",
                           family_name="Kabar", birthdate="1985-07-14", gender="male", birthplace="98818",
                           birthcountry="99100")
    browser = Browser(live, upstream)
    page = browser.follow(browser.authorize(idp_hint="local"), live.issuer + "/never")
    local_claims, _ = browser.tokens(browser.code(browser.password_form(page, "jean.kabar@example.nc")))

    browser = Browser(live, upstream)
    at_link = browser.follow(browser.via_upstream(browser.authorize(idp_hint="fc"), "jean.kabar"), live.issuer + "/never")
    assert at_link.status_code == 200 and "Relier votre compte" in at_link.text
    assert links_of(sessions, local.id) == []  # nothing linked before the proof
    login_page = browser.get(live.issuer + re.search(r'href="(/login/local[^"]*)"', at_link.text).group(1).replace("&amp;", "&"))
    fc_claims, _ = browser.tokens(browser.code(browser.password_form(login_page, "jean.kabar@example.nc")))
    assert fc_claims["sub"] == local_claims["sub"]
    assert fc_claims["acr"] == "eidas1" and [link.provider_id for link in links_of(sessions, local.id)] == ["fc"]

    # from now on the upstream alone signs the same account in
    browser = Browser(live, upstream)
    claims, _ = browser.tokens(browser.code(browser.via_upstream(browser.authorize(idp_hint="fc"), "jean.kabar")))
    assert claims["sub"] == local_claims["sub"]


def test_a_matching_email_never_takes_over_an_account(live, upstream):  # noqa: F811
    sessions = live.broker.sessions
    victim = create_account(sessions, "marie.wamytan@example.nc", PASSWORD, given_name="Someone", family_name="Else")
    browser = Browser(live, upstream)
    page = browser.follow(browser.authorize(idp_hint="local"), live.issuer + "/never")
    victim_claims, _ = browser.tokens(browser.code(browser.password_form(page, "marie.wamytan@example.nc")))

    browser = Browser(live, upstream)
    at_link = browser.follow(browser.via_upstream(browser.authorize(idp_hint="fc"), "marie.wamytan"), live.issuer + "/never")
    assert "Relier votre compte" in at_link.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', at_link.text).group(1)
    separate = browser.session.post(f"{live.issuer}/lier", data={"csrf_token": csrf, "action": "new"},
                                    allow_redirects=False, timeout=10)
    claims, userinfo = browser.tokens(browser.code(separate))
    assert claims["sub"] != victim_claims["sub"]
    assert userinfo["family_name"] == "Wamytan"
    assert links_of(sessions, victim.id) == []


@pytest.mark.parametrize("tamper", ["deny", "unknown_state", "replayed_callback"])
def test_upstream_errors_and_foreign_callbacks_end_on_a_clear_page(live, upstream, tamper):  # noqa: F811
    browser = Browser(live, upstream)
    to_upstream = browser.follow(browser.authorize(idp_hint="fc"), upstream.issuer)
    if tamper == "deny":
        callback = upstream.deny(browser.session, to_upstream.headers["Location"])
        page = browser.get(callback)
    elif tamper == "unknown_state":
        callback = upstream.login(browser.session, to_upstream.headers["Location"], "jean.kabar")
        page = browser.get(re.sub(r"state=[^&]+", "state=forged", callback))
    else:
        callback = upstream.login(browser.session, to_upstream.headers["Location"], "jean.kabar")
        assert browser.get(callback).status_code == 303
        page = browser.get(callback)
    assert page.status_code == 400 and "Location" not in page.headers
    assert 'lang="fr"' in page.text and ("Connexion impossible" in page.text or "Réponse inattendue" in page.text)
    assert "Traceback" not in page.text


def test_logout_is_chained_to_the_upstream_and_back_to_the_teleservice(live, upstream):  # noqa: F811
    browser = Browser(live, upstream)
    code = browser.code(browser.via_upstream(browser.authorize(idp_hint="fc"), "jean.kabar"))
    issuer = live.issuer
    id_token = requests.post(f"{issuer}/token", auth=("alpha", SECRET), timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": browser.verifier,
    }).json()["id_token"]
    out = browser.get(f"{issuer}/logout?" + urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": BYE,
                                                        "state": "rp-state"}))
    assert out.status_code == 303 and out.headers["Location"].startswith(upstream.issuer)
    back = upstream.logout(browser.session, out.headers["Location"])
    assert back.startswith(f"{issuer}/logout/return")
    final = browser.get(back)
    assert final.status_code == 303 and final.headers["Location"] == f"{BYE}?state=rp-state"
    # the broker session is gone from this very browser
    again = browser.follow(browser.authorize(prompt="none"), CALLBACK)
    assert "error=login_required" in again.headers["Location"]
