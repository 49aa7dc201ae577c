"""The account pages the login test does not reach, in a real headless Chromium: the second factor
(enrolment, the code at login, a recovery code, renewal, removal), a téléservice asking for eidas2
(step-up), the password confirmation before a sensitive change, the forgotten password by the real
SMTP mailbox, and consent (accept, refuse, revoke).  Every page: language, title, h1, labels,
axe-core (WCAG 2.1 A/AA), and Tab alone reaching each of its controls; each page's main form is
operated with the keyboard only.  The reset and consent flows run without JavaScript too.

Each test has its own account, so that none depends on another's state."""

from __future__ import annotations

import json
import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from broker.account import mfa
from tests.account.conftest import NEW_PASSWORD, text_of
from tests.browser.citizen import Citizen
from tests.browser.conftest import CONSENT_CLIENT_NAME
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

JS = pytest.mark.parametrize("js", [True, False], ids=["with-javascript", "without-javascript"])
DEMO_SIGNED_IN = "Vous êtes connecté – Téléservice de démonstration"
DEMO_FAILED = "Connexion non aboutie – Téléservice de démonstration"


def norm(text: str) -> str:
    """Typography aside (’ or ', no-break spaces): what the citizen reads."""
    return re.sub(r"[\u00a0\u202f]", " ", text.replace("\u2019", "'")).strip()


def main_text(page) -> str:
    return norm(page.locator("main").inner_text())


# -- the citizen ------------------------------------------------------------------------------

def new_account(site, label: str) -> str:
    """A fresh local account (password: tests.conftest.PASSWORD); its email address."""
    from broker.accounts import create_account

    email = f"{label}-{uuid.uuid4().hex[:10]}@example.nc"
    create_account(site.broker.sessions, email, PASSWORD, given_name="Émilie", family_name="Gowé",
                   birthdate="1987-11-03", gender="female", birthplace="98818", birthcountry="99100")
    return email


class Authenticator:
    """The citizen's authenticator application.  A time step's code is accepted once, so each code
    given here is from the next time step; the broker (in this process) is told the same time."""

    def __init__(self, secret: str, monkeypatch) -> None:
        self.secret, self.monkeypatch, self.steps = secret, monkeypatch, 0

    def code(self) -> str:
        self.steps += 1
        offset = 30 * self.steps
        self.monkeypatch.setattr(mfa, "totp_clock", lambda: time.time() + offset)
        return pyotp.TOTP(self.secret).at(time.time() + offset)

    def wrong_code(self) -> str:
        """Six digits that are the code of no step the broker accepts now."""
        at = mfa.totp_clock()
        near = {pyotp.TOTP(self.secret).at(at + 30 * d) for d in (-1, 0, 1)}
        return next(c for c in (f"{i:06d}" for i in range(1, 10)) if c not in near)


def visit(citizen: Citizen, title: str, h1: str | None = None) -> list[str]:
    """The checks of every page, then Tab through it: the names of its controls."""
    citizen.check_page(title=title, h1=h1)
    return [norm(c) for c in citizen.assert_keyboard_reaches_everything()]


def focused(page) -> str:
    return page.evaluate("() => document.activeElement.id || document.activeElement.innerText.trim()")


def type_into(citizen: Citizen, field: str, text: str, *, then: str | None = "Enter") -> None:
    """Tab to a field (never clicked), type, and press Enter (the form's first button) or nothing."""
    citizen.tab_to(f"el.id === {json.dumps(field)}")
    citizen.page.keyboard.type(text)
    if then:
        with citizen.page.expect_navigation():
            citizen.page.keyboard.press(then)


def press(citizen: Citizen, name: str, key: str = "Enter", *, tag: str = "BUTTON") -> None:
    """Tab to the button (or link) named ``name`` and press it with the keyboard."""
    citizen.tab_to(f"el.tagName === {json.dumps(tag)} && "
                   f"el.innerText.replace(/\\u2019/g, \"'\").replace(/[\\u00a0\\u202f]/g, ' ').trim() === {json.dumps(name)}")
    with citizen.page.expect_navigation():
        citizen.page.keyboard.press(key)


