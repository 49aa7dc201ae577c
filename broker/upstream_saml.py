"""The broker's endpoints for SAML sources: SP metadata and single logout.

``GET /saml/<id>/metadata``  the signed SP metadata of one source (what the IdP's
                             administrators register).
``GET /saml/<id>/slo``       the single logout service (HTTP-Redirect binding):
                             * a LogoutResponse answering the broker's own LogoutRequest
                               (SP-initiated, from :func:`broker.upstream.chain_logout`)
                               continues to ``/logout/return`` with its ``state``;
                             * a LogoutRequest from the IdP (IdP-initiated) ends every
                               broker session signed in through that NameID (and
                               SessionIndex, when given), revokes their grants, and
                               answers with a signed LogoutResponse.

The broker never parses SAML: the provider verifies the message (signature by the
IdP's metadata certificates, Destination, Issuer, freshness) and says what it asks.
Sessions are found through a small index kept in the ephemeral store, written when a
SAML login finishes (``remember_session``): a hash of (IdP, NameID) → the sessions'
store keys, ``sid`` and SessionIndex.  A LogoutRequest reaches the session even when
the browser's cookie is not sent; when the cookie is sent (a top-level GET carries the
Lax session cookie) the current session is ended too if it belongs to that NameID.
"""

from __future__ import annotations

import hashlib
import logging

from flask import Response, abort, redirect, request, url_for
from flask_babel import gettext

from broker import grants
from broker.oidc import backchannel
from broker.app import current_broker
from broker.pages import blueprint
from broker.web import browser, error_page
from providers.base import UpstreamError, UpstreamIdentity

log = logging.getLogger("nc_connect.upstream")
audit = logging.getLogger("nc_connect.audit")


def _provider_with(provider_id: str, capability: str):
    provider = current_broker().providers.get(provider_id)
    if provider is None or not callable(getattr(provider, capability, None)):
        abort(404)
    return provider


def _index_key(provider_id: str, key: str) -> str:
    return f"upsess:{provider_id}:{key}"


@blueprint.route("/saml/<provider_id>/metadata")
def saml_metadata(provider_id: str) -> Response:
    provider = _provider_with(provider_id, "sp_metadata")
    try:
        body, mimetype = provider.sp_metadata()
    except UpstreamError as exc:
        log.warning("metadata of %s unavailable: %s", provider_id, exc.detail)
        return error_page(gettext("Métadonnées indisponibles"), gettext(exc.message), 503)
    return Response(body, mimetype=mimetype)


def remember_session(provider, identity: UpstreamIdentity) -> None:
    """After a login through ``provider``: index the new session for IdP-initiated logout."""
    session_key = getattr(provider, "session_key", None)
    session = browser()
    store_key = getattr(session, "store_key", None)
    if session_key is None or not session.account_id or session.get("provider_id") != provider.provider_id:
        return  # not signed in by this login (a link to confirm first): nothing to index
    key = session_key(identity.session_data)
    if not key or not store_key:
        return
    broker = current_broker()
    entry = broker.store.get(_index_key(provider.provider_id, key)) or {"sessions": []}
    live = [s for s in entry["sessions"] if broker.store.get(s["store_key"]) is not None]
    live.append({"store_key": store_key, "sid": session.get("sid"),
                 "session_index": identity.session_data.get("session_index")})
    broker.store.put(_index_key(provider.provider_id, key), {"sessions": live[-20:]},
                     broker.config.broker.lifetimes.session_absolute)


@blueprint.route("/saml/<provider_id>/slo")
def saml_slo(provider_id: str) -> Response:
    broker = current_broker()
    provider = _provider_with(provider_id, "handle_logout_message")
    try:
        message = provider.handle_logout_message(request.query_string.decode("ascii", "replace"))
    except UpstreamError as exc:
        log.warning("upstream %s logout message refused: %s", provider_id, exc.detail)
        audit.warning("upstream logout refused source=%s reason=%s", provider_id, exc.detail)
        return error_page(gettext("Déconnexion impossible à vérifier"), gettext(exc.message), 400,
                          advice=gettext("Pour vous déconnecter de NC Connect, utilisez le bouton de déconnexion "
                                         "du service ou de l'accueil de NC Connect."))
    if message.kind == "response":
        if not message.success:
            log.info("upstream %s reported a partial logout", provider_id)
        return redirect(url_for("pages.logout_return", state=message.relay_state), code=303)
    if message.message_id and not broker.store.add(
            "once:" + hashlib.sha256(f"{provider_id}|{message.message_id}".encode()).hexdigest(), {}, 3600):
        audit.warning("upstream logout refused source=%s reason=replayed LogoutRequest", provider_id)
        return error_page(gettext("Déconnexion impossible à vérifier"),
                          gettext("Ce message de déconnexion a déjà été utilisé."), 400)
    ended = end_sessions(provider, message)
    audit.info("upstream logout source=%s sessions_ended=%d", provider_id, ended)
    return redirect(message.redirect_url, code=303)


def end_sessions(provider, message) -> int:
    """End the sessions a verified LogoutRequest names; return how many were ended."""
    broker = current_broker()
    index_key = _index_key(provider.provider_id, provider.logout_key(message))
    entry = broker.store.get(index_key) or {"sessions": []}
    kept, ended_keys = [], set()
    for item in entry["sessions"]:
        if message.session_indexes and item.get("session_index") not in message.session_indexes:
            kept.append(item)
            continue
        data = broker.store.get(item["store_key"])
        if data is not None and data.get("sid") == item["sid"]:
            # the téléservices of that session (queued, never blocking); first, so that the expiry sweep
            # never sees the key gone while the session is still indexed
            backchannel.session_ended(broker, data)
            broker.store.delete(item["store_key"])
            ended_keys.add(item["store_key"])
        if item.get("sid"):
            grants.revoke_session_grants(broker, item["sid"])
    if kept:
        broker.store.put(index_key, {"sessions": kept}, broker.config.broker.lifetimes.session_absolute)
    else:
        broker.store.delete(index_key)
    session = browser()
    upstream = session.get("upstream") or {}
    mine = (upstream.get("provider_id") == provider.provider_id
            and upstream.get("data", {}).get("name_id") == message.subject
            and (not message.session_indexes or upstream["data"].get("session_index") in message.session_indexes))
    if getattr(session, "store_key", None) in ended_keys or mine:
        if session.get("sid") and getattr(session, "store_key", None) not in ended_keys:
            grants.revoke_session_grants(broker, session["sid"])
            ended_keys.add("current")
            backchannel.session_ended(broker, session.data)
        session.destroy()
    return len(ended_keys)
