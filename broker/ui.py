"""The citizen pages' presentation: the State design system (DSFR), the territory's branding, languages.

- The DSFR files (CSS, fonts, icons; pinned in frontend/package-lock.json) are copied into
  ``broker/static/dsfr/`` by ``scripts/install-frontend`` (``make install``) and served from
  ``/static/dsfr/``: no CDN, no third-party request from any page.
- The branding (``branding:`` in broker.yaml) gives the header and footer their names, logo and
  colours; the colours reach the pages through ``/marque.css`` because the CSP allows no inline style.
- Languages (Flask-Babel): French by default, English available.  The language is, in order, the
  citizen's choice (the language switch, a cookie), the ``ui_locales`` of the authorization request
  being served, and French.  The browser's Accept-Language is not used: the pages are French first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Flask, Response, g, has_request_context, redirect, request, send_file, url_for
from flask_babel import Babel, get_locale, lazy_gettext

log = logging.getLogger("nc_connect.ui")

DSFR_VERSION = "1.15.3"  # the version pinned in frontend/package.json (a test keeps them equal)
STATIC = Path(__file__).resolve().parent / "static"
DSFR_DIR = STATIC / "dsfr"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
LANGUAGES = {"fr": "Français", "en": "English"}
# The Babel locale of each language, for dates: British English puts the day first, like French does.
LOCALES = {"fr": "fr", "en": "en_GB"}
DEFAULT_LANGUAGE = "fr"
LANG_COOKIE = "ncc_lang"

blueprint = Blueprint("ui", __name__)
babel = Babel()


def N_(message: str) -> str:
    """Mark a message for extraction without translating it here (translated where it is shown)."""
    return message


def dsfr_problem() -> str | None:
    """Why the DSFR files cannot be served, or None when they are in place."""
    version_file = DSFR_DIR / "VERSION"
    if not (DSFR_DIR / "dsfr.min.css").is_file() or not version_file.is_file():
        return (f"the State design system files are missing from {DSFR_DIR}: run `make install` "
                "(or scripts/install-frontend: npm ci in frontend/, then the copy to broker/static/dsfr)")
    found = version_file.read_text().strip()
    if found != DSFR_VERSION:
        return f"{DSFR_DIR} holds DSFR {found}, NC Connect expects {DSFR_VERSION}: run scripts/install-frontend"
    return None


# -- the language -----------------------------------------------------------

def ui_locales_language(value: str | None) -> str | None:
    """The first supported language of a space-separated list of BCP 47 tags (OIDC ``ui_locales``)."""
    for tag in (value or "").split()[:10]:
        primary = tag.split("-")[0].lower()
        if primary in LANGUAGES:
            return primary
    return None


def _pending_ui_locales() -> str | None:
    from broker.oidc.authorize import pending_request

    if "browser" not in g:
        return None
    rid = g.get("rid") or request.args.get("rid") or (request.form.get("rid") if request.method == "POST" else None)
    if rid:
        req = pending_request(str(rid)[:100])
        if req is not None:
            return req.ui_locales
    if request.endpoint == "oidc.authorize":  # an error page of the authorization request itself
        return request.values.get("ui_locales")
    return None


def select_language() -> str:
    """The Babel locale of the page: the citizen's choice, else the request's ``ui_locales``, else French
    (also outside a request: an email sent by a command, a background job)."""
    if not has_request_context():
        return LOCALES[DEFAULT_LANGUAGE]
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen not in LANGUAGES:
        chosen = ui_locales_language(_pending_ui_locales()) or DEFAULT_LANGUAGE
    return LOCALES[chosen]


def current_language() -> str:
    locale = get_locale()
    return locale.language if locale is not None and locale.language in LANGUAGES else DEFAULT_LANGUAGE


def safe_return_path(value: str | None) -> str:
    """A path on this site only (checklist E-12): no scheme, no host, no ``//`` or backslash tricks."""
    value = (value or "").strip()
    parts = urlsplit(value)
    if (not value.startswith("/") or value.startswith("//") or "\\" in value or parts.scheme or parts.netloc
            or any(ord(c) < 32 for c in value) or len(value) > 2000):
        return url_for("pages.home")
    return value


def here() -> str:
    """This page's address, for the language switch to come back to (a POST comes back to its GET)."""
    if request.method == "GET":
        return request.full_path.rstrip("?")
    rid = request.form.get("rid") or g.get("rid")
    if request.endpoint == "pages.login_submit":  # the password form is shown by GET /login/<local source>
        from broker.pages import local_provider

        provider = local_provider()
        if provider is not None:
            return url_for("pages.login_with", provider_id=provider.provider_id, rid=rid or None)
    return request.path + ("?" + urlencode({"rid": rid}) if rid else "")


