"""A demo téléservice: "Se connecter avec NC Connect", then the claims received.

It is written the way a téléservice developer would: plain HTTP calls and
joserfc to check the ID token, no code shared with the broker.  Configuration
from the environment: NC_ISSUER (default http://localhost:8000), DEMO_CLIENT_ID,
DEMO_CLIENT_SECRET, DEMO_PORT (default 8001), DEMO_DATA_PROVIDER (default
http://localhost:8002, the demo data provider it calls with the citizen's access token),
DEMO_DSFR_DIR (default: the broker's copy of the State design system, broker/static/dsfr).

Its pages use the State design system (DSFR) too, served from this service itself, under a
strict CSP; they work without JavaScript.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import secrets
import time
from datetime import date
from pathlib import Path

import requests
from babel.dates import format_date
from flask import Flask, redirect, request, send_from_directory, session
from joserfc import jwt
from joserfc.jwk import KeySet

ISSUER = os.environ.get("NC_ISSUER", "http://localhost:8000")
CLIENT_ID = os.environ.get("DEMO_CLIENT_ID", "demo")
CLIENT_SECRET = os.environ.get("DEMO_CLIENT_SECRET", "demo-secret-for-localhost-only-0123456789")
PORT = int(os.environ.get("DEMO_PORT", "8001"))
BASE = f"http://localhost:{PORT}"
DATA_PROVIDER = os.environ.get("DEMO_DATA_PROVIDER", "http://localhost:8002")
DSFR_DIR = Path(os.environ.get("DEMO_DSFR_DIR", Path(__file__).resolve().parent.parent / "broker" / "static" / "dsfr"))
# What the citizen reads when the login did not succeed, for each OAuth error (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6)
ERRORS = {
    "access_denied": ("Vous avez annulé la connexion.", "Vous pouvez vous reconnecter quand vous le souhaitez."),
    "login_required": ("Vous n'êtes pas connecté à NC Connect.", "Cliquez sur « Se connecter avec NC Connect »."),
    "unmet_authentication_requirements": (
        "Le moyen de connexion utilisé n'offre pas le niveau de sécurité demandé par ce service.",
        "Reconnectez-vous avec un moyen de connexion plus sûr, par exemple avec la double authentification."),
    "temporarily_unavailable": ("NC Connect est momentanément indisponible.", "Réessayez dans quelques minutes."),
}
UNKNOWN_ERROR = ("La connexion n'a pas abouti.", "Réessayez. Si le problème continue, contactez le support du service.")

app = Flask(__name__)
app.secret_key = secrets.token_bytes(32)
app.config.update(SESSION_COOKIE_NAME="demo_session", SESSION_COOKIE_SAMESITE="Lax")


def metadata() -> dict:
    return requests.get(ISSUER + "/.well-known/openid-configuration", timeout=5).json()


def page(body: str, title: str = "Accueil", status: int = 200):
    """A DSFR page: skip link, header, main, footer; no inline style or script (CSP below)."""
    return ("<!DOCTYPE html><html lang='fr'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)} – Téléservice de démonstration</title>"
            "<link rel='stylesheet' href='/dsfr/dsfr.min.css'></head><body>"
            "<div class='fr-skiplinks'><nav class='fr-container' role='navigation' aria-label='Accès rapide'>"
            "<ul class='fr-skiplinks__list'><li><a class='fr-link' href='#contenu'>Contenu</a></li></ul></nav></div>"
            "<header role='banner' class='fr-header'><div class='fr-header__body'><div class='fr-container'>"
            "<div class='fr-header__body-row'><div class='fr-header__brand fr-enlarge-link'>"
            "<div class='fr-header__service'><a href='/' title='Accueil – Téléservice de démonstration'>"
            "<p class='fr-header__service-title'>Téléservice de démonstration</p></a>"
            "<p class='fr-header__service-tagline'>Un service en ligne qui utilise NC Connect</p></div>"
            "</div></div></div></div></header>"
            "<main id='contenu' role='main' tabindex='-1' class='fr-container fr-pt-4w fr-pb-8w'>"
            "<div class='fr-grid-row fr-grid-row--center'><div class='fr-col-12 fr-col-md-10 fr-col-lg-8'>"
            f"{body}</div></div></main>"
            "<footer class='fr-footer' role='contentinfo'><div class='fr-container'><div class='fr-footer__bottom'>"
            "<div class='fr-footer__bottom-copy'><p>Démonstration de NC Connect. Aucune donnée réelle.</p></div>"
            "</div></div></footer></body></html>"), status


@app.after_request
def security_headers(response):
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
            f"base-uri 'none'; frame-ancestors 'none'; form-action 'self' {ISSUER}")
        response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


@app.get("/dsfr/<path:name>")
def dsfr(name: str):
    return send_from_directory(DSFR_DIR, name, max_age=3600)


def failed(title: str, message: str, advice: str, code: str | None = None, status: int = 400):
    """What happened, what to do, and the technical code only as an aside."""
    aside = f"<p class='fr-text--sm'>Code technique : {html.escape(code)}</p>" if code else ""
    return page(f"<h1>{html.escape(title)}</h1><p class='fr-text--lead'>{html.escape(message)}</p>"
                f"<h2 class='fr-h5'>Que faire ?</h2><p>{html.escape(advice)}</p>{aside}"
                "<p><a class='fr-btn' href='/'>Retour à l'accueil du service</a></p>", title, status)


def identity_rows(claims: dict) -> str:
    info = {**claims.get("id_token", {}), **claims.get("userinfo", {})}
    born = info.get("birthdate")
    try:
        born = format_date(date.fromisoformat(born), "long", locale="fr_FR") if born else None
    except ValueError:
        pass
    rows = [("Prénoms", info.get("given_name")), ("Nom de naissance", info.get("family_name")),
            ("Date de naissance", born), ("Adresse électronique", info.get("email"))]
    return "".join(f"<tr><th scope='row'>{label}</th><td>{html.escape(str(value))}</td></tr>"
                   for label, value in rows if value)


@app.get("/")
def home():
    claims = session.get("claims")
    if not claims:
        return page("<h1>Téléservice de démonstration</h1>"
                    "<p class='fr-text--lead'>Ce service utilise NC Connect pour vous identifier : un seul compte "
                    "pour tous les services publics en ligne de Nouvelle-Calédonie.</p>"
                    "<form method='post' action='/login'>"
                    "<div class='fr-select-group'><label class='fr-label' for='ui_locales'>Langue des pages de "
                    "connexion</label><select class='fr-select' id='ui_locales' name='ui_locales'>"
                    "<option value='fr' selected>Français</option><option value='en' lang='en'>English</option>"
                    "</select></div>"
                    "<button type='submit' class='fr-btn'>Se connecter avec NC Connect</button></form>")
    return page("<h1>Vous êtes connecté</h1>"
                "<p class='fr-text--lead'>Voici les informations transmises par NC Connect.</p>"
                "<div class='fr-table'><table><caption>Votre identité</caption>"
                f"<tbody>{identity_rows(claims)}</tbody></table></div>"
                "<details class='fr-mb-4w'><summary>Toutes les données reçues (jeton d'identité et userinfo)</summary>"
                f"<pre>{html.escape(json.dumps(claims, indent=2, ensure_ascii=False))}</pre></details>"
                "<p>Avec votre jeton d'accès, ce service a demandé votre quotient familial au fournisseur de "
                "données, qui l'a fait vérifier par NC Connect :</p>"
                f"<pre>{html.escape(json.dumps(session.get('household'), indent=2, ensure_ascii=False))}</pre>"
                "<form method='post' action='/logout'><button type='submit' class='fr-btn fr-btn--secondary'>"
                "Se déconnecter</button></form>", "Vous êtes connecté")


@app.post("/login")
def login():
    verifier = secrets.token_urlsafe(48)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    session.update(verifier=verifier, state=state, nonce=nonce)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": BASE + "/callback",
              "scope": "openid profile email birth", "state": state, "nonce": nonce,
              "code_challenge": challenge, "code_challenge_method": "S256"}
    if request.form.get("ui_locales") in ("fr", "en"):
        params["ui_locales"] = request.form["ui_locales"]
    return redirect(metadata()["authorization_endpoint"] + "?" + requests.compat.urlencode(params), code=303)


@app.get("/callback")
def callback():
    if request.args.get("state") != session.pop("state", None) or request.args.get("iss") != ISSUER:
        return failed("Connexion interrompue", "La réponse reçue ne correspond à aucune connexion en cours.",
                      "Recommencez la connexion depuis l'accueil du service.")
    if "error" in request.args:
        message, advice = ERRORS.get(request.args["error"], UNKNOWN_ERROR)
        return failed("Connexion non aboutie", message, advice, code=request.args["error"][:60])
    meta = metadata()
    tokens = requests.post(meta["token_endpoint"], auth=(CLIENT_ID, CLIENT_SECRET), timeout=5, data={
        "grant_type": "authorization_code", "code": request.args["code"], "redirect_uri": BASE + "/callback",
        "code_verifier": session.pop("verifier", ""),
    }).json()
    if "id_token" not in tokens:
        return failed("Connexion non aboutie", "NC Connect n'a pas confirmé la connexion.",
                      "Recommencez la connexion depuis l'accueil du service.", code=str(tokens.get("error"))[:60], status=502)
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    id_claims = jwt.decode(tokens["id_token"], keys, algorithms=["ES256", "RS256"]).claims
    if (id_claims["iss"] != ISSUER or id_claims["aud"] != CLIENT_ID or id_claims["exp"] < time.time()
            or id_claims.get("nonce") != session.pop("nonce", None)):
        return failed("Connexion non aboutie", "L'identité transmise n'a pas pu être vérifiée.",
                      "Recommencez la connexion depuis l'accueil du service.")
    userinfo = requests.get(meta["userinfo_endpoint"], timeout=5,
                            headers={"Authorization": "Bearer " + tokens["access_token"]}).json()
    session["id_token"] = tokens["id_token"]
    session["household"] = household(tokens["access_token"])
    session["claims"] = {"id_token": id_claims, "userinfo": userinfo}
    return redirect("/", code=303)


def household(access_token: str) -> dict:
    """Data exchange between administrations: the data provider checks the token at NC Connect."""
    try:
        response = requests.get(DATA_PROVIDER + "/api/foyer", timeout=10,
                                headers={"Authorization": "Bearer " + access_token})
        return {"status": response.status_code, **response.json()}
    except (requests.RequestException, ValueError) as exc:
        return {"error": f"fournisseur de données injoignable ({type(exc).__name__})"}


@app.post("/logout")
def logout():
    id_token = session.get("id_token", "")
    session.clear()
    state = secrets.token_urlsafe(16)
    params = {"id_token_hint": id_token, "post_logout_redirect_uri": BASE + "/", "state": state}
    return redirect(metadata()["end_session_endpoint"] + "?" + requests.compat.urlencode(params), code=303)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT)
