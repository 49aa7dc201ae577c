"""The citizen's space /compte: identity, sources, history, sessions, password, email, data,
deletion (issue 4; checklist D-04, D-09, D-13, D-15, D-16, E-03, E-06, E-09)."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
from sqlalchemy import select

from broker.models import Account, AccountEvent, Grant, LocalCredential
from tests.account.conftest import NEW_PASSWORD, has_sso, link_in, login, new_browser, text, text_of, without_csrf
from tests.conftest import PASSWORD, Flow, csrf_of, query_of
from tests.test_authorize import edit_session

EMAIL = "citoyen@example.nc"


def logged_in(app, **flow):
    browser = new_browser(app)
    assert login(browser).status_code == 303
    return browser


def test_the_space_needs_a_login_and_comes_back_after_it(client, account):
    response = client.get("/compte")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    page = client.get("/login").get_data(as_text=True)
    back = client.post("/login", data={"csrf_token": csrf_of(page), "rid": "", "email": EMAIL, "password": PASSWORD})
    assert back.headers["Location"] == "/compte"
    assert client.get("/compte").status_code == 200


def test_the_space_shows_identity_sources_history_and_sessions(app, client, account, broker):
    flow = Flow(client)
    flow.token(flow.code())  # a visit to Service Alpha
    laptop = logged_in(app)
    page = client.get("/compte")
    assert page.status_code == 200
    body = text(page)
    for shown in ("Jean Pierre", "Kabar", "14 juillet 1985", "Masculin", "Nouméa (France)", "non vérifiée",
                  "Compte NC Connect", "Service Alpha", "Accès à un service", "(cette session)",
                  "Télécharger mes données", "Supprimer mon compte", "Me déconnecter partout"):
        assert shown in body, shown
    assert len(re.findall(r'name="sid" value="', body)) == 2  # this browser and the laptop
    # security headers of an account page (E-02, E-03, E-06)
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert has_sso(laptop)


def test_the_space_in_english_with_dates_day_first(client, account):
    flow = Flow(client)
    flow.token(flow.code())
    client.set_cookie("ncc_lang", "en")
    page = client.get("/compte")
    body = text(page)
    assert '<html lang="en"' in page.get_data(as_text=True)
    for shown in ("My account", "Date of birth", "14 July 1985", "Male", "Access to an online service", "Delete my account"):
        assert shown in body, shown
    assert re.search(r"\d\d/\d\d/20\d\d at \d\d:\d\d", body)  # the history, in Nouméa time
    assert "Masculin" not in body and "juillet" not in body


def test_sign_out_one_session_then_everywhere(app, client, account, broker):
    flow = Flow(client)
    refresh = flow.token(flow.code()).json["refresh_token"]
    laptop, tablet = logged_in(app), logged_in(app)
    body = client.get("/compte").get_data(as_text=True)
    sids = re.findall(r'name="sid" value="([^"]+)"', body)
    current = re.search(r'\(cette session\).*?name="sid" value="([^"]+)"', body, re.S).group(1)
    others = [s for s in sids if s != current]
    client.post("/compte/sessions", data={"csrf_token": csrf_of(body), "sid": others[0]})
    assert [has_sso(laptop), has_sso(tablet)].count(False) == 1 and has_sso(client)
    everywhere = client.post("/compte/sessions", data={"csrf_token": csrf_of(body), "action": "all"})
    assert "Vous êtes déconnecté" in text(everywhere)
    assert not has_sso(client) and not has_sso(laptop) and not has_sso(tablet)
    again = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh},
                        headers=flow.auth_headers())
    assert again.json["error"] == "invalid_grant"


def test_change_password_needs_the_current_one_and_ends_other_sessions(app, client, account, mailbox):
    login(client)
    laptop = logged_in(app)
    form = client.get("/compte/mot-de-passe").get_data(as_text=True)
    assert 'autocomplete="current-password"' in form and 'autocomplete="new-password"' in form
    assert "data-show-password" in form and "<meter" in form
    wrong = client.post("/compte/mot-de-passe", data={"csrf_token": csrf_of(form), "current_password": "pas le bon",
                                                      "password": NEW_PASSWORD})
    assert "Le mot de passe actuel est incorrect." in text(wrong)
    weak = client.post("/compte/mot-de-passe", data={"csrf_token": csrf_of(form), "current_password": PASSWORD,
                                                     "password": "kabar kabar kabar"})
    assert "trop prévisible" in text(weak)
    done = client.post("/compte/mot-de-passe", data={"csrf_token": csrf_of(form), "current_password": PASSWORD,
                                                     "password": NEW_PASSWORD})
    assert "Mot de passe modifié" in text(done)
    assert has_sso(client) and not has_sso(laptop)
    notice = mailbox.last(EMAIL)
    assert "modifié" in notice["Subject"] and NEW_PASSWORD not in text_of(notice)
    assert login(new_browser(app), EMAIL, NEW_PASSWORD).status_code == 303  # (then a new-browser notice)


def test_change_email_with_a_fresh_authentication_and_a_confirmed_link(client, account, broker, mailbox):
    login(client)
    edit_session(broker, client, auth_time=int(time.time()) - 3600)
    stale = client.get("/compte/adresse")  # D-16
    assert stale.status_code == 303 and stale.headers["Location"] == "/compte/confirmer-identite?suite=adresse"
    form = client.get(stale.headers["Location"]).get_data(as_text=True)
    bad = client.post("/compte/confirmer-identite", data={"csrf_token": csrf_of(form), "suite": "adresse",
                                                          "password": "pas le bon"})
    assert "Mot de passe incorrect." in text(bad)
    good = client.post("/compte/confirmer-identite", data={"csrf_token": csrf_of(form), "suite": "adresse",
                                                           "password": PASSWORD})
    assert good.headers["Location"] == "/compte/adresse"
    page = client.get("/compte/adresse").get_data(as_text=True)
    assert 'autocomplete="email"' in page
    sent = client.post("/compte/adresse", data={"csrf_token": csrf_of(page), "email": "Jean.Kabar@Example.nc"})
    assert "Vérifiez votre messagerie" in text(sent)
    link = link_in(mailbox.last("jean.kabar@example.nc"))
    with broker.sessions() as s:
        assert s.get(Account, account.id).email == EMAIL  # nothing changes before the link is used
    confirm = client.get(link).get_data(as_text=True)
    assert "jean.kabar@example.nc" in confirm
    done = client.post("/compte/confirmer", data={"csrf_token": csrf_of(confirm), "jeton": query_of(link)["jeton"]})
    assert "Adresse modifiée" in text(done)
    notice = mailbox.last(EMAIL)  # the old address is told (D-09)
    assert "modifiée" in notice["Subject"] and "jean.kabar@example.nc" in text_of(notice)
    other = new_browser(client.application)
    assert login(other, EMAIL, PASSWORD).status_code == 200
    assert login(other, "jean.kabar@example.nc", PASSWORD).status_code == 303


def test_an_address_already_used_is_not_revealed(client, account, broker, mailbox):
    from broker.accounts import create_account

    create_account(broker.sessions, "autre@example.nc", "une autre phrase de passe solide", given_name="Autre")
    login(client)
    page = client.get("/compte/adresse").get_data(as_text=True)
    taken = client.post("/compte/adresse", data={"csrf_token": csrf_of(page), "email": "autre@example.nc"})
    free = client.post("/compte/adresse", data={"csrf_token": csrf_of(page), "email": "libre@example.nc"})
    assert without_csrf(text(taken)).replace("autre@", "X@") == without_csrf(text(free)).replace("libre@", "X@")
    assert "/compte/confirmer" not in text_of(mailbox.last("autre@example.nc"))


def test_download_my_data(client, account, broker):
    flow = Flow(client)
    flow.token(flow.code())
    page = client.get("/compte").get_data(as_text=True)
    response = client.post("/compte/donnees", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.get_data(as_text=True))
    assert data["account"]["email"] == EMAIL
    assert data["account"]["identity"]["family_name"] == "Kabar"
    assert data["account"]["identity_verified_at_level"] is None
    assert data["authorizations"][0]["service"] == "alpha"
    assert {e["event"] for e in data["history"]} >= {"login", "authorized"}
    raw = response.get_data(as_text=True)
    with broker.sessions() as s:
        secret_hash = s.get(LocalCredential, account.id).password_hash
    assert secret_hash not in raw and "argon2" not in raw


def test_delete_my_account_at_once_and_audited(app, client, account, broker, mailbox, caplog):
    flow = Flow(client)
    tokens_ = flow.token(flow.code()).json
    laptop = logged_in(app)
    edit_session(broker, client, auth_time=int(time.time()) - 3600)
    assert client.get("/compte/supprimer").headers["Location"] == "/compte/confirmer-identite?suite=supprimer"  # D-16
    form = client.get("/compte/confirmer-identite?suite=supprimer").get_data(as_text=True)
    confirmed = client.post("/compte/confirmer-identite", data={"csrf_token": csrf_of(form), "suite": "supprimer",
                                                                "password": PASSWORD})
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == "/compte/supprimer"
    page = client.get("/compte/supprimer").get_data(as_text=True)
    unconfirmed = client.post("/compte/supprimer", data={"csrf_token": csrf_of(page)})
    assert "Cochez la case" in text(unconfirmed)
    with caplog.at_level(logging.INFO, logger="nc_connect.audit"):
        done = client.post("/compte/supprimer", data={"csrf_token": csrf_of(page), "confirm": "oui"})
    assert "Compte supprimé" in text(done)
    assert any("account_deleted" in r.getMessage() and account.id in r.getMessage() for r in caplog.records)
    with broker.sessions() as s:
        assert s.get(Account, account.id) is None and s.get(LocalCredential, account.id) is None
        assert s.execute(select(Grant).where(Grant.account_id == account.id)).first() is None
        events = [e.kind for e in s.execute(select(AccountEvent).where(AccountEvent.account_id == account.id)).scalars()]
    assert events == ["account_deleted"]  # the history is gone, the record of the deletion stays
    assert not has_sso(client) and not has_sso(laptop)
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens_["access_token"]}).status_code == 401
    assert login(new_browser(app)).status_code == 200
    assert "supprimé" in mailbox.last(EMAIL)["Subject"]


@pytest.mark.parametrize("path,data", [
    ("/compte/sessions", {"action": "all"}),
    ("/compte/mot-de-passe", {"current_password": PASSWORD, "password": NEW_PASSWORD}),
    ("/compte/adresse", {"email": "x@example.nc"}),
    ("/compte/double-authentification", {"action": "enable", "code": "123456"}),
    ("/compte/supprimer", {"confirm": "oui"}),
    ("/compte/donnees", {}),
])
def test_account_forms_refuse_a_missing_csrf_token(client, account, broker, mailbox, path, data):
    login(client)
    response = client.post(path, data=data)
    assert response.status_code == 400
    assert has_sso(client) and not mailbox.to("x@example.nc")
    with broker.sessions() as s:
        assert s.get(Account, account.id) is not None
