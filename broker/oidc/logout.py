"""RP-Initiated Logout 1.0.

A valid ``id_token_hint`` identifies the client; only then may the broker
redirect, and only to a ``post_logout_redirect_uri`` registered for that
client, echoing ``state`` (checklist A-25).  Without a valid hint, or when the
hint belongs to another session, the citizen confirms before being signed out
(a GET never signs out on its own, E-10).
"""

from __future__ import annotations

from flask import Response, request

from broker import grants
from broker.app import Broker, current_broker
from broker.errors import InvalidRequest
from broker.oidc import backchannel, blueprint
from broker.oidc.params import single_params
from broker.oidc.responses import add_query, log
from broker.web import browser, csrf_valid, error_page, page, page_title

from flask import redirect
from flask_babel import gettext


class InvalidLogoutRequest(InvalidRequest):
    pass


def check_hint(broker: Broker, params: dict[str, str]) -> dict | None:
    hint = params.get("id_token_hint")
    if hint is None:
        return None
    try:
        claims = broker.keys.verify(hint)  # expired hints are accepted (RP-Initiated Logout §2)
    except Exception as exc:  # joserfc: bad signature, unknown kid, alg none, malformed
        raise InvalidLogoutRequest("id_token_hint is not a valid ID token from this provider", detail=str(exc)) from None
    if claims.get("iss") != broker.config.broker.issuer or not isinstance(claims.get("aud"), str) \
            or claims["aud"] not in broker.config.clients:
        raise InvalidLogoutRequest("id_token_hint was not issued by this provider to a known client")
    if params.get("client_id") not in (None, claims["aud"]):
        raise InvalidLogoutRequest("client_id does not match id_token_hint")
    return claims


def check_post_logout_uri(broker: Broker, params: dict[str, str], hint: dict | None) -> str | None:
    uri = params.get("post_logout_redirect_uri")
    if uri is None:
        return None
    if hint is None:
        raise InvalidLogoutRequest("post_logout_redirect_uri requires a valid id_token_hint")
    if uri not in broker.config.clients[hint["aud"]].post_logout_redirect_uris:
        raise InvalidLogoutRequest("post_logout_redirect_uri is not registered for this client")
    return add_query(uri, {"state": params["state"]}) if "state" in params else uri


def end_session(broker: Broker) -> dict | None:
    """Destroy the session and revoke its grants; return the upstream session to log out of, if any."""
    session = browser()
    upstream = session.get("upstream")
    if session.get("sid"):
        grants.revoke_session_grants(broker, session["sid"])
        log.info("session ended for account %s", session.account_id)
        backchannel.session_ended(broker, session.data)  # queued: never delays the citizen
    session.destroy()
    return upstream


def signed_out(target: str | None, upstream: dict | None = None) -> Response:
    from broker.upstream import chain_logout

    upstream_logout = chain_logout(upstream, target)
    if upstream_logout:
        return redirect(upstream_logout, code=303)
    if target:
        return redirect(target, code=303)
    return page("logged_out.html", title=page_title(gettext("Vous êtes déconnecté")))


@blueprint.route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    broker = current_broker()
    session = browser()
    if request.method == "POST" and request.form.get("confirm"):
        if not csrf_valid():
            return error_page(gettext("Demande expirée"), gettext("La page de déconnexion a expiré."), 400,
                              advice=gettext("Recommencez la déconnexion depuis l'accueil de NC Connect."))
        target = session.get("logout_target")
        return signed_out(target, end_session(broker))
    try:
        params = single_params(request)
        hint = check_hint(broker, params)
        target = check_post_logout_uri(broker, params, hint)
    except InvalidRequest as exc:
        log.info("logout refused: %s %s", exc.description, exc.detail)
        return error_page(gettext("Demande de déconnexion invalide"),
                          gettext("Le service qui vous a envoyé ici a fait une demande de déconnexion incorrecte."), 400,
                          advice=gettext("Vous pouvez fermer cette page, ou vous déconnecter depuis l'accueil de "
                                         "NC Connect."))
    if not session.account_id:
        return signed_out(target)
    if hint is not None and hint.get("sid") == session.get("sid"):
        return signed_out(target, end_session(broker))
    session["logout_target"] = target
    return page("logout_confirm.html", title=page_title(gettext("Se déconnecter")))