def assert_field_error(page, field: str, message: str) -> None:
    """The error beside its field (described by it, in the field's group) and linked from the summary."""
    box = page.locator(f"#{field}")
    assert box.get_attribute("aria-invalid") == "true"
    assert f"{field}-error" in (box.get_attribute("aria-describedby") or "").split()
    error = page.locator(f".fr-input-group:has(#{field}) #{field}-error")
    assert norm(error.inner_text()) == message
    assert norm(page.locator(f"#erreurs a[href='#{field}']").inner_text()) == message


def start_at(citizen: Citizen, demo_url: str, site) -> None:
    """From a téléservice's home to NC Connect's local login form."""
    page = citizen.page
    page.goto(demo_url + "/")
    page.get_by_role("button", name="Se connecter avec NC Connect").click()
    page.wait_for_url(re.compile(re.escape(site.broker_url) + r"/login(/local)?\?rid="))
    if "/login/local" not in page.url:
        page.get_by_role("link", name="Se connecter avec Compte NC Connect").click()
    citizen.check_page(title="Connexion – NC Connect", h1="Se connecter")


def enter_password(citizen: Citizen, email: str, password: str) -> None:
    page = citizen.page
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Se connecter", exact=True).click()
    page.wait_for_load_state()


def demo_claims(citizen: Citizen, demo_url: str) -> dict:
    """At the téléservice, signed in: what it received (ID token and userinfo)."""
    page = citizen.page
    page.wait_for_url(demo_url + "/")
    visit(citizen, DEMO_SIGNED_IN, "Vous êtes connecté")
    return json.loads(page.locator("details pre").text_content())


def sign_out(citizen: Citizen, site, demo_url: str | None = None) -> None:
    """Signed out of the téléservice (when signed in there) and of NC Connect."""
    page = citizen.page
    page.goto((demo_url or site.demo_url) + "/")
    if page.get_by_role("button", name="Se déconnecter").count():
        page.get_by_role("button", name="Se déconnecter").click()  # through NC Connect's end_session
        page.wait_for_url(re.compile(re.escape(demo_url or site.demo_url) + r"/\?state="))
    page.goto(site.broker_url + "/logout")
    if page.get_by_role("button", name="Me déconnecter").count():
        page.get_by_role("button", name="Me déconnecter").click()
    assert page.locator("h1").inner_text().strip() == "Vous êtes déconnecté"


def sign_in_to_space(citizen: Citizen, site, email: str, password: str = PASSWORD) -> None:
    """/compte asks for a login first, then comes back to the citizen's space."""
    page = citizen.page
    page.goto(site.broker_url + "/compte")
    page.wait_for_url(re.compile(re.escape(site.broker_url) + r"/login"))
    if "/login/local" not in page.url:
        page.get_by_role("link", name="Se connecter avec Compte NC Connect").click()
    enter_password(citizen, email, password)
    page.wait_for_url(site.broker_url + "/compte")


def age_session(citizen: Citizen, site, seconds: int = 3600) -> None:
    """The browser's NC Connect login becomes ``seconds`` old (older than the re-authentication window)."""
    from broker.sessions import _key

    value = next(c["value"] for c in citizen.context.cookies(site.broker_url) if c["name"] == "ncc_session")
    data = site.broker.store.get(_key(value))
    data.update(auth_time=int(time.time()) - seconds, reauth_at=0)
    site.broker.store.put(_key(value), data, 3600)


# -- 1. the second factor ----------------------------------------------------------------------

