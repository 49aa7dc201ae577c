"""Sign-up with email verification, through HTTP and a real SMTP server (issue 4).

Checklist D-01..D-04, D-06, D-07, D-17, E-09 where sign-up touches them.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from broker import throttle
from broker.models import Account, AccountToken, LocalCredential
from tests.account.conftest import (
    NEW_PASSWORD, SENDER, html_of, link_in, login, session_cookie, signup_form, text_of,
    without_csrf,
)
from tests.conftest import ISSUER, Flow, csrf_of, query_of
from tests.test_authorize import id_token_claims, shift_time


def start_signup(client, flow: Flow) -> tuple[str, str]:
    """From a téléservice's button to the sign-up form, through the login page's link."""
    login_page = client.get(flow.authorize().headers["Location"])
    link = re.search(r'href="(/compte/inscription\?rid=[^"]+)"', login_page.get_data(as_text=True))
    assert link, "the login page links to the sign-up page"
    page = client.get(link.group(1).replace("&amp;", "&"))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    return html, re.search(r'name="rid" value="([^"]*)"', html).group(1)


def post_signup(client, html: str, rid: str = "", **form):
    return client.post("/compte/inscription", data={"csrf_token": csrf_of(html), "rid": rid, **form})


def test_signup_email_link_login_and_teleservice(client, broker, mailbox):
    flow = Flow(client)
    html, rid = start_signup(client, flow)
    assert rid
    response = post_signup(client, html, rid, **signup_form("Marie.Wamytan@Example.nc"))
    assert response.status_code == 303 and response.headers["Location"] == "/compte/inscription/envoyee"
    sent = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Vérifiez votre messagerie" in sent and "marie.wamytan@example.nc" in sent
    with broker.sessions() as s:  # nothing exists before the address is confirmed
        assert s.execute(select(Account)).first() is None

    message = mailbox.last("marie.wamytan@example.nc")
    assert message["From"] == f"NC Connect <{SENDER}>"
    assert message["Subject"].startswith("Confirmez votre adresse")
    assert message["Content-Language"] == "fr" and message["Auto-Submitted"] == "auto-generated"
    text, html_mail = text_of(message), html_of(message)
    assert "Bonjour" in text and "NC Connect" in text and NEW_PASSWORD not in text
    # no tracking: no remote resource, every link goes to the broker itself
    assert "<img" not in html_mail and "src=" not in html_mail
    assert all(href.startswith(ISSUER + "/") for href in re.findall(r'href="([^"]+)"', html_mail))
    link = link_in(message)
    assert link.startswith("/compte/confirmer?jeton=")
    assert len(query_of(link)["jeton"]) >= 43  # 256 bits

    confirm = client.get(link)  # opening the link only shows a form: mail scanners do not spend it
    assert confirm.status_code == 200
    created = client.post("/compte/confirmer", data={"csrf_token": csrf_of(confirm.get_data(as_text=True)),
                                                     "jeton": query_of(link)["jeton"]})
    assert created.status_code == 200
    body = created.get_data(as_text=True)
    assert "Votre compte est créé" in body
    onward = re.search(r'href="(/login\?rid=[^"]+)"', body).group(1)
    with broker.sessions() as s:
        account = s.execute(select(Account)).scalar_one()
        assert account.email == "marie.wamytan@example.nc" and account.email_verified
        assert account.identity_level == ""  # declared, not verified
        assert (account.given_name, account.birthplace, account.birthcountry) == ("Marie Louise", "98818", "99100")

    page = client.get(onward).get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": csrf_of(page), "rid": rid,
                                           "email": "marie.wamytan@example.nc", "password": NEW_PASSWORD})
    assert response.status_code == 303
    location = client.get(response.headers["Location"]).headers["Location"]
    params = query_of(location)
    assert location.startswith(flow.redirect_uri) and params["state"] == flow.state
    claims = id_token_claims(broker, flow, params["code"])
    assert claims["acr"] == "eidas1" and claims["amr"] == ["pwd"]


def test_the_link_serves_once_and_expires(client, broker, mailbox, monkeypatch):
    from broker.account import tokens

    html = client.get("/compte/inscription").get_data(as_text=True)
    post_signup(client, html, **signup_form("once@example.nc"))
    link = link_in(mailbox.last("once@example.nc"))
    jeton = query_of(link)["jeton"]
    page = client.get(link).get_data(as_text=True)
    assert client.post("/compte/confirmer", data={"csrf_token": csrf_of(page), "jeton": jeton}).status_code == 200
    again = client.post("/compte/confirmer", data={"csrf_token": csrf_of(page), "jeton": jeton})
    assert again.status_code == 400 and "Lien invalide ou expiré" in again.get_data(as_text=True)
    assert client.get(link).status_code == 400
    with broker.sessions() as s:  # stored hashed; the pending identity and hash are gone once used
        rows = list(s.execute(select(AccountToken)).scalars())
        assert all(jeton not in (r.token_hash, r.data) for r in rows) and rows[0].data is None

    mailbox.clear()
    html = client.get("/compte/inscription").get_data(as_text=True)
    post_signup(client, html, **signup_form("late@example.nc"))
    late = link_in(mailbox.last("late@example.nc"))
    real = tokens.now()
    monkeypatch.setattr(tokens, "now", lambda: real + tokens.timedelta(seconds=tokens.LIFETIMES["signup"] + 1))
    assert client.get(late).status_code == 400


def normalised(response, *secrets_: str):
    body = without_csrf(response.get_data(as_text=True))
    for value in secrets_:
        body = body.replace(value, "X")
    headers = sorted((k, v) for k, v in response.headers.items() if k not in ("Date", "Content-Length", "Set-Cookie"))
    return response.status_code, headers, body


def test_signup_of_a_known_address_answers_the_same_and_warns_that_address(app, client, account, broker, mailbox,
                                                                           monkeypatch):
    from broker.account import signup as signup_module
    from tests.account.conftest import new_browser

    hashes = []
    real_hash = signup_module.hash_password
    monkeypatch.setattr(signup_module, "hash_password", lambda p: hashes.append(1) or real_hash(p))

    def attempt(address: str):
        browser = new_browser(app)
        html = browser.get("/compte/inscription").get_data(as_text=True)
        posted = post_signup(browser, html, **signup_form(address))
        followed = browser.get(posted.headers["Location"])
        return normalised(posted), normalised(followed, address)

    known, unknown = attempt("citoyen@example.nc"), attempt("nouveau@example.nc")
    assert known == unknown
    assert len(hashes) == 2  # the same argon2 work both ways (similar timing, D-07)
    warning = mailbox.last("citoyen@example.nc")
    assert "déjà un compte" in warning["Subject"] and "/compte/confirmer" not in text_of(warning)
    assert "/compte/confirmer" in text_of(mailbox.last("nouveau@example.nc"))
    with broker.sessions() as s:
        assert len(s.execute(select(LocalCredential)).all()) == 1


def test_signup_form_is_accessible_and_works_without_javascript(client):
    html = client.get("/compte/inscription").get_data(as_text=True)
    form = re.search(r'<form method="post" action="/compte/inscription"[^>]*>(.*?)</form>', html, re.S).group(1)
    fields = dict(re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"[^>]*?(?:autocomplete="([^"]*)")?[^>]*>', form))
    for name, token in {"email": "email", "password": "new-password", "given_name": "given-name",
                        "family_name": "family-name", "birthdate": "bday", "gender": "sex"}.items():
        tag = re.search(rf'<(?:input|select)[^>]*\bid="{name}"[^>]*>', form).group(0)
        assert f'autocomplete="{token}"' in tag, tag
        assert f'<label for="{name}" class="fr-label">' in form  # a visible label for every field
    for name in fields:
        assert f'<label for="{name}" class="fr-label">' in form or name.endswith("-meter"), name
    password = re.search(r'<input[^>]*id="password"[^>]*>', form).group(0)
    # paste allowed, nothing cut: no maxlength, no onpaste, no autocomplete=off (D-04)
    assert "maxlength" not in password and "onpaste" not in html and 'type="password"' in password
    assert "data-show-password" in form and "<meter" in form  # show-password control, strength meter (D-04)
    assert re.search(r'data-show-password[^>]*hidden', form)  # revealed by the script: the page works without it
    assert '<script src="/static/account.js" defer></script>' in html
    assert 'name="csrf_token"' in form
    assert "Nouméa" in form and "Hors de Nouvelle-Calédonie" in form and '<option value="99134">Espagne</option>' in form


def test_errors_are_next_to_their_fields_and_in_the_title(client):
    html = client.get("/compte/inscription").get_data(as_text=True)
    page = post_signup(client, html, email="pas-une-adresse", password="court", given_name="", family_name="Kabar",
                       birthdate="1985-13-45", gender="", birthplace="")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", body).group(1)
    assert title.startswith("Erreurs (6) : Créer un compte")
    for name in ("email", "password", "given_name", "birthdate", "gender", "birthplace"):
        assert f'id="{name}-error"' in body, name
        tag = re.search(rf'<(?:input|select)[^>]*\bid="{name}"[^>]*>', body).group(0)
        assert 'aria-invalid="true"' in tag and f"{name}-error" in tag
    assert 'value="Kabar"' in body and 'value="court"' not in body  # kept, except the password
    assert "au moins 12 caractères" in body


@pytest.mark.parametrize("password,reason", [
    ("onze caract", "au moins 12 caractères"),  # 11 characters (D-01)
    ("a    b     c      d", "au moins 12 caractères"),  # 19 typed, 7 once spaces are collapsed
    ("x" * 129, "au plus 128 caractères"),
    ("qwerty123456", "plus courants"),  # D-03: breached and common
    ("Wamytan1990Noumea!", "trop prévisible"),  # D-03: the citizen's own name, a place
    ("NC Connect 2026 !!", "trop prévisible"),
    ("Service Alpha Service Alpha", "trop prévisible"),  # a téléservice's name
])
def test_weak_passwords_are_refused_at_signup(client, mailbox, password, reason):
    html = client.get("/compte/inscription").get_data(as_text=True)
    page = post_signup(client, html, **signup_form("weak@example.nc", password=password))
    assert page.status_code == 200 and reason in page.get_data(as_text=True)
    assert not mailbox.to("weak@example.nc")


def test_unicode_and_emoji_passwords_are_verified_exactly(client, broker, mailbox):
    password = "🐢 Tortue de Poé, 🌺 hibiscus ☀️"
    html = client.get("/compte/inscription").get_data(as_text=True)
    assert post_signup(client, html, **signup_form("emoji@example.nc", password=password)).status_code == 303
    link = link_in(mailbox.last("emoji@example.nc"))
    page = client.get(link).get_data(as_text=True)
    client.post("/compte/confirmer", data={"csrf_token": csrf_of(page), "jeton": query_of(link)["jeton"]})
    # no case folding, no trimming, no truncation, no normalisation (five tries: under the throttle)
    for variant in (password.lower(), password[:-1], password + " ", password.replace("🌺", "🌸"),
                    password.replace("é", "e\u0301")):
        assert login(client, "emoji@example.nc", variant).status_code == 200, variant  # the form again
    assert login(client, "emoji@example.nc", password).status_code == 303


def test_long_passwords_up_to_128_characters_are_accepted(client, mailbox):
    password = ("des pirogues glissent sur le lagon de Ouvéa au lever du jour " * 3)[:128]
    html = client.get("/compte/inscription").get_data(as_text=True)
    assert post_signup(client, html, **signup_form("long@example.nc", password=password)).status_code == 303


def test_born_abroad_needs_a_country(client, broker, mailbox):
    html = client.get("/compte/inscription").get_data(as_text=True)
    page = post_signup(client, html, **signup_form("ailleurs@example.nc", birthplace="ailleurs"))
    assert "Choisissez votre pays de naissance." in page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    ok = post_signup(client, html, **signup_form("ailleurs@example.nc", birthplace="ailleurs", birthcountry="99134"))
    assert ok.status_code == 303
    link = link_in(mailbox.last("ailleurs@example.nc"))
    page = client.get(link).get_data(as_text=True)
    client.post("/compte/confirmer", data={"csrf_token": csrf_of(page), "jeton": query_of(link)["jeton"]})
    with broker.sessions() as s:
        account = s.execute(select(Account)).scalar_one()
        assert (account.birthplace, account.birthcountry) == (None, "99134")


def test_signup_is_throttled_then_released(client, mailbox, monkeypatch):
    def attempt():
        html = client.get("/compte/inscription").get_data(as_text=True)
        return post_signup(client, html, **signup_form("flood@example.nc"))

    assert [attempt().status_code for _ in range(3)] == [303] * 3
    locked = attempt()
    assert locked.status_code == 429 and "Trop de demandes" in locked.get_data(as_text=True)
    assert len(mailbox.to("flood@example.nc")) == 3
    shift_time(monkeypatch, throttle, 61)
    assert attempt().status_code == 303  # the lock ends by itself
    assert len(mailbox.to("flood@example.nc")) == 4


def test_signup_without_csrf_token_is_refused(client, mailbox):
    client.get("/compte/inscription")
    response = client.post("/compte/inscription", data=signup_form("csrf@example.nc"))
    assert response.status_code == 400 and not mailbox.to("csrf@example.nc")


def test_no_secret_in_any_url(client, broker, mailbox):
    """D-17: passwords, session identifiers and tokens never in a URL the broker sends the browser to."""
    flow = Flow(client)
    html, rid = start_signup(client, flow)
    seen = [post_signup(client, html, rid, **signup_form("url@example.nc")).headers["Location"]]
    link = link_in(mailbox.last("url@example.nc"))
    page = client.get(link).get_data(as_text=True)
    client.post("/compte/confirmer", data={"csrf_token": csrf_of(page), "jeton": query_of(link)["jeton"]})
    page = client.get(f"/login?rid={rid}").get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": csrf_of(page), "rid": rid, "email": "url@example.nc",
                                           "password": NEW_PASSWORD})
    seen.append(response.headers["Location"])
    seen.append(client.get(response.headers["Location"]).headers["Location"])
    cookie = session_cookie(client)
    for url in seen:
        assert NEW_PASSWORD not in url and cookie not in url and "csrf" not in url and "jeton" not in url
    for form in re.findall(r"<form[^>]*>", page):
        assert 'method="post"' in form


def test_without_smtp_there_is_no_signup():
    """The default test configuration has no smtp block: no links, and the pages say so."""
    from broker.app import create_app
    from tests.account.conftest import new_browser
    import tempfile
    from pathlib import Path
    from tests.conftest import write_config

    directory = write_config(Path(tempfile.mkdtemp()) / "config", database_url="sqlite:///broker.db")
    app = create_app(directory, migrate=True)
    browser = new_browser(app)
    assert "Créer un compte" not in browser.get("/login").get_data(as_text=True)
    assert browser.get("/compte/inscription").status_code == 404
    assert browser.get("/compte/mot-de-passe-oublie").status_code == 404
    app.extensions["nc_connect"].engine.dispose()


def test_the_strength_meter_gives_the_same_verdict_as_the_form(client):
    html = client.get("/compte/inscription").get_data(as_text=True)
    token = csrf_of(html)
    ask = lambda body, headers: client.post("/compte/force-mot-de-passe", json=body, headers=headers)
    assert ask({"password": NEW_PASSWORD}, {}).status_code == 400  # only for the page's own script
    strong = ask({"password": NEW_PASSWORD}, {"X-CSRF-Token": token}).json
    assert strong["ok"] and strong["score"] >= 3 and strong["label"] == ("Correct", "Robuste")[strong["score"] - 3]
    weak = ask({"password": "Wamytan1990!", "family_name": "Wamytan"}, {"X-CSRF-Token": token}).json
    assert not weak["ok"] and "trop prévisible" in weak["message"]
    client.set_cookie("ncc_lang", "en")  # the meter speaks the page's language
    short = ask({"password": "court"}, {"X-CSRF-Token": token}).json
    assert short == {"ok": False, "score": 0, "label": "Very weak",
                     "message": "The password must be at least 12 characters long (it has 5)."}


def test_reflected_form_values_render_inert(client):
    """E-13: what the citizen typed comes back escaped."""
    payload = '"><script>alert(1)</script><img src=x onerror=alert(1)>'
    html = client.get("/compte/inscription").get_data(as_text=True)
    page = post_signup(client, html, **signup_form(payload + "@example.nc", given_name=payload, family_name=payload))
    body = page.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body and "<img src=x" not in body
    assert "&lt;script&gt;" in body
