"""The OpenID Connect provider endpoints."""

from flask import Blueprint

blueprint = Blueprint("oidc", __name__)

from broker.oidc import authorize, checktoken, discovery, logout, token, userinfo  # noqa: E402,F401
