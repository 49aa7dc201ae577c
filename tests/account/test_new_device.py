"""The notice of a login from a new browser (checklist D-09, ASVS 6.3.7): the ``__Host-ncc_device``
cookie, the ``known_devices`` table, and the email, through the real SMTP server of the tests."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from broker.models import Account, AccountEvent, KnownDevice, utcnow
from tests.account.conftest import (
    NEW_PASSWORD, _free_port, html_of, link_in, login, new_browser, signup_form, smtp_block, submit, text_of,
)
from tests.conftest import PASSWORD, PG_URL, REDIS_URL, Flow, csrf_of, query_of, write_config

EMAIL = "citoyen@example.nc"
DEVICE = "__Host-ncc_device"
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.5 Mobile/15E148 Safari/604.1")


def browser_with(app, user_agent: str | None = None, lang: str | None = None):
    client = new_browser(app)
    if user_agent:
        client.environ_base["HTTP_USER_AGENT"] = user_agent
    if lang:
        client.set_cookie("ncc_lang", lang)
    return client


def notices(mailbox, address: str = EMAIL) -> list:
    return [m for m in mailbox.to(address) if m["Subject"] in ("Nouvelle connexion à votre compte NC Connect",
                                                               "New sign-in to your NC Connect account")]


def body(message) -> str:
    return text_of(message).replace("\r\n", "\n")


def device_cookie(client) -> str | None:
    cookie = client.get_cookie(DEVICE)
    return cookie.value if cookie else None


def rows(broker, account_id: str) -> list[KnownDevice]:
    with broker.sessions() as s:
        return list(s.execute(select(KnownDevice).where(KnownDevice.account_id == account_id)).scalars())


def test_first_login_sends_nothing_a_new_browser_one_notice_the_same_browser_none(app, broker, account, mailbox):
    home = browser_with(app)
    assert login(home).status_code == 303
    assert notices(mailbox) == []  # the first browser the account ever logs in from
    assert login(home).status_code == 303
    assert notices(mailbox) == []

    laptop = browser_with(app, FIREFOX_WINDOWS)
    assert login(laptop).status_code == 303
    [notice] = notices(mailbox)
    assert notice["Content-Language"] == "fr" and notice["To"] == EMAIL
    text = body(notice)
    assert text.startswith("Bonjour,\n\nQuelqu'un vient de se connecter à votre compte NC Connect depuis un appareil")
    assert "Appareil : Firefox sur Windows" in text
    assert re.search(r"Date : \d\d/\d\d/20\d\d à \d\d:\d\d \(heure de Nouméa\)", text)
    assert "Service :" not in text  # no téléservice asked: the login came from the broker's own pages
    assert "https://nc-connect.test/compte/mot-de-passe-oublie" in text
    assert "https://nc-connect.test/compte/double-authentification" in text  # no second factor yet: advised
    # no secret: neither the password, nor the cookies, nor the raw User-Agent
    secrets_ = [PASSWORD, device_cookie(laptop), device_cookie(home), laptop.get_cookie("__Host-ncc_session").value,
                FIREFOX_WINDOWS, "rv:128.0"]
    for secret in secrets_:
        assert secret not in text and secret not in html_of(notice)

    assert login(laptop).status_code == 303  # the same browser again: known now
    assert login(home).status_code == 303
    assert len(notices(mailbox)) == 1
    assert len(rows(broker, account.id)) == 2


def test_the_notice_names_the_teleservice_and_follows_the_language(app, account, mailbox):
    assert login(browser_with(app)).status_code == 303
    phone = browser_with(app, SAFARI_IPHONE, lang="en")
    Flow(phone).code()  # Service Alpha's button, then the login page
    [notice] = notices(mailbox)
    assert notice["Subject"] == "New sign-in to your NC Connect account" and notice["Content-Language"] == "en"
    text = body(notice)
    assert text.startswith("Hello,\n\nSomeone has just signed in to your NC Connect account")
    assert "Device: Safari on iPhone" in text and "Online service: Service Alpha" in text
    assert re.search(r"When: \d\d/\d\d/20\d\d at \d\d:\d\d \(Nouméa time\)", text)
    assert "If this was not you, choose a new password right away here: " \
           "https://nc-connect.test/compte/mot-de-passe-oublie" in text
    assert "Bonjour" not in text and "Appareil" not in text


def test_an_unrecognised_browser_is_named_so(app, account, mailbox):
    assert login(browser_with(app)).status_code == 303
    assert login(browser_with(app, "curl/8.5.0")).status_code == 303
    assert "Appareil : un navigateur inconnu" in body(notices(mailbox)[0])


def test_a_signup_then_its_first_login_sends_no_notice(app, broker, mailbox):
    email = "marie.wamytan@example.nc"
    phone = browser_with(app)
    assert submit(phone, "/compte/inscription", signup_form(email)).status_code == 303
    link = link_in(mailbox.last(email))
    confirm = phone.get(link).get_data(as_text=True)
    created = phone.post("/compte/confirmer", data={"csrf_token": csrf_of(confirm), "jeton": query_of(link)["jeton"]})
    assert created.status_code == 200
    computer = browser_with(app, FIREFOX_WINDOWS)  # the link opened on the phone, the first login on the computer
    assert login(computer, email, NEW_PASSWORD).status_code == 303
    assert notices(mailbox, email) == []
    assert login(browser_with(app), email, NEW_PASSWORD).status_code == 303
    assert len(notices(mailbox, email)) == 1


def test_an_account_with_earlier_logins_but_no_known_browser_is_notified(app, broker, account, mailbox):
    # an account older than the notice: logins in its history, no browser remembered yet
    with broker.sessions.begin() as s:
        s.add(AccountEvent(account_id=account.id, kind="login", at=utcnow() - timedelta(days=30), provider_id="local"))
    assert rows(broker, account.id) == []
    assert login(browser_with(app, FIREFOX_WINDOWS)).status_code == 303
    [notice] = notices(mailbox)  # a stolen password is not taken for the account's first login
    assert "Appareil : Firefox sur Windows" in body(notice)


def test_an_account_whose_known_browsers_were_dropped_is_notified(app, broker, account, mailbox):
    assert login(browser_with(app)).status_code == 303
    assert notices(mailbox) == []
    with broker.sessions.begin() as s:
        s.query(KnownDevice).filter_by(account_id=account.id).delete()
    assert login(browser_with(app, FIREFOX_WINDOWS)).status_code == 303
    assert len(notices(mailbox)) == 1


def test_an_account_older_than_its_history_is_notified(app, broker, account, mailbox):
    # no login within the year the history keeps, but created before it: earlier logins may have been dropped
    with broker.sessions.begin() as s:
        s.get(Account, account.id).created_at = utcnow() - timedelta(days=400)
    assert login(browser_with(app)).status_code == 303
    assert len(notices(mailbox)) == 1


def test_two_concurrent_first_logins_are_both_notified(app, broker, account, mailbox):
    from broker.account import devices
    from broker.account.common import record

    # both logins recorded in the history before either remembers its browser
    record(broker, account.id, "login", provider_id="local")
    record(broker, account.id, "login", provider_id="local")
    results = []
    for user_agent in (FIREFOX_WINDOWS, SAFARI_IPHONE):
        with app.test_request_context("/login", headers={"User-Agent": user_agent}):
            results.append(devices.password_login(broker, account.id))
    # the first to remember its browser saw no known one, but the other's login in the history
    assert results == [True, True]
    assert len(notices(mailbox)) == 2 and len(rows(broker, account.id)) == 2


def test_the_account_page_names_browsers_as_the_notice_does(app, account):
    other = browser_with(app, "curl/8.5.0")
    assert login(other).status_code == 303
    laptop = browser_with(app, FIREFOX_WINDOWS)
    assert login(laptop).status_code == 303
    page = laptop.get("/compte").get_data(as_text=True)
    assert "Firefox sur Windows" in page and "Un navigateur inconnu" in page


def test_the_device_cookie(app, broker, account):
    response = login(browser_with(app))
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(DEVICE + "="))
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 random bits, url-safe base64
    attributes = {a.strip().split("=")[0].lower(): (a.strip().split("=", 1) + [""])[1] for a in cookie.split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite", "max-age"} <= attributes.keys()
    assert "domain" not in attributes  # __Host-: no Domain, Path=/, Secure
    assert attributes["path"] == "/" and attributes["samesite"] == "Lax"
    assert int(attributes["max-age"]) >= 360 * 86400


def test_the_database_keeps_no_clear_identifier_and_not_the_user_agent(app, broker, account):
    laptop = browser_with(app, FIREFOX_WINDOWS)
    assert login(laptop).status_code == 303
    value = device_cookie(laptop)
    [row] = rows(broker, account.id)
    stored = " ".join(str(v) for v in (row.device_hash, row.browser, row.system))
    assert value not in stored and hashlib.sha256(value.encode()).hexdigest() not in stored
    assert (row.browser, row.system) == ("Firefox", "Windows") and "Mozilla" not in stored
    assert len(row.device_hash) == 64 and row.first_seen == row.last_seen


def test_a_forged_cookie_is_replaced_and_at_most_twenty_browsers_are_kept(app, broker, account, mailbox):
    assert login(browser_with(app)).status_code == 303
    with broker.sessions.begin() as s:  # 25 browsers seen over the last weeks
        for i in range(25):
            s.add(KnownDevice(device_hash=f"{i:064x}", account_id=account.id, first_seen=utcnow() - timedelta(days=40),
                              last_seen=utcnow() - timedelta(days=30 - i)))
    intruder = browser_with(app)
    intruder.set_cookie(DEVICE, "x" * 43, secure=True, path="/")  # guessed: it does not make the browser known
    assert login(intruder).status_code == 303
    assert len(notices(mailbox)) == 1
    malformed = browser_with(app)
    malformed.set_cookie(DEVICE, "<not an identifier>", secure=True, path="/")
    assert login(malformed).status_code == 303
    assert len(notices(mailbox)) == 2 and len(device_cookie(malformed)) == 43  # replaced by a random one
    kept = {r.device_hash for r in rows(broker, account.id)}
    assert len(kept) == 20
    assert f"{7:064x}" not in kept and f"{8:064x}" in kept  # the least recently seen went first


def test_a_dormant_account_is_still_notified_and_stale_browsers_are_dropped(app, broker, account, mailbox):
    with broker.sessions.begin() as s:
        s.add(KnownDevice(device_hash="a" * 64, account_id=account.id, first_seen=utcnow() - timedelta(days=800),
                          last_seen=utcnow() - timedelta(days=400)))
    assert login(browser_with(app)).status_code == 303
    assert len(notices(mailbox)) == 1
    assert "a" * 64 not in {r.device_hash for r in rows(broker, account.id)}


def test_after_the_second_factor_only(app, broker, account, mailbox, monkeypatch):
    from tests.account.test_mfa import enrol, next_code, password_then

    home = browser_with(app)
    assert login(home).status_code == 303
    secret, _, _ = enrol(home)
    mailbox.clear()
    laptop = browser_with(app, FIREFOX_WINDOWS)
    html = password_then(laptop)
    assert notices(mailbox) == []  # the password alone does not finish the login
    response = laptop.post("/login/code", data={"csrf_token": csrf_of(html), "code": next_code(secret, monkeypatch)})
    assert response.status_code == 303
    [notice] = notices(mailbox)
    assert "double-authentification" not in body(notice)  # already on: not advised again


def test_the_data_export_lists_known_browsers_and_deletion_removes_them(app, broker, account, mailbox):
    client = browser_with(app, FIREFOX_WINDOWS)
    assert login(client).status_code == 303
    page = client.get("/compte").get_data(as_text=True)
    data = json.loads(client.post("/compte/donnees", data={"csrf_token": csrf_of(page)}).get_data(as_text=True))
    [known] = data["known_browsers"]
    assert (known["browser"], known["system"]) == ("Firefox", "Windows") and known["first_seen"] and known["last_seen"]
    assert device_cookie(client) not in json.dumps(data)
    page = client.get("/compte/supprimer").get_data(as_text=True)
    done = client.post("/compte/supprimer", data={"csrf_token": csrf_of(page), "confirm": "oui"})
    assert done.status_code == 200
    assert rows(broker, account.id) == []


@pytest.fixture
def mail_down_app(tmp_path, backend):
    from broker.app import create_app

    storage = {"database_url": PG_URL, "redis_url": REDIS_URL} if backend == "server" else \
        {"database_url": "sqlite:///broker.db"}
    app = create_app(write_config(tmp_path / "config", extra=smtp_block(_free_port()), **storage), migrate=True)
    app.config["TESTING"] = True
    yield app
    app.extensions["nc_connect"].engine.dispose()


def test_a_mail_server_down_does_not_block_the_login(mail_down_app, caplog):
    from broker.accounts import create_account

    broker = mail_down_app.extensions["nc_connect"]
    account = create_account(broker.sessions, EMAIL, PASSWORD, given_name="Jean", family_name="Kabar")
    assert login(browser_with(mail_down_app)).status_code == 303
    laptop = browser_with(mail_down_app, FIREFOX_WINDOWS)
    with caplog.at_level(logging.WARNING):
        response = login(laptop)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert laptop.get("/compte").status_code == 200  # signed in
    assert any("new-device notice not sent" in r.getMessage() for r in caplog.records)
    assert len(rows(broker, account.id)) == 2  # remembered all the same: no notice storm at every later login
