"""A demo data provider (fournisseur de données): the "quotient familial" of a tax household.

A téléservice that the citizen logged in to through NC Connect calls this service with
the citizen's access token (``Authorization: Bearer …``).  The data provider never trusts
the token by itself: it asks NC Connect at ``<issuer>/checktoken`` (FranceConnect v2,
RFC 9701) with its own credentials, verifies the signed answer against NC Connect's
JWKS (``typ``, ``iss``, ``aud``, ``iat``) and answers only when the token is active, was
issued to a téléservice it serves and carries the scopes it needs.  It sees the citizen's
identity only as far as its scopes allow (``profile`` and ``birth``: no email), and a
``sub`` of its own.

Written the way an administration's developer would: plain HTTP and joserfc, no code
shared with the broker.  Configuration from the environment: NC_ISSUER (default
http://localhost:8000), FOYER_CLIENT_ID, FOYER_CLIENT_SECRET, FOYER_PORT (default 8002),
FOYER_SERVED_CLIENTS (comma-separated téléservice client ids, default ``demo``).
"""

from __future__ import annotations

import os
import time

import requests
from flask import Flask, jsonify, request
from joserfc import jwt
from joserfc.jwk import KeySet

ISSUER = os.environ.get("NC_ISSUER", "http://localhost:8000")
CLIENT_ID = os.environ.get("FOYER_CLIENT_ID", "demo-foyer")
CLIENT_SECRET = os.environ.get("FOYER_CLIENT_SECRET", "demo-foyer-secret-for-localhost-only-01234")
PORT = int(os.environ.get("FOYER_PORT", "8002"))
SERVED_CLIENTS = set(os.environ.get("FOYER_SERVED_CLIENTS", "demo").split(","))
NEEDED_SCOPES = {"profile", "birth"}

# The tax households this demo knows, by (family name, birth date, birthplace).
HOUSEHOLDS = {
    ("WAMYTAN", "1990-04-12", "98818"): {
        "numero_fiscal": "9880012345678", "annee_revenus": 2025, "nombre_de_parts": 2.5,
        "revenu_fiscal_de_reference": 3_150_000, "quotient_familial": 1_260_000, "devise": "XPF",
        "personnes_a_charge": 2,
    },
}

app = Flask(__name__)


class CheckFailed(Exception):
    pass


def checktoken(token: str) -> dict:
    """Ask NC Connect about the token; return ``token_introspection`` after verifying the answer."""
    response = requests.post(ISSUER + "/checktoken", timeout=5,
                             data={"token": token, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    if response.status_code != 200:
        raise CheckFailed(f"checktoken answered {response.status_code}")
    if response.headers.get("Content-Type", "").split(";")[0] != "application/token-introspection+jwt":
        raise CheckFailed("checktoken did not answer a JWT introspection response")
    meta = requests.get(ISSUER + "/.well-known/openid-configuration", timeout=5).json()
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=5).json())
    try:
        answer = jwt.decode(response.text, keys, algorithms=["ES256", "RS256"])
    except Exception as exc:  # noqa: BLE001 - any decoding problem means: do not trust it
        raise CheckFailed(f"the checktoken answer is not validly signed: {exc}") from None
    claims = answer.claims
    if (answer.header.get("typ") != "token-introspection+jwt" or claims.get("iss") != ISSUER
            or claims.get("aud") != CLIENT_ID or abs(time.time() - claims.get("iat", 0)) > 60):
        raise CheckFailed("the checktoken answer is not meant for this data provider")
    return claims["token_introspection"]


def error(status: int, code: str, message: str):
    response = jsonify({"error": code, "error_description": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer error="{code}"'
    return response


@app.get("/")
def home():
    return ("<!DOCTYPE html><html lang='fr'><meta charset='utf-8'><title>Quotient familial (démo)</title>"
            "<h1>Quotient familial – fournisseur de données de démonstration</h1>"
            "<p>API : <code>GET /api/foyer</code> avec <code>Authorization: Bearer &lt;jeton d'accès NC Connect&gt;</code>."
            "</p></html>")


@app.get("/api/foyer")
def foyer():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error(401, "invalid_request", "jeton d'accès manquant")
    try:
        info = checktoken(token.strip())
    except (CheckFailed, requests.RequestException, ValueError) as exc:
        app.logger.warning("checktoken failed: %s", exc)
        return error(502, "temporarily_unavailable", "NC Connect n'a pas pu vérifier le jeton")
    if not info.get("active"):
        return error(401, "invalid_token", "jeton inconnu, expiré ou révoqué")
    if info.get("aud") not in SERVED_CLIENTS:
        return error(403, "access_denied", "ce téléservice n'est pas habilité")
    if not NEEDED_SCOPES <= set(info.get("scope", "").split()):
        return error(403, "insufficient_scope", "le citoyen n'a pas transmis son identité à ce téléservice")
    key = (info.get("family_name", "").upper(), info.get("birthdate"), info.get("birthplace"))
    household = HOUSEHOLDS.get(key)
    answer = {
        "demandeur": info["aud"],
        "usager": {"sub": info["sub"], "niveau": info.get("acr")},
        "foyer_fiscal": household,
    }
    if household is None:
        answer["message"] = "Aucun foyer fiscal connu pour cette identité."
    return jsonify(answer)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT)