def enrol(citizen: Citizen, monkeypatch) -> tuple[Authenticator, list[str]]:
    """On the enrolment page: a wrong code first, then the right one, by keyboard; the recovery codes."""
    page = citizen.page
    controls = visit(citizen, "Activer la double authentification – NC Connect", "Activer la double authentification")
    assert any(c == "#code" for c in controls)
    qr = page.locator("img[src^='data:image/svg+xml']")
    assert qr.count() == 1 and qr.get_attribute("alt").startswith("Code QR à scanner")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 100")  # the inline SVG is drawn (CSP img-src data:)
    secret = page.locator("code.secret").inner_text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    app = Authenticator(secret, monkeypatch)
    assert page.locator("#code").get_attribute("autocomplete") == "one-time-code"

    type_into(citizen, "code", app.wrong_code())
    if citizen.js:  # the focus on the field in error
        assert focused(page) == "code"
    visit(citizen, "Erreur (1) : Activer la double authentification – NC Connect", "Activer la double authentification")
    assert_field_error(page, "code", "Ce code ne correspond pas. Vérifiez l'heure de votre téléphone et saisissez "
                                     "le code affiché maintenant.")
    assert page.locator("code.secret").inner_text().replace(" ", "") == secret  # the same key, still to be confirmed
    type_into(citizen, "code", app.code())

    controls = visit(citizen, "Vos codes de secours – NC Connect", "Double authentification activée")
    codes = page.locator("ul.ncc-codes code").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[0-9a-z]{4}(-[0-9a-z]{4}){3}", c) for c in codes), codes
    assert "Ils ne seront plus jamais affichés." in main_text(page)
    return app, codes


def test_second_factor_enrol_login_with_a_code_and_a_recovery_code_then_remove_it(citizen_factory, site, monkeypatch):
    citizen = citizen_factory(js=True)
    page = citizen.page
    email = new_account(site, "totp")

    # the citizen's space, by keyboard to the second factor
    sign_in_to_space(citizen, site, email)
    controls = visit(citizen, "Mon compte – NC Connect", "Mon compte")
    assert "Activer la double authentification" in controls
    assert "Double authentification : désactivée" in norm(page.locator("section[aria-labelledby=securite]").inner_text())
    press(citizen, "Activer la double authentification", tag="A")
    app, codes = enrol(citizen, monkeypatch)
    assert "activée" in site.mailbox.last(email)["Subject"]  # the notice (D-09)
    press(citizen, "J'ai noté mes codes, continuer", tag="A")
    page.wait_for_url(site.broker_url + "/compte")
    assert "activée (10 codes de secours restants)" in main_text(page)

    # from the téléservice again: the password, then the code page
    sign_out(citizen, site)
    start_at(citizen, site.demo_url, site)
    enter_password(citizen, email, PASSWORD)
    assert page.url == site.broker_url + "/login/code"
    controls = visit(citizen, "Code de vérification – NC Connect", "Code de vérification")
    assert controls.index("#code") < controls.index("Valider") < controls.index("#recovery_code") \
        < controls.index("Utiliser un code de secours")
    type_into(citizen, "code", app.wrong_code())
    assert focused(page) == "code"
    visit(citizen, "Erreur (1) : Code de vérification – NC Connect", "Code de vérification")
    assert_field_error(page, "code", "Ce code n'est pas valide. Vérifiez-le et réessayez.")
    type_into(citizen, "code", app.code())
    claims = demo_claims(citizen, site.demo_url)
    assert claims["id_token"]["acr"] == "eidas2", claims  # password and code: the second factor's level
    assert claims["id_token"]["amr"] == ["pwd", "otp", "mfa"]

    # a recovery code serves once
    sign_out(citizen, site)
    start_at(citizen, site.demo_url, site)
    enter_password(citizen, email, PASSWORD)
    citizen.check_page(title="Code de vérification – NC Connect", h1="Code de vérification")
    type_into(citizen, "recovery_code", codes[4].upper())  # typed in capitals: the same code
    assert demo_claims(citizen, site.demo_url)["id_token"]["acr"] == "eidas2"
    sign_out(citizen, site)
    start_at(citizen, site.demo_url, site)
    enter_password(citizen, email, PASSWORD)
    type_into(citizen, "recovery_code", codes[4])
    visit(citizen, "Erreur (1) : Code de vérification – NC Connect", "Code de vérification")
    assert_field_error(page, "recovery_code", "Ce code de secours n'est pas valide ou a déjà servi.")
    assert page.url == site.broker_url + "/login/code"
    type_into(citizen, "code", app.code())
    demo_claims(citizen, site.demo_url)
    page.goto(site.broker_url + "/compte")
    assert "activée (9 codes de secours restants)" in main_text(page)
    assert "Code de secours utilisé" in page.locator("section[aria-labelledby=historique] table").inner_text()

    # managing it: new recovery codes, then removal
    press(citizen, "Gérer", tag="A")
    controls = visit(citizen, "Double authentification – NC Connect", "Double authentification")
    assert "Codes de secours restants : 9." in main_text(page)
    press(citizen, "Obtenir de nouveaux codes de secours", key="Space")
    visit(citizen, "Vos codes de secours – NC Connect", "Vos nouveaux codes de secours")
    renewed = page.locator("ul.ncc-codes code").all_inner_texts()
    assert len(renewed) == 10 and not set(renewed) & set(codes)
    page.goto(site.broker_url + "/compte/double-authentification")
    assert "Codes de secours restants : 10." in main_text(page)
    press(citizen, "Désactiver la double authentification")
    visit(citizen, "Double authentification désactivée – NC Connect", "Double authentification désactivée")
    assert "désactivée" in site.mailbox.last(email)["Subject"]

    # the password alone again: no code page on the way to the téléservice
    sign_out(citizen, site)
    start_at(citizen, site.demo_url, site)
    enter_password(citizen, email, PASSWORD)
    assert demo_claims(citizen, site.demo_url)["id_token"]["acr"] == "eidas1"
    citizen.assert_clean()


