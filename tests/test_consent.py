"""Consent: the citizen sees exactly which data goes to which téléservice, decides, and can take it back."""

from __future__ import annotations

import html
import logging
import re

import pytest

from tests.conftest import SECRET, Flow, query_of, storage_for, write_config

CLIENTS = {
    "alpha": f"""
        name: Service Alpha
        redirect_uris: [https://alpha.example.nc/callback]
        client_secret: {SECRET}
        scopes: [openid, profile, email, birth]
    """,
    "sister": f"""
        name: Service de la même administration
        redirect_uris: [https://sister.example.nc/cb]
        client_secret: {SECRET}
        consent: implied
    """,
}


@pytest.fixture
def config_dir(tmp_path, backend):
    return write_config(tmp_path / "config", clients=CLIENTS, **storage_for(backend))


def to_consent_page(client, flow: Flow, **params):
    response = flow.authorize(**params)
    if "/login" in response.headers["Location"]:
        response = client.get(flow.login(response).headers["Location"])
    assert "/consentement" in response.headers["Location"], response.headers["Location"]
    return response


def test_first_login_lists_exactly_the_data_and_consent_is_remembered(client, account):
    flow = Flow(client)
    response = to_consent_page(client, flow, scope="openid profile birth")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Service Alpha" in page
    listed = [html.unescape(x) for x in re.findall(r"<li>([^<]+)</li>", page)]
    assert listed == ["Vos prénoms", "Votre nom de naissance", "Votre date de naissance", "Votre sexe",
                      "Votre nom d'usage", "Votre lieu de naissance", "Votre pays de naissance"]
    assert "adresse électronique" not in page
    location = flow.consent(response).headers["Location"]
    assert "code" in query_of(location)
    # next time: no consent page for the same data...
    assert "code" in query_of(Flow(client).authorize(scope="openid profile birth").headers["Location"])
    # ...but asked again for more
    assert "/consentement" in Flow(client).authorize(scope="openid profile email").headers["Location"]


def test_refusal_returns_access_denied_to_the_teleservice(client, account):
    flow = Flow(client)
    response = flow.consent(to_consent_page(client, flow), decision="refuse")
    params = query_of(response.headers["Location"])
    assert params["error"] == "access_denied" and params["state"] == flow.state and "code" not in params


def test_prompt_none_without_consent_is_consent_required(client, account):
    flow = Flow(client)
    flow.consent(to_consent_page(client, flow, scope="openid profile"))
    params = query_of(Flow(client).authorize(scope="openid email", prompt="none").headers["Location"])
    assert params["error"] == "consent_required"


def test_prompt_consent_asks_again(client, account):
    flow = Flow(client)
    flow.consent(to_consent_page(client, flow))
    assert "/consentement" in Flow(client).authorize(prompt="consent").headers["Location"]


def test_consents_are_listed_and_revocable(client, account):
    flow = Flow(client)
    flow.consent(to_consent_page(client, flow))
    page = client.get("/compte/autorisations").get_data(as_text=True)
    assert "Service Alpha" in page and "Votre adresse électronique" in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/compte/autorisations", data={"client_id": "alpha"}).status_code == 400  # CSRF
    assert client.post("/compte/autorisations", data={"csrf_token": csrf, "client_id": "alpha"}).status_code == 303
    assert "Service Alpha" not in client.get("/compte/autorisations").get_data(as_text=True)
    assert "/consentement" in Flow(client).authorize().headers["Location"]


def test_implied_consent_skips_the_page_and_is_audited(client, account, caplog):
    flow = Flow(client, "sister", "https://sister.example.nc/cb")
    with caplog.at_level(logging.INFO, logger="nc_connect.audit"):
        response = flow.authorize()
        response = client.get(flow.login(response).headers["Location"])
    assert "code" in query_of(response.headers["Location"])
    assert any("consent implied client=sister" in r.getMessage() for r in caplog.records)


def test_consent_needs_a_signed_in_citizen_and_csrf(client, account):
    flow = Flow(client)
    response = to_consent_page(client, flow)
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    rid = re.search(r'name="rid" value="([^"]*)"', html).group(1)
    assert client.post("/consentement", data={"rid": rid, "decision": "accept"}).status_code == 400
