"""The consent page, and the list of consents in the citizen's space."""

from __future__ import annotations

from datetime import datetime

from flask import Response, redirect, request, url_for
from flask_babel import format_date, gettext

from broker import consent
from broker.app import current_broker
from broker.errors import AccessDenied
from broker.oidc.authorize import RedirectableError, answer, error_response, pending_request
from broker.pages import EXPIRED, blueprint
from broker.ui import localized
from broker.web import browser, csrf_valid, error_page, page, page_title


def granted_on(when: datetime) -> str:
    """The day a consent was given, in Nouméa, in the page's language (12/04/2026 in both)."""
    return format_date(when, "short")


@blueprint.route("/consentement", methods=["GET"], endpoint="consent")
def consent_page() -> Response:
    broker = current_broker()
    rid = request.args.get("rid", "")
    req = pending_request(rid)
    if req is None or not browser().account_id:
        return error_page(*EXPIRED, status=400)
    client = broker.config.clients[req.client_id]
    return page("consent.html", title=page_title(gettext("Autoriser %(service)s", service=localized(client))),
                rid=rid, client=client, data=consent.data_labels(req.scope))


@blueprint.route("/consentement", methods=["POST"])
def consent_submit() -> Response:
    broker = current_broker()
    session = browser()
    rid = request.form.get("rid", "")
    req = pending_request(rid)
    if req is None or not session.account_id or not csrf_valid():
        return error_page(*EXPIRED, status=400)
    pending = dict(session.get("authz", {}))
    pending.pop(rid, None)
    session["authz"] = pending
    if request.form.get("decision") != "accept":
        return error_response(RedirectableError(AccessDenied("the citizen refused to share the data"),
                                                req.redirect_uri, req.state))
    consent.grant(broker.sessions, session.account_id, req.client_id, [s for s in req.scope if s not in consent.FREE_SCOPES])
    return answer(broker, req)


@blueprint.route("/compte/autorisations", methods=["GET"])
def consents_list() -> Response:
    broker = current_broker()
    account_id = browser().account_id
    if not account_id:
        return redirect(url_for("pages.login"), code=303)
    clients = broker.config.clients
    items = [{"client_id": c.client_id,
              "name": localized(clients[c.client_id]) if c.client_id in clients else c.client_id,
              "data": consent.data_labels(c.scope.split()), "granted_on": granted_on(c.granted_at)}
             for c in consent.consents_of(broker.sessions, account_id)]
    return page("consents.html", title=page_title(gettext("Mes autorisations")), items=items)


@blueprint.route("/compte/autorisations", methods=["POST"])
def consents_revoke() -> Response:
    broker = current_broker()
    account_id = browser().account_id
    if not account_id or not csrf_valid():
        return error_page(gettext("Demande expirée"), gettext("La page a expiré. Rechargez-la et recommencez."), 400)
    consent.revoke(broker.sessions, account_id, request.form.get("client_id", ""))
    return redirect(url_for("pages.consents_list"), code=303)