# -- 2. a téléservice asking for more than a password; the password asked again ----------------------

def asking_for(citizen: Citizen, site, acr: str) -> None:
    """The demo téléservice, made to ask for ``acr_values``: its redirection to NC Connect's authorization
    endpoint gets the parameter (the demo itself never sends one)."""
    def add_acr(route) -> None:
        response = route.fetch(max_redirects=0)
        location = response.headers["location"]
        assert location.startswith(site.broker_url + "/authorize?") and "acr_values" not in location
        route.fulfill(response=response, headers={**response.headers, "location": f"{location}&acr_values={acr}"})

    citizen.page.route(site.demo_url + "/login", add_acr)


def test_step_up_from_a_teleservice_asking_eidas2(citizen_factory, site, monkeypatch):
    citizen = citizen_factory(js=True)
    page = citizen.page
    email = new_account(site, "eidas2")
    asking_for(citizen, site, "eidas2")

    # the password is not enough: the step-up page, and going back without signing in
    start_at(citizen, site.demo_url, site)
    enter_password(citizen, email, PASSWORD)
    assert page.url.startswith(site.broker_url + "/compte/connexion-renforcee?rid=")
    controls = visit(citizen, "Connexion renforcée demandée – NC Connect", "Connexion renforcée demandée")
    assert controls.index("Activer la double authentification") < controls.index("Retourner au service sans me connecter")
    lead = norm(page.locator("main .fr-text--lead").inner_text())
    assert "Téléservice de démonstration" in lead and "eidas2" in lead
    press(citizen, "Retourner au service sans me connecter", key="Space")
    page.wait_for_url(re.compile(re.escape(site.demo_url) + r"/callback\?"))
    assert parse_qs(urlsplit(page.url).query)["error"] == ["unmet_authentication_requirements"]
    visit(citizen, DEMO_FAILED, "Connexion non aboutie")
    assert "n'offre pas le niveau de sécurité demandé" in main_text(page)

    # again (the eidas1 session is not enough either: the password again), then enrolment on the way
    start_at(citizen, site.demo_url, site)
    enter_password(citizen, email, PASSWORD)
    citizen.check_page(title="Connexion renforcée demandée – NC Connect", h1="Connexion renforcée demandée")
    rid = parse_qs(urlsplit(page.url).query)["rid"][0]
    press(citizen, "Activer la double authentification", tag="A")
    assert page.url == f"{site.broker_url}/compte/double-authentification?rid={rid}"
    enrol(citizen, monkeypatch)
    press(citizen, "J'ai noté mes codes, continuer", tag="A")
    claims = demo_claims(citizen, site.demo_url)
    assert claims["id_token"]["acr"] == "eidas2", claims
    assert claims["id_token"]["amr"] == ["pwd", "otp", "mfa"]
    citizen.assert_clean()


