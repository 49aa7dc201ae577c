"""The citizen's pages in a real headless Chromium: the whole login from the demo téléservice, with and
without JavaScript; axe-core (WCAG 2.1 A/AA) on every page; keyboard only; French first, English on
request (``ui_locales``, the language switch); error pages a citizen can act on; a strict CSP that
blocks nothing the pages need, and no request to any other site (checklist E-02, E-05)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.citizen import Citizen
from tests.browser.conftest import EMAIL, UNREACHABLE
from tests.account.conftest import NEW_PASSWORD, text_of
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

DEMO_HOME = "Accueil – Téléservice de démonstration"


def start_login(citizen: Citizen, site) -> None:
    """From the demo téléservice's home to NC Connect's identity source page."""
    page = citizen.page
    page.goto(site.demo_url + "/")
    page.get_by_role("button", name="Se connecter avec NC Connect").click()
    page.wait_for_url(re.compile(re.escape(site.broker_url) + r"/login\?rid="))


@pytest.mark.parametrize("js", [True, False], ids=["with-javascript", "without-javascript"])
def test_full_login_from_the_demo_teleservice(citizen_factory, site, js, tmp_path):
    citizen = citizen_factory(js=js)
    page = citizen.page
    page.goto(site.demo_url + "/")
    citizen.check_page(title=DEMO_HOME, h1="Téléservice de démonstration")
    start_login(citizen, site)

    # the identity source page: FranceConnect with the DSFR button, the local account as a clear button
    citizen.check_page(title="Choisir comment se connecter – NC Connect", h1="Choisir comment se connecter")
    fc = page.locator("a.fr-connect")
    assert fc.count() == 1 and re.sub(r"\s+", " ", fc.inner_text()).strip() == "S’identifier avec FranceConnect"
    assert page.get_by_role("link", name="Qu’est-ce que FranceConnect ?").get_attribute("href").startswith("/franceconnect")
    assert page.locator("header").get_by_text("Gouvernement de la Nouvelle-Calédonie").count() == 1
    assert all(href.startswith("/") for href in page.locator("a[href]").evaluate_all("els => els.map(a => a.getAttribute('href'))")
               if not href.startswith("#")), "no link to another site on the login pages (E-05)"
    if js:
        citizen.screenshot("choix-du-moyen-de-connexion.png", tmp_path)
    page.get_by_role("link", name="Se connecter avec Compte NC Connect").click()

    # the login form
    citizen.check_page(title="Connexion – NC Connect", h1="Se connecter")
    if js:
        citizen.screenshot("connexion.png", tmp_path)
    page.locator("#email").fill(EMAIL)
    page.locator("#password").fill("not the password, sorry")
    page.get_by_role("button", name="Se connecter", exact=True).click()

    # back with an error: what was typed is kept, the error is beside the field and in the title
    citizen.check_page(title="Erreur : Connexion – NC Connect", h1="Se connecter")
    assert page.locator("#email").input_value() == EMAIL
    assert page.locator("#password").input_value() == ""
    password = page.locator("#password")
    assert password.get_attribute("aria-invalid") == "true"
    assert "fr-input-group--error" in page.locator("#password-group").get_attribute("class")
    described = page.locator(f"#{password.get_attribute('aria-describedby')}")
    assert described.inner_text().strip() == "Adresse électronique ou mot de passe incorrect."
    summary_link = page.locator("#erreurs a[href='#password']")
    assert summary_link.inner_text().strip() == "Adresse électronique ou mot de passe incorrect."
    if js:  # the focus is on the first field in error
        assert page.evaluate("() => document.activeElement.id") == "password"
    else:  # the error summary is the first thing a keyboard reaches in the page's content
        assert page.evaluate("""() => document.querySelector(
            'main a[href], main button, main input:not([type=hidden])').closest('#erreurs') !== null""")
    password.fill(PASSWORD)
    page.get_by_role("button", name="Se connecter", exact=True).click()

    # back at the téléservice, signed in; the date of birth in French
    page.wait_for_url(site.demo_url + "/")
    citizen.check_page(title="Vous êtes connecté – Téléservice de démonstration", h1="Vous êtes connecté")
    assert "12 avril 1990" in page.locator("table").inner_text()

    # NC Connect's home knows the citizen (a French date), and its logout asks for confirmation
    page.goto(site.broker_url + "/")
    citizen.check_page(title="NC Connect", h1="NC Connect")
    assert re.search(r"Vous êtes connecté depuis le \d{1,2} [a-zéû]+ \d{4} à \d{2}:\d{2}\.", page.locator("main").inner_text())
    page.goto(site.broker_url + "/logout")
    citizen.check_page(title="Se déconnecter – NC Connect", h1="Se déconnecter de NC Connect")
    page.get_by_role("link", name="Rester connecté").click()
    assert page.url == site.broker_url + "/"

    # the téléservice's logout goes through NC Connect and comes back signed out
    page.goto(site.demo_url + "/")
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_url(re.compile(re.escape(site.demo_url) + r"/\?state="))
    citizen.check_page(title=DEMO_HOME, h1="Téléservice de démonstration")
    page.goto(site.broker_url + "/logout")
    citizen.check_page(title="Vous êtes déconnecté – NC Connect", h1="Vous êtes déconnecté")
    citizen.assert_clean()


@pytest.mark.parametrize("js", [True, False], ids=["with-javascript", "without-javascript"])
def test_sign_up_then_the_citizens_space(citizen_factory, site, js):
    citizen = citizen_factory(js=js)
    page = citizen.page
    email = f"nouveau-{'js' if js else 'nojs'}@example.nc"
    start_login(citizen, site)
    page.get_by_role("link", name="Se connecter avec Compte NC Connect").click()
    page.get_by_role("link", name="Créer un compte").click()
    citizen.check_page(title="Créer un compte – NC Connect", h1="Créer un compte NC Connect")

    # nothing typed: every error beside its field, counted in the title, the focus on the first one
    page.get_by_role("button", name="Créer mon compte").click()
    citizen.check_page(title="Erreurs (7) : Créer un compte – NC Connect", h1="Créer un compte NC Connect")
    assert page.locator("#email").get_attribute("aria-invalid") == "true"
    assert "email-error" in page.locator("#email").get_attribute("aria-describedby")
    if js:
        assert page.evaluate("() => document.activeElement.id") == "email"

    page.locator("#email").fill(email)
    page.locator("#password").fill(NEW_PASSWORD)
    page.locator("#given_name").fill("Jean Pierre")
    page.locator("#family_name").fill("Kabar")
    page.locator("#birthdate").fill("1985-07-14")
    page.select_option("#gender", "male")
    page.select_option("#birthplace", "98818")
    page.get_by_role("button", name="Créer mon compte").click()
    citizen.check_page(title="Vérifiez votre messagerie – NC Connect")

    # the emailed link, then the confirmation, then the login that goes on to the téléservice
    link = re.search(re.escape(site.broker_url) + r"/[^\s]+", text_of(site.mailbox.last(email))).group(0)
    page.goto(link)
    citizen.check_page(title="Confirmer votre adresse – NC Connect", h1="Confirmer votre adresse")
    page.get_by_role("button", name="Confirmer").click()
    citizen.check_page(title="Compte créé – NC Connect", h1="Votre compte est créé")
    page.get_by_role("link", name="Me connecter et continuer vers Téléservice de démonstration").click()
    if "/login/local" not in page.url:
        page.get_by_role("link", name="Se connecter avec Compte NC Connect").click()
    page.locator("#email").fill(email)
    page.locator("#password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Se connecter", exact=True).click()
    page.wait_for_url(site.demo_url + "/")
    assert "14 juillet 1985" in page.locator("table").inner_text()

    # the citizen's space: a declared identity, dates in French
    page.goto(site.broker_url + "/compte")
    citizen.check_page(title="Mon compte – NC Connect", h1="Mon compte")
    assert "14 juillet 1985" in page.locator("main").inner_text() and "non vérifiée" in page.locator("main").inner_text()
    page.get_by_role("link", name="Changer de mot de passe").click()
    citizen.check_page(title="Changer de mot de passe – NC Connect", h1="Changer de mot de passe")
    page.goto(site.broker_url + "/compte/supprimer")
    citizen.check_page(title="Supprimer mon compte – NC Connect", h1="Supprimer mon compte")
    citizen.assert_clean()


def test_keyboard_alone_reaches_every_control_and_signs_in(citizen_factory, site):
    citizen = citizen_factory(js=True)
    page = citizen.page
    page.goto(site.demo_url + "/")
    citizen.tab_to("el.tagName === 'BUTTON' && el.innerText.trim() === 'Se connecter avec NC Connect'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(site.broker_url) + r"/login\?rid="))

    # every control of the source page, in order, from the skip links to the cancel button
    controls = citizen.keyboard_map()
    assert citizen.tab_through() == list(range(len(controls))), controls
    assert controls[0].endswith("Contenu") and controls[-1].endswith("Accueil de NC Connect")  # skip link … footer
    assert any(c.endswith("Annuler et retourner sur Téléservice de démonstration") for c in controls)
    page.goto(page.url)
    citizen.tab_to("el.tagName === 'A' && el.innerText.trim() === 'Se connecter avec Compte NC Connect'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(site.broker_url) + r"/login/local\?rid="))

    # the login form: every control reached, the fields before the submit button
    controls = citizen.keyboard_map()
    order = citizen.tab_through()
    assert order == list(range(len(controls))), controls
    names = [controls[i] for i in order]
    email, password = names.index("#email"), names.index("#password")
    submit = names.index("Se connecter")
    assert email < password < submit
    page.goto(page.url)
    citizen.tab_to("el.id === 'email'")
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")  # Enter submits the form with its first button, "Se connecter"
    page.wait_for_url(site.demo_url + "/")
    assert page.locator("h1").inner_text().strip() == "Vous êtes connecté"
    citizen.assert_clean()


def test_english_from_ui_locales_and_back_to_french_with_the_switch(citizen_factory, site):
    citizen = citizen_factory(js=False)
    page = citizen.page
    page.goto(site.demo_url + "/")
    page.select_option("#ui_locales", "en")
    page.get_by_role("button", name="Se connecter avec NC Connect").click()
    page.wait_for_url(re.compile(re.escape(site.broker_url) + r"/login\?rid="))
    citizen.check_page(title="Choose how to sign in – NC Connect", h1="Choose how to sign in", lang="en")
    main = page.locator("main").inner_text()
    assert "Sign in with Compte NC Connect" in main and "Cancel and go back to Téléservice de démonstration" in main
    assert not re.search(r"\b(Choisir|Annuler|connecter|Accès rapide)\b", page.locator("body").inner_text())
    page.get_by_role("link", name="Sign in with Compte NC Connect").click()
    citizen.check_page(title="Sign in – NC Connect", h1="Sign in", lang="en")
    page.get_by_role("button", name="Sign in", exact=True).click()  # nothing typed: an error beside each field
    citizen.check_page(title="Error: Sign in – NC Connect", h1="Sign in", lang="en")
    assert page.locator("#email-messages").inner_text().strip() == "Enter your email address."
    assert page.locator("#password-messages").inner_text().strip() == "Enter your password."
    assert page.locator("#erreurs h2").inner_text().strip() == "There are 2 problems:"

    # the language switch, with the keyboard, without JavaScript: a form posted with its CSRF token
    citizen.tab_to("el.tagName === 'BUTTON' && el.lang === 'fr'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    citizen.check_page(title="Connexion – NC Connect", h1="Se connecter", lang="fr")
    assert page.url.startswith(site.broker_url + "/login/local?rid=")  # back to the very form
    citizen.assert_clean()


def test_error_pages_say_what_happened_and_what_to_do(citizen_factory, site):
    citizen = citizen_factory(js=True)
    page = citizen.page
    start_login(citizen, site)
    rid = parse_qs(urlsplit(page.url).query)["rid"][0]

    # a source that does not exist, during a request: the way back to the téléservice
    page.goto(f"{site.broker_url}/login/nowhere?rid={rid}")
    citizen.check_page(title="Moyen de connexion inconnu – NC Connect", h1="Moyen de connexion inconnu")
    assert page.get_by_role("heading", name="Que faire ?").count() == 1
    back = page.get_by_role("link", name="Retourner sur Téléservice de démonstration")
    assert back.get_attribute("href") == site.demo_url + "/"

    # an expired request, an unknown page, an answer from nowhere
    page.goto(f"{site.broker_url}/login?rid=expired")
    citizen.check_page(title="Demande expirée – NC Connect", h1="Demande expirée")
    page.goto(f"{site.broker_url}/nulle-part")
    citizen.check_page(title="Page introuvable – NC Connect", h1="Page introuvable")
    page.goto(f"{site.broker_url}/callback/franceconnect?state=forged&code=whatever")
    citizen.check_page(title="Réponse inattendue – NC Connect", h1="Réponse inattendue")

    # "Qu'est-ce que FranceConnect ?" is a page of the broker
    page.goto(f"{site.broker_url}/franceconnect?rid={rid}")
    citizen.check_page(title="Qu’est-ce que FranceConnect ? – NC Connect", h1="Qu’est-ce que FranceConnect ?")

    # the FranceConnect button starts a FranceConnect login (the upstream is a stand-in here)
    page.goto(f"{site.broker_url}/login?rid={rid}")
    page.locator("a.fr-connect").click()
    page.wait_for_url(re.compile(re.escape(site.franceconnect_url) + r"/authorize\?"))
    sent = parse_qs(urlsplit(page.url).query)
    assert sent["client_id"] == ["nc-connect"] and sent["redirect_uri"] == [f"{site.broker_url}/callback/franceconnect"]
    assert len(sent["state"][0]) >= 22 and sent["nonce"]

    # cancelling goes back to the téléservice, which explains instead of showing an OAuth code alone
    start_login(citizen, site)
    page.get_by_role("button", name="Annuler et retourner sur Téléservice de démonstration").click()
    page.wait_for_url(re.compile(re.escape(site.demo_url) + r"/callback\?"))
    citizen.check_page(title="Connexion non aboutie – Téléservice de démonstration", h1="Connexion non aboutie")
    assert "Vous avez annulé la connexion." in page.locator("main").inner_text()
    citizen.assert_clean(also=(site.franceconnect_url,))


def test_link_and_autopost_pages(citizen_factory, site):
    """Pages reached only through an upstream (linking, SAML POST): rendered by the broker, shown in the browser."""
    from broker.web import page as render, page_title

    rendered = {}
    flask_app = site.app
    with flask_app.test_request_context("/lier?rid=x", base_url=site.broker_url):
        flask_app.preprocess_request()
        rendered["lier"] = render("link.html", title=page_title("Relier votre compte"), rid="",
                                  source_name="FranceConnect", local=site.broker.providers["local"],
                                  sources=[]).get_data(as_text=True)
        rendered["redirection"] = render("autopost.html", title=page_title("Redirection"),
                                         action=f"{UNREACHABLE}/saml/sso",
                                         fields={"SAMLRequest": "PHNhbWxwOkF1dGhuUmVxdWVzdC8+", "RelayState": "x"}
                                         ).get_data(as_text=True)
    citizen = citizen_factory(js=False)
    for name, html in rendered.items():
        url = f"{site.broker_url}/__apercu/{name}"
        citizen.page.route(url, _serving(html))
        citizen.page.goto(url)
        title = {"lier": "Relier votre compte – NC Connect", "redirection": "Redirection – NC Connect"}[name]
        citizen.check_page(title=title)
    citizen.assert_clean()


def _serving(html: str):
    return lambda route: route.fulfill(status=200, body=html, content_type="text/html; charset=utf-8")
