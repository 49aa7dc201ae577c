"""Sources that answer by a cross-site POST to the callback (SAML HTTP-POST binding).

A POST from the IdP's site carries no ``SameSite=Lax`` cookie, so the citizen's
session is invisible there.  The broker does not weaken the session cookie (E-07);
it uses a separate one (checklist E-08):

1. ``bind`` (at :func:`broker.upstream.begin`): the transaction is kept both in the
   session, as for any source, and in the ephemeral store under the hash of a fresh
   random key; the key goes into ``ncc_upstream_tx`` (``__Secure-`` when cookies are
   secure): ``HttpOnly``, ``Secure; SameSite=None`` (``Lax`` on a plain-http loopback
   issuer, where browsers refuse ``None`` without ``Secure``), ``Path=/callback/<id>``,
   as long-lived as a login transaction.
2. ``receive`` (``POST /callback/<id>``): the cookie's transaction is consumed (single
   use) and must carry the posted ``RelayState``; the provider validates the message
   against the AuthnRequest ID it holds; the one-time identifier of the message is
   recorded (a replay is refused, C-11).  The verified identity is parked under the
   hash of a new random key, which replaces the cookie's value, and the browser is
   sent by a 303 to ``GET /callback/<id>``: a top-level GET, so the Lax session
   cookie comes along.
3. ``resume`` (``GET /callback/<id>``): the parked identity is consumed, the session
   must hold the same transaction (same ``state``: the login ends in the browser
   session that started it), and the login finishes as for any source.  The cookie
   is deleted.

Unsolicited (IdP-initiated) responses reach step 2 without a transaction; the
provider refuses them unless its configuration allows them, and they finish without
a pending authorization request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

from flask import Response, redirect, request, url_for
from flask_babel import gettext

from broker.app import current_broker
from broker.web import browser, error_page
from providers.base import N_, LoginRequest, UpstreamError, UpstreamIdentity

log = logging.getLogger("nc_connect.upstream")
audit = logging.getLogger("nc_connect.audit")
RESULT_TTL = 120  # seconds between the verified POST and the GET that finishes the login
REPLAYED = N_("Cette réponse du fournisseur d'identité a déjà été utilisée. Recommencez la connexion.")


def cookie_name() -> str:
    return "__Secure-ncc_upstream_tx" if current_broker().config.broker.secure_cookies else "ncc_upstream_tx"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _set_cookie(response: Response, provider_id: str, value: str, max_age: int) -> None:
    secure = current_broker().config.broker.secure_cookies
    response.set_cookie(cookie_name(), value, max_age=max_age, path=f"/callback/{provider_id}", secure=secure,
                        httponly=True, samesite="None" if secure else "Lax")


def _drop_cookie(response: Response, provider_id: str) -> Response:
    secure = current_broker().config.broker.secure_cookies
    response.delete_cookie(cookie_name(), path=f"/callback/{provider_id}", secure=secure, httponly=True,
                           samesite="None" if secure else "Lax")
    return response


def bind(response: Response, provider_id: str, state: str, transaction: dict[str, Any]) -> Response:
    """Step 1: the transaction reachable from the cross-site POST through its own cookie."""
    broker = current_broker()
    ttl = broker.config.broker.lifetimes.login_transaction
    key = secrets.token_urlsafe(32)
    broker.store.put("uptx:" + _digest(key), {"state": state, **transaction}, ttl)
    _set_cookie(response, provider_id, key, ttl)
    return response


def _refused(provider_id: str, exc: UpstreamError) -> Response:
    from broker.upstream import upstream_failure

    audit.warning("upstream response refused source=%s reason=%s", provider_id, exc.detail or exc.message)
    return _drop_cookie(upstream_failure(provider_id, exc), provider_id)


def _unexpected(provider_id: str, reason: str) -> Response:
    log.warning("upstream callback refused for %s: %s", provider_id, reason)
    audit.warning("upstream response refused source=%s reason=%s", provider_id, reason)
    page = error_page(gettext("Réponse inattendue"),
                      gettext("La réponse du fournisseur d'identité ne correspond à aucune connexion en cours "
                              "dans ce navigateur."), 400,
                      advice=gettext("Retournez sur le site du service et recommencez."))
    return _drop_cookie(page, provider_id)


def receive(provider) -> Response:
    """Step 2: ``POST /callback/<id>``: find the transaction by cookie, validate, park the identity."""
    broker = current_broker()
    pid = provider.provider_id
    params = {k: v for k, v in request.form.items()}
    relay_state = params.get("RelayState", "")
    key = request.cookies.get(cookie_name(), "")
    tx = broker.store.consume("uptx:" + _digest(key)) if 0 < len(key) <= 100 else None
    if tx is not None:
        if tx.get("provider_id") != pid or not hmac.compare_digest(tx["state"].encode(), relay_state.encode()):
            return _unexpected(pid, "RelayState does not match this browser's transaction")
        if tx["created"] + broker.config.broker.lifetimes.login_transaction < time.time():
            return _drop_cookie(error_page(gettext("Demande expirée"), gettext("La connexion a pris trop de temps."),
                                           400, advice=gettext("Recommencez depuis le site du service.")), pid)
        provider_state, login_request, state = tx["provider_state"], LoginRequest(**tx["request"]), tx["state"]
    elif getattr(provider, "allows_unsolicited", False):
        from broker.upstream import callback_url

        provider_state, state = {}, None
        login_request = LoginRequest(state="", nonce="", callback_url=callback_url(pid))
    else:
        return _unexpected(pid, "no transaction for this browser (unsolicited response, missing or reused cookie)")
    try:
        identity = provider.complete_login(params, provider_state, login_request)
    except UpstreamError as exc:
        return _refused(pid, exc)
    if identity.replay_id:
        ttl = max(1, int(identity.replay_until - time.time()))
        if not broker.store.add("once:" + _digest(f"{pid}|{identity.replay_id}"), {}, ttl):
            return _refused(pid, UpstreamError(REPLAYED, "replayed assertion (ID already accepted)"))
    handle = secrets.token_urlsafe(32)
    broker.store.put("upres:" + _digest(handle), {"provider_id": pid, "state": state,
                                                   "identity": _dump(identity)}, RESULT_TTL)
    response = redirect(url_for("pages.callback", provider_id=pid), code=303)
    _set_cookie(response, pid, handle, RESULT_TTL)
    return response


def resume(provider) -> Response:
    """Step 3: ``GET /callback/<id>``: the session that began the transaction finishes the login."""
    from broker.pages import finish_login
    from broker.upstream import upstream_failure

    broker = current_broker()
    pid = provider.provider_id
    key = request.cookies.get(cookie_name(), "")
    parked = broker.store.consume("upres:" + _digest(key)) if 0 < len(key) <= 100 else None
    if parked is None or parked.get("provider_id") != pid:
        return _unexpected(pid, "no verified response waiting for this browser")
    rid = None
    if parked["state"] is not None:
        session = browser()
        transactions = dict(session.get("upstream_tx", {}))
        tx = transactions.pop(parked["state"], None)
        if tx is None or tx["provider_id"] != pid:
            return _unexpected(pid, "the verified response belongs to a transaction of another browser session")
        session["upstream_tx"] = transactions
        rid = tx["rid"]
    identity = _load(parked["identity"])
    try:
        response = finish_login(identity, rid)
    except UpstreamError as exc:
        return _drop_cookie(upstream_failure(pid, exc), pid)
    from broker.upstream_saml import remember_session

    remember_session(provider, identity)
    return _drop_cookie(response, pid)


def _dump(identity: UpstreamIdentity) -> dict[str, Any]:
    data = dataclasses.asdict(identity)
    data["amr"] = list(identity.amr)
    data["attributes"] = dict(identity.attributes)
    data["session_data"] = dict(identity.session_data)
    return data


def _load(data: dict[str, Any]) -> UpstreamIdentity:
    return UpstreamIdentity(**{**data, "amr": tuple(data["amr"])})