@JS
def test_a_sensitive_change_asks_the_password_again_after_a_while(citizen_factory, site, js):
    citizen = citizen_factory(js=js)
    page = citizen.page
    email = new_account(site, f"reauth-{'js' if js else 'nojs'}")
    sign_in_to_space(citizen, site, email)
    age_session(citizen, site)  # the login is an hour old: more than the 10 minutes of D-16

    page.goto(site.broker_url + "/compte")
    press(citizen, "Supprimer mon compte", tag="A")
    assert page.url == site.broker_url + "/compte/confirmer-identite?suite=supprimer"
    controls = visit(citizen, "Confirmez votre identité – NC Connect", "Confirmez votre identité")
    assert "#password" in controls and "Confirmer" in controls and "#code" not in controls
    assert ("Afficher le mot de passe" in controls) == js  # revealed by account.js only
    assert page.locator("#password").get_attribute("autocomplete") == "current-password"

    type_into(citizen, "password", "pas le bon mot de passe")
    if js:
        assert focused(page) == "password"
    visit(citizen, "Erreur (1) : Confirmez votre identité – NC Connect", "Confirmez votre identité")
    assert_field_error(page, "password", "Mot de passe incorrect.")
    type_into(citizen, "password", PASSWORD)

    # confirmed: the page asked for, then the deletion itself, by keyboard (Space ticks the box)
    assert page.url == site.broker_url + "/compte/supprimer", f"{page.title()}: {main_text(page)}"
    visit(citizen, "Supprimer mon compte – NC Connect", "Supprimer mon compte")
    press(citizen, "Supprimer mon compte")
    visit(citizen, "Erreur (1) : Supprimer mon compte – NC Connect", "Supprimer mon compte")
    assert norm(page.locator("#confirm-error").inner_text()) == "Cochez la case pour confirmer la suppression."
    assert page.locator("#confirm").get_attribute("aria-invalid") == "true"
    citizen.tab_to("el.id === 'confirm'")
    page.keyboard.press("Space")
    assert page.locator("#confirm").is_checked()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    visit(citizen, "Compte supprimé – NC Connect", "Compte supprimé")

    # gone: the password no longer opens anything
    start_at(citizen, site.demo_url, site)
    enter_password(citizen, email, PASSWORD)
    citizen.check_page(title="Erreur : Connexion – NC Connect", h1="Se connecter")
    citizen.assert_clean()


def test_the_second_factor_is_asked_again_before_removing_it(citizen_factory, site, monkeypatch):
    """The confirmation page with a second factor: the password and a code."""
    citizen = citizen_factory(js=True)
    page = citizen.page
    email = new_account(site, "reauth-totp")
    sign_in_to_space(citizen, site, email)
    page.goto(site.broker_url + "/compte/double-authentification")
    app, _ = enrol(citizen, monkeypatch)
    age_session(citizen, site)

    page.goto(site.broker_url + "/compte/double-authentification")
    citizen.check_page(title="Double authentification – NC Connect", h1="Double authentification")
    press(citizen, "Désactiver la double authentification")
    assert page.url == site.broker_url + "/compte/confirmer-identite?suite=2fa"
    controls = visit(citizen, "Confirmez votre identité – NC Connect", "Confirmez votre identité")
    assert controls.index("#password") < controls.index("#code") < controls.index("Confirmer")
    citizen.tab_to("el.id === 'password'")
    page.keyboard.type(PASSWORD)
    citizen.tab_to("el.id === 'code'")
    page.keyboard.type(app.wrong_code())
    with page.expect_navigation():
        page.keyboard.press("Enter")
    visit(citizen, "Erreur (1) : Confirmez votre identité – NC Connect", "Confirmez votre identité")
    assert_field_error(page, "password", "Mot de passe ou code incorrect.")
    citizen.tab_to("el.id === 'password'")
    page.keyboard.type(PASSWORD)
    citizen.tab_to("el.id === 'code'")
    page.keyboard.type(app.code())
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == site.broker_url + "/compte/double-authentification"
    press(citizen, "Désactiver la double authentification")
    visit(citizen, "Double authentification désactivée – NC Connect", "Double authentification désactivée")
    assert not mfa.enabled(site.broker, _account_id(site, email))
    citizen.assert_clean()


