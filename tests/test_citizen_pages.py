"""The citizen pages without a browser: the State design system files, the branding from broker.yaml,
languages (ui_locales, the language switch, the catalogue), form errors and error pages.

Checklist E-09 (the language switch is a POST with the CSRF token), E-10 (no GET that changes the
language), E-12 (it comes back to a path of the broker only), E-04/E-06 on the new responses, E-13
(what the language switch reflects is escaped).  The real browser checks are in tests/browser.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.cli import main
from broker.ui import DSFR_DIR, DSFR_VERSION, LANG_COOKIE, dsfr_problem
from tests.conftest import SECRET, Flow, csrf_of, write_config
from tests.test_authorize import login_page

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "broker" / "translations"


@pytest.fixture
def backend() -> str:
    return "sqlite"  # presentation only: the storage backends are tested elsewhere


def require_dsfr() -> None:
    problem = dsfr_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def title_of(response) -> str:
    return re.search(r"<title>(.*?)</title>", response.get_data(as_text=True), re.S).group(1)


def lang_of(response) -> str:
    return re.search(r'<html lang="([a-z]+)">', response.get_data(as_text=True)).group(1)


# -- the State design system -------------------------------------------------------------

def test_dsfr_is_pinned_once():
    package = json.loads((ROOT / "frontend" / "package.json").read_text())
    lock = json.loads((ROOT / "frontend" / "package-lock.json").read_text())
    assert package["dependencies"]["@gouvfr/dsfr"] == DSFR_VERSION
    assert lock["packages"]["node_modules/@gouvfr/dsfr"]["version"] == DSFR_VERSION
    assert re.fullmatch(r"\d+\.\d+\.\d+", package["devDependencies"]["axe-core"])  # pinned, not a range


def test_dsfr_files_are_served_by_the_broker_and_complete(client):
    require_dsfr()
    css = client.get("/static/dsfr/dsfr.min.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert css.headers["X-Content-Type-Options"] == "nosniff"
    referenced = set(re.findall(r"url\(\s*['\"]?(?!data:)([^'\")]+)['\"]?\s*\)", css.get_data(as_text=True)))
    assert any(r.startswith("fonts/Marianne") for r in referenced) and any(r.startswith("icons/") for r in referenced)
    for name in sorted(referenced):
        assert (DSFR_DIR / name).is_file(), f"{name} is referenced by dsfr.min.css but was not copied"
    font = client.get("/static/dsfr/fonts/Marianne-Regular.woff2")
    assert font.status_code == 200 and font.mimetype == "font/woff2"


def test_pages_load_nothing_from_another_site(client):
    require_dsfr()
    html = client.get("/login").get_data(as_text=True)
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', html) == [
        "/static/dsfr/dsfr.min.css", "/static/ncc-dsfr.css", "/marque.css"]
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_serve_refuses_to_start_without_the_dsfr_files(tmp_path, monkeypatch):
    import broker.ui

    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db")
    monkeypatch.setattr(broker.ui, "DSFR_DIR", tmp_path / "nowhere")
    result = CliRunner().invoke(main, ["--config", str(conf), "serve"])
    assert result.exit_code != 0 and "make install" in result.output


# -- branding ------------------------------------------------------------------------------

BRANDING = """branding:
  territory: Province des Îles Loyauté
  service_name: Îles Connect
  tagline: {fr: Le compte des services des Îles, en: One account for the Islands' services}
  operator: Province des Îles Loyauté
  logo: branding/logo.svg
  logo_alt: Province des Îles Loyauté
  header_background: "#000091"
  header_text: "#ffffff"
"""
LOGO = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'


@pytest.fixture
def branded(tmp_path):
    from broker.app import create_app

    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db", extra=BRANDING)
    (conf / "branding").mkdir()
    (conf / "branding" / "logo.svg").write_text(LOGO)
    app = create_app(conf, migrate=True)
    yield app.test_client()
    app.extensions["nc_connect"].engine.dispose()


def test_branding_comes_from_broker_yaml(branded):
    page = branded.get("/")
    html = page.get_data(as_text=True)
    assert title_of(page) == "Îles Connect"
    assert '<p class="fr-header__service-title">Îles Connect</p>' in html
    assert "Le compte des services des Îles" in html and "Opérateur : Province des Îles Loyauté" in html
    assert '<img class="ncc-operator-logo" src="/marque/logo" alt="Province des Îles Loyauté">' in html
    css = branded.get("/marque.css")
    assert css.mimetype == "text/css" and "background-color: #000091; color: #ffffff;" in css.get_data(as_text=True)
    logo = branded.get("/marque/logo")
    assert logo.status_code == 200 and logo.mimetype == "image/svg+xml" and logo.get_data(as_text=True) == LOGO
    assert "sandbox" in logo.headers["Content-Security-Policy"]  # an SVG opened on its own runs nothing
    assert logo.headers["X-Content-Type-Options"] == "nosniff"


def test_default_branding_is_the_government_of_new_caledonia(client):
    html = client.get("/").get_data(as_text=True)
    assert '<p class="ncc-territory">Gouvernement de la Nouvelle-Calédonie</p>' in html
    assert "Le sésame numérique des services publics de Nouvelle-Calédonie" in html
    assert client.get("/marque/logo").status_code == 404


@pytest.mark.parametrize("branding, expected", [
    ("branding: {header_background: '#000091', header_text: '#000000'}", "contrast of 1.41:1"),
    ("branding: {header_text: blue}", "is not a colour written #rrggbb"),
    ("branding: {logo: ../secret.png}", "must be a path inside the configuration directory"),
    ("branding: {logo: /etc/passwd.png}", "must be a path inside the configuration directory"),
    ("branding: {logo: logo.gif}", "must be one of"),
    ("branding: {logo: missing.png}", "branding.logo: file 'missing.png' not found"),
    ("branding: {colour: red}", "branding.colour: unknown key"),
    ("branding: {tagline: {fr: Bonjour, de: Hallo}}", "branding.tagline.de: unknown key"),
])
def test_branding_mistakes_are_reported(tmp_path, branding, expected):
    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db", extra=branding + "\n")
    result = CliRunner().invoke(main, ["--config", str(conf), "check-config"])
    assert result.exit_code == 2 and expected in result.output, result.output


# -- languages -------------------------------------------------------------------------------

@pytest.mark.parametrize("ui_locales, lang", [(None, "fr"), ("en", "en"), ("de en-GB", "en"), ("de", "fr"),
                                               ("fr-FR en", "fr")])
def test_ui_locales_of_the_request_choose_the_language(client, ui_locales, lang):
    page, html, _ = login_page(client, Flow(client), ui_locales=ui_locales)
    assert lang_of(page) == lang
    assert title_of(page) == {"fr": "Connexion – NC Connect", "en": "Sign in – NC Connect"}[lang]


def test_language_switch_is_a_post_with_csrf_that_comes_back_here(client):
    page, html, rid = login_page(client, Flow(client))
    form = re.search(r'<form method="post" action="/langue".*?</form>', html, re.S).group(0)
    back = re.search(r'name="next" value="([^"]+)"', form).group(1)
    assert back == f"/login?rid={rid}" and 'value="en" lang="en"' in form
    assert client.get("/langue").status_code == 405  # E-10: no GET changes anything
    refused = client.post("/langue", data={"lang": "en", "next": back})  # E-09: no token, no change
    assert refused.status_code == 400 and LANG_COOKIE not in refused.headers.get("Set-Cookie", "")
    switched = client.post("/langue", data={"lang": "en", "next": back, "csrf_token": csrf_of(html)})
    assert switched.status_code == 303 and switched.headers["Location"] == back
    cookie = switched.headers["Set-Cookie"]
    assert cookie.startswith(f"{LANG_COOKIE}=en;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert lang_of(client.get(back)) == "en"
    # the citizen's choice wins over the request's ui_locales
    again, _, _ = login_page(client, Flow(client), ui_locales="fr")
    assert lang_of(again) == "en"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
                                    "http:/evil.example", "/\x0d\x0aSet-Cookie:x=1", ""])
def test_language_switch_never_leaves_the_broker(client, target):
    """E-12: the way back is a path of the broker, or its home page."""
    html = client.get("/").get_data(as_text=True)
    response = client.post("/langue", data={"lang": "en", "next": target, "csrf_token": csrf_of(html)})
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_login_page_after_a_post_offers_the_switch_back_to_the_form(client, account):
    page, html, rid = login_page(client, Flow(client))
    failed = client.post("/login", data={"csrf_token": csrf_of(html), "rid": rid, "email": "x@example.nc", "password": "no"})
    back = re.search(r'name="next" value="([^"]+)"', failed.get_data(as_text=True)).group(1)
    assert back == f"/login/local?rid={rid}"


def test_every_message_is_translated_and_the_compiled_catalogue_is_current():
    from babel.messages.extract import extract_from_dir
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    po = read_po((TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po").open("rb"))
    with (TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.mo").open("rb") as f:
        mo = read_mo(f)
    translated = {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in po if m.id and not m.fuzzy}
    def entries(catalog) -> dict:
        frozen = lambda v: v if isinstance(v, str) else tuple(v)  # noqa: E731 - plural forms come as lists
        return {frozen(m.id): frozen(m.string) for m in catalog if m.id and not m.fuzzy}

    assert entries(mo) == entries(po), "messages.mo is not the compilation of messages.po: run make i18n"
    method_map = [("broker/**.py", "python"), ("providers/**.py", "python"), ("broker/templates/**.html", "jinja2"),
                  ("broker/templates/account/email/*.txt", "jinja2")]
    found = set()
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, keywords={
            "_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "N_": None}):
        found.add(message if isinstance(message, str) else message[0])
    missing = sorted(m for m in found if not translated.get(m) or
                     (isinstance(translated[m], tuple) and not all(translated[m])))
    assert missing == [], "untranslated messages (run make i18n and translate them): " + repr(missing)


def test_templates_hold_no_untranslated_french_text():
    """Every sentence of the pages and emails goes through _(): no French text between tags or in a mail."""
    templates = ROOT / "broker" / "templates"
    for path in sorted(templates.glob("**/*.txt")):
        text = re.sub(r"{#.*?#}|{{.*?}}|{%.*?%}", "", path.read_text(encoding="utf-8"), flags=re.S)
        assert re.findall(r"[A-Za-zÀ-ÿ]{2,}", text) == [], f"{path.relative_to(templates)}"
    for path in sorted(templates.glob("**/*.html")):
        text = re.sub(r"{#.*?#}|{{.*?}}|{%.*?%}", "", path.read_text(encoding="utf-8"), flags=re.S)
        words = [w for w in re.findall(r">([^<>]*[A-Za-zÀ-ÿ][^<>]*)<", text)
                 if w.strip() and w.strip() not in ("S’identifier avec", "FranceConnect", "République", "Française",
                                                    "franceconnect.gouv.fr")]
        assert words == [], f"{path.relative_to(templates)}: {words}"


# -- forms and error pages --------------------------------------------------------------------

def test_login_errors_are_beside_each_field_and_in_the_title(client, account):
    page, html, rid = login_page(client, Flow(client))
    empty = client.post("/login", data={"csrf_token": csrf_of(html), "rid": rid, "email": "", "password": ""})
    text = empty.get_data(as_text=True)
    assert title_of(empty) == "Erreur : Connexion – NC Connect"
    for field, message in (("email", "Saisissez votre adresse électronique."), ("password", "Saisissez votre mot de passe.")):
        tag = re.search(rf'<input [^>]*id="{field}"[^>]*>', text).group(0)
        assert 'aria-invalid="true"' in tag and f'aria-describedby="{field}-messages"' in tag
        assert re.search(rf'id="{field}-messages"[^>]*>\s*<p class="fr-message fr-message--error" id="{field}-error">'
                         rf'{re.escape(message)}</p>', text)
        assert f'<a href="#{field}">{message}</a>' in text  # the summary links to the field
    assert "2 erreurs empêchent de continuer" in text
    wrong = client.post("/login", data={"csrf_token": csrf_of(html), "rid": rid, "email": "citoyen@example.nc",
                                        "password": "not the right one"})
    text = wrong.get_data(as_text=True)
    assert 'id="email" name="email" type="email" value="citoyen@example.nc"' in text  # kept
    assert 'id="password" name="password" type="password" autocomplete' in text and "not the right one" not in text


def test_error_page_says_what_to_do_and_leads_back_to_the_teleservice(client):
    response = Flow(client).authorize()
    rid = re.search(r"rid=([^&]+)", response.headers["Location"]).group(1)
    unknown = client.get(f"/login/nowhere?rid={rid}")
    text = unknown.get_data(as_text=True)
    assert unknown.status_code == 404 and title_of(unknown) == "Moyen de connexion inconnu – NC Connect"
    assert "Que faire ?" in text and "Revenez au choix du moyen de connexion" in text
    assert '<a class="fr-btn" href="https://alpha.example.nc/">Retourner sur Service Alpha</a>' in text
    expired = client.get("/login?rid=unknown").get_data(as_text=True)
    assert "Que faire ?" in expired and "Retourner sur" not in expired  # no request, no téléservice known


def test_client_uri_is_the_way_back(tmp_path):
    from broker.app import create_app

    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db")
    with (conf / "clients" / "alpha.yaml").open("a") as f:
        f.write("client_uri: https://alpha.example.nc/accueil\n")
    app = create_app(conf, migrate=True)
    client = app.test_client()
    rid = re.search(r"rid=([^&]+)", Flow(client).authorize().headers["Location"]).group(1)
    assert 'href="https://alpha.example.nc/accueil">Retourner sur Service Alpha' in client.get(
        f"/login/nowhere?rid={rid}").get_data(as_text=True)
    app.extensions["nc_connect"].engine.dispose()


def test_unexpected_error_page_gives_a_reference_and_no_trace(tmp_path):
    from broker.app import create_app

    app = create_app(write_config(tmp_path / "config", database_url="sqlite:///broker.db"), migrate=True)

    def explode():
        raise RuntimeError("secret internals")

    app.add_url_rule("/boom", "boom", explode)
    response = app.test_client().get("/boom")
    text = response.get_data(as_text=True)
    assert response.status_code == 500 and "Erreur technique" in text and "Que faire ?" in text
    assert re.search(r"Référence de l’erreur, à donner si vous contactez le service : [0-9a-f]{16}", text)
    assert "secret internals" not in text and "Traceback" not in text and "RuntimeError" not in text
    app.extensions["nc_connect"].engine.dispose()


def test_authorization_error_page_in_the_requested_language(client):
    response = Flow(client, client_id="nobody").authorize(ui_locales="en")
    assert response.status_code == 400 and lang_of(response) == "en"
    assert title_of(response) == "Invalid sign-in request – NC Connect"
    assert "What can you do?" in response.get_data(as_text=True)


def test_source_page_uses_the_dsfr_franceconnect_button(tmp_path):
    from broker.app import create_app

    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db")
    (conf / "providers" / "fc.yaml").write_text("""type: oidc
name: FranceConnect
button: franceconnect
level: eidas2
mapping: franceconnect.yaml
issuer: https://fc.example
authorization_endpoint: https://fc.example/authorize
token_endpoint: https://fc.example/token
jwks_uri: https://fc.example/jwks
client_id: nc-connect
client_secret: fc-secret-fc-secret-fc-secret-fc-secret
""")
    app = create_app(conf, migrate=True)
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    html = client.get("/login").get_data(as_text=True)
    assert re.search(r'<div class="fr-connect-group">\s*<a class="fr-connect fr-connect--plus" href="/login/fc" lang="fr">'
                     r'\s*<span class="fr-connect__login">S’identifier avec</span>\s*'
                     r'<span class="fr-connect__brand">FranceConnect</span>\s*</a>\s*'
                     r'<p><a href="/franceconnect">Qu’est-ce que FranceConnect \?</a></p>', html)
    assert '<a class="fr-btn fr-btn--secondary ncc-source__button" href="/login/local">Se connecter avec Compte NC Connect</a>' in html
    about = client.get("/franceconnect")
    assert about.status_code == 200 and 'href="https://franceconnect.gouv.fr/" rel="noopener noreferrer"' in about.get_data(as_text=True)
    app.extensions["nc_connect"].engine.dispose()


def test_names_and_descriptions_from_the_config_files_follow_the_language(tmp_path):
    """A source's and a téléservice's name and description come in English from their ``translations``."""
    from broker.app import create_app

    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db", clients={"impots": f"""
consent: implied
name: Impôts en ligne
translations: {{en: {{name: Online tax return}}}}
redirect_uris: [https://impots.example.nc/cb]
client_secret: {SECRET}
"""})
    (conf / "providers" / "local.yaml").write_text("""type: local
name: Compte NC Connect
description: Adresse électronique et mot de passe
translations:
  en: {name: NC Connect account, description: Email address and password}
mapping: local.yaml
""")
    (conf / "providers" / "agents.yaml").write_text("""type: oidc
name: Annuaire des agents
description: Votre compte d’agent
mapping: franceconnect.yaml
issuer: https://agents.example
authorization_endpoint: https://agents.example/authorize
token_endpoint: https://agents.example/token
jwks_uri: https://agents.example/jwks
client_id: nc-connect
client_secret: agents-secret-agents-secret-agents-secret
""")
    app = create_app(conf, migrate=True)
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    for lang, texts in (("fr", ["Se connecter avec Compte NC Connect", "Adresse électronique et mot de passe",
                                "Pour accéder au service Impôts en ligne"]),
                        ("en", ["Sign in with NC Connect account", "Email address and password",
                                "To use Online tax return", "Sign in with Annuaire des agents"])):
        choose = client.get(Flow(client, client_id="impots", redirect_uri="https://impots.example.nc/cb")
                            .authorize(ui_locales=lang).headers["Location"])
        html = choose.get_data(as_text=True)
        assert lang_of(choose) == lang
        for text in texts:
            assert text in html, (lang, text)
    app.extensions["nc_connect"].engine.dispose()
