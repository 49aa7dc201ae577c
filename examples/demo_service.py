"""A demo téléservice: "Se connecter avec NC Connect", then the claims received.

It is written the way a téléservice developer would: plain HTTP calls and
joserfc to check the ID token, no code shared with the broker.  Configuration
from the environment: NC_ISSUER (default http://localhost:8000), DEMO_CLIENT_ID,
DEMO_CLIENT_SECRET, DEMO_PORT (default 8001).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import secrets
import time

import requests
from flask import Flask, abort, redirect, request, session
from joserfc import jwt
from joserfc.jwk import KeySet

ISSUER = os.environ.get("NC_ISSUER", "http://localhost:8000")
CLIENT_ID = os.environ.get("DEMO_CLIENT_ID", "demo")
CLIENT_SECRET = os.environ.get("DEMO_CLIENT_SECRET", "demo-secret-for-localhost-only-0123456789")
PORT = int(os.environ.get("DEMO_PORT", "8001"))
BASE = f"http://localhost:{PORT}"

app = Flask(__name__)
app.secret_key = secrets.token_bytes(32)
app.config.update(SESSION_COOKIE_NAME="demo_session", SESSION_COOKIE_SAMESITE="Lax")


def metadata() -> dict:
    return requests.get(ISSUER + "/.well-known/openid-configuration", timeout=5).json()


def page(body: str) -> str:
    return ("<!DOCTYPE html><html lang='fr'><head><meta charset='utf-8'><title>Téléservice de démonstration</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
            "button{background:#000091;color:#fff;border:0;padding:.7rem 1.2rem;font-size:1rem;border-radius:4px}"
            "pre{background:#f6f6f6;padding:1rem;overflow:auto}</style></head><body>"
            f"<h1>Téléservice de démonstration</h1>{body}</body></html>")


@app.get("/")
def home():
    claims = session.get("claims")
    if not claims:
        return page("<p>Ce service utilise NC Connect pour vous identifier.</p>"
                    "<form method='post' action='/login'><button type='submit'>Se connecter avec NC Connect</button></form>")
    return page("<p>Vous êtes connecté. Voici les informations transmises par NC Connect :</p>"
                f"<pre>{html.escape(json.dumps(claims, indent=2, ensure_ascii=False))}</pre>"
                "<form method='post' action='/logout'><button type='submit'>Se déconnecter</button></form>")


@app.post("/login")
def login():
    verifier = secrets.token_urlsafe(48)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    session.update(verifier=verifier, state=state, nonce=nonce)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": BASE + "/callback",
              "scope": "openid profile email birth", "state": state, "nonce": nonce,
              "code_challenge": challenge, "code_challenge_method": "S256"}
    return redirect(metadata()["authorization_endpoint"] + "?" + requests.compat.urlencode(params), code=303)


@app.get("/callback")
def callback():
    if request.args.get("state") != session.pop("state", None) or request.args.get("iss") != ISSUER:
        abort(400, "state or iss mismatch")
    if "error" in request.args:
        return page(f"<p>Connexion refusée : {html.escape(request.args.get('error_description', request.args['error']))}</p>"
                    "<p><a href='/'>Retour</a></p>")
    meta = metadata()
    tokens = requests.post(meta["token_endpoint"], auth=(CLIENT_ID, CLIENT_SECRET), timeout=5, data={
        "grant_type": "authorization_code", "code": request.args["code"], "redirect_uri": BASE + "/callback",
        "code_verifier": session.pop("verifier", ""),
    }).json()
    if "id_token" not in tokens:
        abort(502, tokens.get("error_description", "token request failed"))
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    id_claims = jwt.decode(tokens["id_token"], keys, algorithms=["ES256", "RS256"]).claims
    if (id_claims["iss"] != ISSUER or id_claims["aud"] != CLIENT_ID or id_claims["exp"] < time.time()
            or id_claims.get("nonce") != session.pop("nonce", None)):
        abort(400, "invalid ID token")
    userinfo = requests.get(meta["userinfo_endpoint"], timeout=5,
                            headers={"Authorization": "Bearer " + tokens["access_token"]}).json()
    session["id_token"] = tokens["id_token"]
    session["claims"] = {"id_token": id_claims, "userinfo": userinfo}
    return redirect("/", code=303)


@app.post("/logout")
def logout():
    id_token = session.get("id_token", "")
    session.clear()
    state = secrets.token_urlsafe(16)
    params = {"id_token_hint": id_token, "post_logout_redirect_uri": BASE + "/", "state": state}
    return redirect(metadata()["end_session_endpoint"] + "?" + requests.compat.urlencode(params), code=303)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT)