def _account_id(site, email: str) -> str:
    from sqlalchemy import select

    from broker.models import LocalCredential

    with site.broker.sessions() as s:
        return s.execute(select(LocalCredential.account_id).where(LocalCredential.email == email)).scalar_one()


# -- 3. the forgotten password -------------------------------------------------------------------

@JS
def test_forgotten_password_by_the_emailed_link(citizen_factory, site, js):
    citizen = citizen_factory(js=js)
    page = citizen.page
    email = new_account(site, f"reset-{'js' if js else 'nojs'}")
    start_at(citizen, site.demo_url, site)
    press(citizen, "Mot de passe oublié ?", tag="A")
    controls = visit(citizen, "Mot de passe oublié – NC Connect", "Mot de passe oublié")
    assert controls.index("#email") < controls.index("Recevoir un lien")

    # a malformed address: the error beside the field, what was typed kept
    type_into(citizen, "email", "marie.example.nc")
    if js:
        assert focused(page) == "email"
    else:  # the error summary is the first thing a keyboard reaches in the page's content
        assert page.evaluate("""() => document.querySelector(
            'main a[href], main button, main input:not([type=hidden])').closest('#erreurs') !== null""")
    visit(citizen, "Erreur (1) : Mot de passe oublié – NC Connect", "Mot de passe oublié")
    assert_field_error(page, "email", "Indiquez une adresse électronique valide, par exemple nom@exemple.nc.")
    assert page.locator("#email").input_value() == "marie.example.nc"
    page.locator("#email").fill("")
    type_into(citizen, "email", email.upper())  # the address as the citizen types it
    visit(citizen, "Vérifiez votre messagerie – NC Connect", "Vérifiez votre messagerie")
    assert email in main_text(page)

    # the link from the real mailbox
    message = site.mailbox.last(email)
    link = re.search(re.escape(site.broker_url) + r"/compte/nouveau-mot-de-passe\?jeton=[^\s]+", text_of(message)).group(0)
    page.goto(link)
    controls = visit(citizen, "Choisir un nouveau mot de passe – NC Connect", "Choisir un nouveau mot de passe")
    assert email in main_text(page)
    assert page.locator("#password").get_attribute("autocomplete") == "new-password"
    assert ("Afficher le mot de passe" in controls) == js

    # too short, then too easy to guess: each time the error beside the field, the link still valid
    type_into(citizen, "password", "court")
    if js:
        assert focused(page) == "password"
    visit(citizen, "Erreur (1) : Choisir un nouveau mot de passe – NC Connect", "Choisir un nouveau mot de passe")
    short = norm(page.locator("#password-error").inner_text())
    assert_field_error(page, "password", short)
    assert "12 caractères" in short, short
    type_into(citizen, "password", "motdepasse123")
    citizen.check_page(title="Erreur (1) : Choisir un nouveau mot de passe – NC Connect", h1="Choisir un nouveau mot de passe")
    weak = norm(page.locator("#password-error").inner_text())
    assert weak and weak != short
    assert_field_error(page, "password", weak)

    type_into(citizen, "password", NEW_PASSWORD)
    visit(citizen, "Mot de passe modifié – NC Connect", "Mot de passe modifié")
    sent = site.mailbox.to(email)
    assert len(sent) == 2 and "a été modifié" in norm(sent[-1]["Subject"])  # the link, then the notice (D-09)
    assert NEW_PASSWORD not in text_of(sent[-1])

    # the link served once
    page.goto(link)
    citizen.check_page(title="Lien invalide ou expiré – NC Connect", h1="Lien invalide ou expiré")
    assert page.locator("#password").count() == 0

    # the old password no longer works; the new one does
    start_at(citizen, site.demo_url, site)
    enter_password(citizen, email, PASSWORD)
    citizen.check_page(title="Erreur : Connexion – NC Connect", h1="Se connecter")
    page.locator("#password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Se connecter", exact=True).click()
    assert demo_claims(citizen, site.demo_url)["userinfo"]["email"] == email
    citizen.assert_clean()


