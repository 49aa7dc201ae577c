"""Forgotten password: emailed link, single use, short-lived, every session signed out (issue 4).

Checklist D-06, D-07, D-08, D-09, D-15.
"""

from __future__ import annotations

from sqlalchemy import select

from broker import throttle
from broker.account import tokens
from broker.models import AccountToken
from tests.account.conftest import (
    NEW_PASSWORD, has_sso, link_in, login, new_browser, submit, text_of, without_csrf,
)
from tests.conftest import PASSWORD, Flow, csrf_of, query_of
from tests.test_authorize import shift_time

EMAIL = "citoyen@example.nc"


def request_reset(client, address: str = EMAIL):
    return submit(client, "/compte/mot-de-passe-oublie", {"email": address})


def choose(client, link: str, password: str = NEW_PASSWORD):
    page = client.get(link)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post("/compte/nouveau-mot-de-passe", data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                                             "jeton": query_of(link)["jeton"], "password": password})


def test_reset_by_emailed_link(client, account, mailbox):
    login_page = client.get("/login").get_data(as_text=True)
    assert 'href="/compte/mot-de-passe-oublie"' in login_page and "Mot de passe oublié ?" in login_page
    response = request_reset(client, "Citoyen@Example.nc ")
    assert response.status_code == 303
    message = mailbox.last(EMAIL)
    assert message["Subject"] == "Choisissez un nouveau mot de passe NC Connect"
    link = link_in(message)
    assert link.startswith("/compte/nouveau-mot-de-passe?jeton=") and len(query_of(link)["jeton"]) >= 43
    form = client.get(link).get_data(as_text=True)
    assert 'autocomplete="new-password"' in form and 'autocomplete="username"' in form
    weak = choose(client, link, "motdepasse123")
    assert "plus courants" in weak.get_data(as_text=True)  # the policy applies; the link still works
    done = choose(client, link)
    assert done.status_code == 200 and "Mot de passe modifié" in done.get_data(as_text=True)
    assert login(client, EMAIL, PASSWORD).status_code == 200  # the old password no longer works
    assert login(client, EMAIL, NEW_PASSWORD).status_code == 303
    notice = mailbox.last(EMAIL)  # D-09, without any secret
    assert notice["Subject"] == "Votre mot de passe NC Connect a été modifié"
    assert NEW_PASSWORD not in text_of(notice) and "jeton" not in text_of(notice)


def test_known_and_unknown_addresses_get_the_same_answer(app, account, mailbox):
    def attempt(address):
        browser = new_browser(app)
        posted = request_reset(browser, address)
        page = browser.get(posted.headers["Location"])
        body = without_csrf(page.get_data(as_text=True)).replace(address, "ADDRESS")
        headers = lambda r: sorted((k, v) for k, v in r.headers.items() if k not in ("Date", "Content-Length", "Set-Cookie"))
        return posted.status_code, headers(posted), page.status_code, headers(page), body

    assert attempt(EMAIL) == attempt("personne@example.nc")
    assert "/compte/nouveau-mot-de-passe" in text_of(mailbox.last(EMAIL))
    unknown = text_of(mailbox.last("personne@example.nc"))  # the same work: one email each
    assert "Aucun compte NC Connect à mot de passe" in unknown and "jeton" not in unknown


def test_a_used_link_is_refused(client, account, mailbox):
    request_reset(client)
    link = link_in(mailbox.last(EMAIL))
    assert choose(client, link).status_code == 200
    assert client.get(link).status_code == 400
    replay = client.post("/compte/nouveau-mot-de-passe", data={"csrf_token": csrf_of(client.get("/login").get_data(as_text=True)),
                                                              "jeton": query_of(link)["jeton"], "password": "une autre phrase de passe"})
    assert replay.status_code == 400 and "Lien invalide ou expiré" in replay.get_data(as_text=True)
    assert login(client, EMAIL, NEW_PASSWORD).status_code == 303


def test_an_expired_link_is_refused(client, account, mailbox, monkeypatch):
    request_reset(client)
    link = link_in(mailbox.last(EMAIL))
    real = tokens.now()
    monkeypatch.setattr(tokens, "now", lambda: real + tokens.timedelta(minutes=21))
    assert client.get(link).status_code == 400
    posted = client.post("/compte/nouveau-mot-de-passe", data={
        "csrf_token": csrf_of(client.get("/login").get_data(as_text=True)), "jeton": query_of(link)["jeton"],
        "password": NEW_PASSWORD})
    assert posted.status_code == 400
    monkeypatch.undo()
    assert login(client, EMAIL, PASSWORD).status_code == 303


def test_a_newer_link_voids_the_older_and_tokens_are_stored_hashed(client, account, broker, mailbox, monkeypatch):
    request_reset(client)
    first = link_in(mailbox.last(EMAIL))
    mailbox.clear()
    request_reset(client)
    second = link_in(mailbox.last(EMAIL))
    assert client.get(first).status_code == 400
    assert client.get(second).status_code == 200
    with broker.sessions() as s:
        stored = {row.token_hash for row in s.execute(select(AccountToken)).scalars()}
    assert query_of(first)["jeton"] not in stored and query_of(second)["jeton"] not in stored


def test_every_session_is_signed_out_and_refresh_tokens_revoked_after_a_reset(app, account, mailbox):
    phone, laptop, other = new_browser(app), new_browser(app), new_browser(app)
    flow = Flow(phone)
    tokens_ = flow.token(flow.code(scope="openid profile")).json
    assert login(laptop).status_code == 303
    assert has_sso(phone) and has_sso(laptop)
    request_reset(other)
    assert choose(other, link_in(mailbox.last(EMAIL))).status_code == 200
    assert not has_sso(phone) and not has_sso(laptop)
    refreshed = phone.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens_["refresh_token"]},
                           headers=flow.auth_headers())
    assert refreshed.status_code == 400 and refreshed.json["error"] == "invalid_grant"
    userinfo = phone.get("/userinfo", headers={"Authorization": "Bearer " + tokens_["access_token"]})
    assert userinfo.status_code == 401


def test_reset_requests_are_throttled_then_released(client, account, mailbox, monkeypatch):
    statuses = [request_reset(client).status_code for _ in range(4)]
    assert statuses == [303, 303, 303, 429]
    assert len(mailbox.to(EMAIL)) == 3
    unknown = [request_reset(client, "inconnu@example.nc").status_code for _ in range(4)]
    assert unknown == statuses  # the same limits whether the address is known or not
    shift_time(monkeypatch, throttle, 61)
    assert request_reset(client).status_code == 303


def test_reset_requests_are_throttled_per_ip_too(client, account, mailbox):
    statuses = [request_reset(client, f"n{i}@example.nc").status_code for i in range(11)]
    assert statuses == [303] * 10 + [429]