@blueprint.route("/langue", methods=["POST"])
def switch_language() -> Response:
    from broker.app import current_broker
    from broker.web import csrf_valid, error_page

    lang = request.form.get("lang", "")
    if not csrf_valid() or lang not in LANGUAGES:
        return error_page(lazy_gettext("Page expirée"),
                          lazy_gettext("La page a expiré avant le changement de langue. Revenez à la page précédente "
                                       "et choisissez à nouveau la langue."), 400)
    response = redirect(safe_return_path(request.form.get("next")), code=303)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Lax", path="/",
                        secure=current_broker().config.broker.secure_cookies)
    return response


# -- branding ---------------------------------------------------------------

@blueprint.route("/marque.css")
def brand_css() -> Response:
    """The header colours from broker.yaml (a stylesheet from 'self': the CSP forbids inline styles)."""
    from broker.app import current_broker

    b = current_broker().config.broker.branding
    css = (f".ncc-header .fr-header__body {{ background-color: {b.header_background}; color: {b.header_text}; }}\n"
           f".ncc-header .fr-header__body a, .ncc-header .fr-header__service-title, "
           f".ncc-header .fr-header__service-tagline, .ncc-header .ncc-territory, .ncc-header .fr-logo "
           f"{{ color: {b.header_text}; }}\n"
           f".ncc-header .fr-header__body a:focus-visible, .ncc-header .fr-header__body button:focus-visible "
           f"{{ outline-color: {b.header_text}; }}\n")
    return Response(css, mimetype="text/css", headers={"Cache-Control": "public, max-age=3600"})


@blueprint.route("/marque/logo")
def brand_logo() -> Response:
    from broker.app import current_broker
    from broker.config import LOGO_TYPES

    config = current_broker().config
    logo = config.broker.branding.logo
    if not logo:
        return Response("not found", status=404, mimetype="text/plain")
    path = config.path(logo)
    response = send_file(path, mimetype=LOGO_TYPES[path.suffix.lower()], max_age=3600)
    if path.suffix.lower() == ".svg":  # an SVG opened on its own runs no script
        response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response


@blueprint.route("/franceconnect")
def about_franceconnect() -> Response:
    """"Qu'est-ce que FranceConnect ?", kept on the broker: the login pages link to no other site (E-05)."""
    from broker.web import page, page_title

    rid = request.args.get("rid", "")[:100]
    return page("franceconnect.html", title=page_title(lazy_gettext("Qu’est-ce que FranceConnect ?")), rid=rid)


@blueprint.route("/aide")
def help_page() -> Response:
    """The support link, one step away from the login page (which links to no other site, E-05)."""
    from broker.web import page, page_title

    rid = request.args.get("rid", "")[:100]
    return page("help.html", title=page_title(lazy_gettext("Aide")), rid=rid)


LEVEL_NAMES = {"eidas1": N_("faible (eIDAS 1)"), "eidas2": N_("substantiel (eIDAS 2)"), "eidas3": N_("élevé (eIDAS 3)")}


def level_name(acr: str | None) -> str:
    from flask_babel import gettext

    return gettext(LEVEL_NAMES[acr]) if acr in LEVEL_NAMES else (acr or "")


def localized(item, field: str = "name") -> str:
    """A téléservice's or identity source's ``name`` (or ``description``) in the page's language, from the
    ``translations`` of its config file; French, the config files' language, otherwise.  ``item`` is the
    settings of a client or a provider, or a provider plugin (looked up by its ``provider_id``)."""
    from broker.app import current_broker

    settings = item
    if not hasattr(item, "translations") and hasattr(item, "provider_id"):
        settings = current_broker().config.providers.get(item.provider_id, item)
    translation = getattr(settings, "translations", {}).get(current_language())
    return getattr(translation, field, None) or getattr(item, field)


def client_home(client) -> str:
    """The téléservice's home page: its ``client_uri``, else the origin of its first redirect URI."""
    if client.client_uri:
        return client.client_uri
    parts = urlsplit(client.redirect_uris[0])
    return f"{parts.scheme}://{parts.netloc}/"


def init_app(app: Flask) -> None:
    from broker.app import current_broker

    app.config.update(BABEL_DEFAULT_LOCALE=DEFAULT_LANGUAGE, BABEL_DEFAULT_TIMEZONE="Pacific/Noumea",
                      BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS))
    babel.init_app(app, locale_selector=select_language)
    app.register_blueprint(blueprint)
    app.jinja_env.filters["level_name"] = level_name
    app.jinja_env.filters["localized"] = localized
    problem = dsfr_problem()
    if problem:
        log.error("citizen pages will have no style: %s", problem)

    @app.context_processor
    def _presentation() -> dict:
        branding = current_broker().config.broker.branding
        lang = current_language()
        return {"brand": branding, "brand_tagline": branding.tagline.get(lang), "lang": lang,
                "languages": LANGUAGES, "here": here()}