# -- 4. consent ----------------------------------------------------------------------------------

@JS
def test_consent_refused_then_given_then_revoked(citizen_factory, site, js):
    citizen = citizen_factory(js=js)
    page = citizen.page
    email = new_account(site, f"consent-{'js' if js else 'nojs'}")
    service = site.consent_demo_url
    title = f"Autoriser {CONSENT_CLIENT_NAME} – NC Connect"

    # the first login to this téléservice asks: what data, and the choice
    start_at(citizen, service, site)
    enter_password(citizen, email, PASSWORD)
    assert page.url.startswith(site.broker_url + "/consentement?rid=")
    controls = visit(citizen, title, f"Autoriser {CONSENT_CLIENT_NAME}")
    assert controls.index("Autoriser et continuer") < controls.index("Refuser et retourner au service")
    listed = [norm(t) for t in page.locator("main ul:not(.fr-btns-group) li").all_inner_texts()]
    assert {"Vos prénoms", "Votre nom de naissance", "Votre date de naissance", "Votre adresse électronique"} <= set(listed)

    press(citizen, "Refuser et retourner au service", key="Space")
    page.wait_for_url(re.compile(re.escape(service) + r"/callback\?"))
    assert parse_qs(urlsplit(page.url).query)["error"] == ["access_denied"]
    visit(citizen, DEMO_FAILED, "Connexion non aboutie")
    assert "Code technique : access_denied" in main_text(page)
    page.goto(site.broker_url + "/compte/autorisations")
    citizen.check_page(title="Mes autorisations – NC Connect", h1="Mes autorisations")
    assert "Vous n'avez autorisé aucun service" in main_text(page)

    # accepted (NC Connect session already open: straight to the question), by keyboard
    page.goto(service + "/")
    page.get_by_role("button", name="Se connecter avec NC Connect").click()
    page.wait_for_url(re.compile(re.escape(site.broker_url) + r"/consentement\?rid="))
    citizen.check_page(title=title, h1=f"Autoriser {CONSENT_CLIENT_NAME}")
    press(citizen, "Autoriser et continuer")
    claims = demo_claims(citizen, service)
    assert claims["userinfo"]["email"] == email and claims["userinfo"]["given_name"] == "Émilie"

    # remembered: the next login does not ask again
    sign_out(citizen, site, service)
    start_at(citizen, service, site)
    enter_password(citizen, email, PASSWORD)
    demo_claims(citizen, service)

    # listed in the citizen's space, and revoked by keyboard
    page.goto(site.broker_url + "/compte/autorisations")
    controls = visit(citizen, "Mes autorisations – NC Connect", "Mes autorisations")
    section = page.locator("section.consent")
    assert section.count() == 1 and section.locator("h2").inner_text().strip() == CONSENT_CLIENT_NAME
    assert "Votre date de naissance" in section.inner_text()
    assert f"Retirer l'autorisation donnée à {CONSENT_CLIENT_NAME}" in controls
    press(citizen, f"Retirer l'autorisation donnée à {CONSENT_CLIENT_NAME}")
    visit(citizen, "Mes autorisations – NC Connect", "Mes autorisations")
    assert page.locator("section.consent").count() == 0
    assert "Vous n'avez autorisé aucun service" in main_text(page)

    # revoked: the téléservice's next login asks again
    sign_out(citizen, site, service)
    start_at(citizen, service, site)
    enter_password(citizen, email, PASSWORD)
    assert page.url.startswith(site.broker_url + "/consentement?rid=")
    citizen.check_page(title=title, h1=f"Autoriser {CONSENT_CLIENT_NAME}")
    citizen.assert_clean()
