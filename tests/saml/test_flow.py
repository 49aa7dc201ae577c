"""A citizen logs into a téléservice through a real SAML identity provider, and logs out.

The IdP is pysaml2 (:mod:`tests.saml.idp`) with its own key, serving its metadata by
URL; it learns NC Connect from the SP metadata the broker publishes.  The broker is
served over real HTTP (tests/flows), a ``requests.Session`` plays the browser
(including the auto-submitted forms), and the téléservice back end is plain
``requests`` + joserfc.  What is checked is what the téléservice receives after the
broker's mapping (mappings/saml-example.yaml), the level, and single logout in both
directions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from lxml import etree

from tests.conftest import SECRET
from tests.flows.conftest import serve_broker  # noqa: F401  (fixture)
from tests.flows.test_upstream_login import BYE, CALLBACK, CLIENTS, Browser
from tests.saml import forge
from tests.saml.idp import form_of, query_of, saml_idp  # noqa: F401  (fixture)

PID = "agents"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


def provider_file(idp, keys_dir: Path, extra: str = "") -> str:
    sp = forge.keypair("nc-connect-sp")
    (keys_dir / "sp.crt").write_text(sp.cert_pem)
    (keys_dir / "sp.key").write_text(sp.key_pem)
    return f"""type: saml
name: Annuaire des agents
mapping: saml-example.yaml
idp_metadata_url: {idp.metadata_url}
sp_certificate: {keys_dir / 'sp.crt'}
sp_private_key: {keys_dir / 'sp.key'}
level: eidas2
authn_context_map:
  "{forge.PPT}": eidas1
  "{forge.SMARTCARD}": eidas2
{extra}"""


def start_live(serve_broker, idp, tmp_path, extra: str = ""):  # noqa: F811
    keys_dir = tmp_path / "sp-keys"
    keys_dir.mkdir(exist_ok=True)
    live = serve_broker(CLIENTS, lambda issuer: {PID: provider_file(idp, keys_dir, extra)})
    metadata = requests.get(f"{live.issuer}/saml/{PID}/metadata", timeout=10)
    assert metadata.status_code == 200
    idp.register_sp(metadata.content)  # the administration registers NC Connect with one download
    return live


@pytest.fixture
def live(serve_broker, saml_idp, tmp_path):  # noqa: F811
    return start_live(serve_broker, saml_idp, tmp_path)


class SamlBrowser(Browser):
    def __init__(self, live, idp):
        super().__init__(live, idp)
        self.idp = idp

    def via_idp(self, response: requests.Response) -> requests.Response:
        """At the IdP's door: it answers with an auto-submitted form; post it to the broker's ACS, come back."""
        to_idp = self.follow(response, self.idp.base)
        assert to_idp.status_code == 303 and to_idp.headers["Location"].startswith(self.idp.base), to_idp.text
        page = self.get(to_idp.headers["Location"])
        assert page.status_code == 200, page.text
        action, fields = form_of(page.text)
        assert action == f"{self.live.issuer}/callback/{PID}" and set(fields) == {"SAMLResponse", "RelayState"}
        posted = self.session.post(action, data=fields, allow_redirects=False, timeout=10)
        assert posted.status_code == 303, posted.text
        return self.get(self.live.issuer + posted.headers["Location"])


PIVOT = ("given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry", "email")


def test_citizen_logs_in_through_the_saml_idp_and_the_teleservice_gets_the_mapped_identity(live, saml_idp):  # noqa: F811
    browser = SamlBrowser(live, saml_idp)
    claims, userinfo = browser.tokens(browser.code(browser.via_idp(browser.authorize(idp_hint=PID))))
    assert claims["acr"] == "eidas1" and claims["amr"] == ["pwd"]
    assert {k: userinfo[k] for k in PIVOT} == {
        "given_name": "Jean Pierre", "family_name": "KABAR", "birthdate": "1985-07-14", "gender": "male",
        "birthplace": "98818", "birthcountry": "99100", "email": "jean.kabar@gouv.nc"}
    assert 'Assertion' in saml_idp.last_response and "Signature" in saml_idp.last_response
    # the same agent again: the same account, the same pairwise sub
    again = SamlBrowser(live, saml_idp)
    claims2, _ = again.tokens(again.code(again.via_idp(again.authorize(idp_hint=PID))))
    assert claims2["sub"] == claims["sub"]


def test_a_smart_card_login_reaches_substantial_and_born_abroad_is_mapped(live, saml_idp):  # noqa: F811
    saml_idp.login_as = "marie.wamytan"
    browser = SamlBrowser(live, saml_idp)
    start = browser.follow(browser.authorize(idp_hint=PID, acr_values="eidas2"), saml_idp.base)
    request, _ = forge.authn_request_of(start.headers["Location"])
    assert [e.text for e in request.iter(f"{{{forge.SAML}}}AuthnContextClassRef")] == [forge.SMARTCARD]
    claims, userinfo = browser.tokens(browser.code(browser.via_idp(start)))
    assert claims["acr"] == "eidas2"
    assert userinfo["given_name"] == "Marie-Claire" and userinfo["birthcountry"] == "99514"
    assert userinfo["birthplace"] == ""


def test_encrypted_assertions_from_the_idp_are_accepted(serve_broker, saml_idp, tmp_path):  # noqa: F811
    live = start_live(serve_broker, saml_idp, tmp_path, "want_assertions_encrypted: true\n")
    saml_idp.encrypt = True
    browser = SamlBrowser(live, saml_idp)
    claims, userinfo = browser.tokens(browser.code(browser.via_idp(browser.authorize(idp_hint=PID))))
    assert "EncryptedAssertion" in saml_idp.last_response and userinfo["family_name"] == "KABAR"


def test_http_post_binding_for_the_authn_request(serve_broker, saml_idp, tmp_path):  # noqa: F811
    live = start_live(serve_broker, saml_idp, tmp_path, "request_binding: post\n")
    browser = SamlBrowser(live, saml_idp)
    page = browser.follow(browser.authorize(idp_hint=PID), saml_idp.base)
    assert page.status_code == 200 and "Redirection" in page.text
    assert saml_idp.base in page.headers["Content-Security-Policy"].split("form-action", 1)[1]
    action, fields = form_of(page.text)
    assert action == f"{saml_idp.base}/sso/post"
    request = etree.fromstring(forge.base64.b64decode(fields["SAMLRequest"]))
    assert request.find(f"{{{forge.DS}}}Signature") is not None  # signed, checked by pysaml2 too
    answer = browser.session.post(action, data=fields, timeout=10)
    assert answer.status_code == 200, answer.text
    acs, response_fields = form_of(answer.text)
    posted = browser.session.post(acs, data=response_fields, allow_redirects=False, timeout=10)
    claims, _ = browser.tokens(browser.code(browser.get(live.issuer + posted.headers["Location"])))
    assert claims["acr"] == "eidas1"


def _signed_in_code(live, idp):
    browser = SamlBrowser(live, idp)
    code = browser.code(browser.via_idp(browser.authorize(idp_hint=PID)))
    tokens = requests.post(f"{live.issuer}/token", auth=("alpha", SECRET), timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": browser.verifier,
    }).json()
    return browser, tokens


def test_sp_initiated_single_logout_goes_through_the_idp_and_back_to_the_teleservice(live, saml_idp):  # noqa: F811
    browser, tokens = _signed_in_code(live, saml_idp)
    out = browser.get(f"{live.issuer}/logout?" + requests.compat.urlencode(
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE, "state": "rp-state"}))
    assert out.status_code == 303 and out.headers["Location"].startswith(f"{saml_idp.base}/slo?")
    params = query_of(out.headers["Location"])
    assert params["SigAlg"] == RSA_SHA256 and params["Signature"]
    at_idp = browser.get(out.headers["Location"])  # pysaml2 checks the signature, answers signed
    assert at_idp.status_code == 303, at_idp.text
    assert saml_idp.last_logout_request.name_id.text == "agent-0042"
    assert at_idp.headers["Location"].startswith(f"{live.issuer}/saml/{PID}/slo?")
    unsigned = re.sub(r"&Signature=[^&]+", "", at_idp.headers["Location"])
    assert browser.get(unsigned).status_code == 400  # C-19: the LogoutResponse must be signed
    back = browser.get(at_idp.headers["Location"])
    assert back.status_code == 303 and back.headers["Location"].startswith("/logout/return?state=")
    final = browser.get(live.issuer + back.headers["Location"])
    assert final.status_code == 303 and final.headers["Location"] == f"{BYE}?state=rp-state"
    again = browser.follow(browser.authorize(prompt="none"), CALLBACK)
    assert "error=login_required" in again.headers["Location"]
    refresh = requests.get(f"{live.issuer}/userinfo", timeout=10,
                           headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert refresh.status_code == 401


def test_idp_initiated_logout_ends_the_session_even_without_the_browser_cookie(live, saml_idp, caplog):  # noqa: F811
    browser, tokens = _signed_in_code(live, saml_idp)
    issuer = live.issuer
    url = saml_idp.logout_request(f"{issuer}/saml/{PID}/metadata", f"{issuer}/saml/{PID}/slo", "agent-0042")
    answer = requests.get(url, allow_redirects=False, timeout=10)  # another client: no session cookie at all
    assert answer.status_code == 303 and answer.headers["Location"].startswith(f"{saml_idp.base}/slo?")
    assert {"SAMLResponse", "SigAlg", "Signature", "RelayState"} <= set(query_of(answer.headers["Location"]))
    again = browser.follow(browser.authorize(prompt="none"), CALLBACK)
    assert "error=login_required" in again.headers["Location"]
    assert requests.get(f"{issuer}/userinfo", timeout=10,
                        headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    # the same LogoutRequest a second time is refused
    assert requests.get(url, allow_redirects=False, timeout=10).status_code == 400


@pytest.mark.parametrize("tamper", ["unsigned", "altered", "other_key"])
def test_unverifiable_logout_requests_end_nothing(live, saml_idp, tamper, caplog):  # noqa: F811
    browser, _ = _signed_in_code(live, saml_idp)
    issuer = live.issuer
    sp_entity, slo = f"{issuer}/saml/{PID}/metadata", f"{issuer}/saml/{PID}/slo"
    if tamper == "unsigned":
        url = saml_idp.logout_request(sp_entity, slo, "agent-0042", sign=False)
    elif tamper == "altered":
        url = saml_idp.logout_request(sp_entity, slo, "agent-0042")
        url = re.sub(r"RelayState=[^&]+", "RelayState=changed", url)
    else:
        saml_idp.keys, real = forge.keypair("attacker"), saml_idp.keys
        saml_idp._server = None
        try:
            url = saml_idp.logout_request(sp_entity, slo, "agent-0042")
        finally:
            saml_idp.keys, saml_idp._server = real, None
    page = requests.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 400 and 'lang="fr"' in page.text and "Location" not in page.headers
    assert any(r.name == "nc_connect.audit" and "logout refused" in r.getMessage() for r in caplog.records)
    still = browser.follow(browser.authorize(prompt="none"), CALLBACK)
    assert "code=" in still.headers["Location"]  # the session is still there
