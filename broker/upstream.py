"""Redirect-style identity sources (OIDC, SAML): the browser transaction, the callback, linking.

The broker owns the transaction: a fresh ``state`` and ``nonce`` per attempt,
kept in the citizen's server-side session together with the provider it was
sent to, so a callback with a missing, unknown, reused or other-session state,
or arriving at another provider's callback URL, is refused before the code is
used (checklist B-02, B-05).
"""

from __future__ import annotations

import logging
import secrets
import time

from flask import Response, g, redirect, request, url_for
from flask_babel import gettext

from broker import accounts
from broker.app import current_broker
from broker.identities import create
from broker.oidc.authorize import pending_request
from broker.pages import blueprint, finish_login, local_provider
from broker.ui import localized
from broker.web import browser, csrf_valid, error_page, page, page_title
from providers.base import LEVELS, LoginRequest, RedirectProvider, UpstreamError, UpstreamIdentity, level_rank

log = logging.getLogger("nc_connect.upstream")
MAX_TRANSACTIONS = 5


def callback_url(provider_id: str) -> str:
    return current_broker().config.broker.issuer + url_for("pages.callback", provider_id=provider_id)


def begin(provider: RedirectProvider, rid: str | None) -> Response:
    req = pending_request(rid) if rid else None
    required = level_rank(req.acr_required) if req else 0
    if level_rank(provider.level) < required:
        return error_page(gettext("Niveau de garantie insuffisant"),
                          gettext("« %(source)s » ne permet pas d'atteindre le niveau de garantie demandé par ce service.",
                                  source=localized(provider)), 400,
                          advice=gettext("Revenez au choix du moyen de connexion et choisissez-en un autre."))
    login_request = LoginRequest(
        state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32), callback_url=callback_url(provider.provider_id),
        acr_values=tuple(level for level in LEVELS if required <= level_rank(level) <= level_rank(provider.level))
        if required else (),
        force_login=bool(req and ("login" in req.prompt or req.max_age is not None)),
        max_age=req.max_age if req else None, login_hint=req.login_hint if req else None,
        ui_locales=req.ui_locales if req else None,
    )
    try:
        step = provider.begin_login(login_request)
    except UpstreamError as exc:
        return upstream_failure(provider.provider_id, exc)
    session = browser()
    transactions = dict(session.get("upstream_tx", {}))
    if len(transactions) >= MAX_TRANSACTIONS:
        transactions.pop(min(transactions, key=lambda k: transactions[k]["created"]))
    transactions[login_request.state] = {
        "provider_id": provider.provider_id, "rid": rid, "created": time.time(),
        "provider_state": dict(step.provider_state), "request": login_request.__dict__,
    }
    session["upstream_tx"] = transactions
    if step.post_url:
        response = page("autopost.html", title=page_title(gettext("Redirection")), action=step.post_url,
                        fields=step.post_fields)
    else:
        response = redirect(step.redirect_url, code=303)
    if getattr(provider, "answers_by_post", False):  # the answer comes by a cross-site POST (E-08)
        from broker import upstream_post

        upstream_post.bind(response, provider.provider_id, login_request.state, transactions[login_request.state])
    return response


def upstream_failure(provider_id: str, exc: UpstreamError) -> Response:
    """B-15: a page that explains, the cause in the logs, and no automatic loop back upstream."""
    log.warning("upstream %s failed: %s", provider_id, exc.detail or exc.message)
    # providers mark their messages for translation (N_) without knowing Flask; they are translated here
    return error_page(gettext("Connexion impossible"), gettext(exc.message), 400,
                      advice=gettext("Vous pouvez réessayer, ou choisir une autre façon de vous connecter."))


@blueprint.route("/callback/<provider_id>", methods=["GET", "POST"])
def callback(provider_id: str) -> Response:
    broker = current_broker()
    if getattr(broker.providers.get(provider_id), "answers_by_post", False):
        from broker import upstream_post  # SAML: POST from the IdP, then a GET in the citizen's session

        provider = broker.providers[provider_id]
        return upstream_post.receive(provider) if request.method == "POST" else upstream_post.resume(provider)
    params = {k: v for k, v in request.values.items()}
    state = params.get("state") or params.get("RelayState") or ""
    transactions = dict(browser().get("upstream_tx", {}))
    tx = transactions.pop(state, None)
    if tx is not None:
        browser()["upstream_tx"] = transactions
        g.rid = tx["rid"]  # the pending request: its language, and the way back to its téléservice
    if tx is None or tx["provider_id"] != provider_id:
        log.warning("upstream callback refused for %s: unknown, reused or foreign state", provider_id)
        return error_page(gettext("Réponse inattendue"),
                          gettext("La réponse du fournisseur d'identité ne correspond à aucune connexion en cours "
                                  "dans ce navigateur."), 400,
                          advice=gettext("Retournez sur le site du service et recommencez."))
    if tx["created"] + broker.config.broker.lifetimes.login_transaction < time.time():
        return error_page(gettext("Demande expirée"), gettext("La connexion a pris trop de temps."), 400,
                          advice=gettext("Recommencez depuis le site du service."))
    provider = broker.providers.get(provider_id)
    try:
        identity = provider.complete_login(params, tx["provider_state"], LoginRequest(**tx["request"]))
        return finish_login(identity, tx["rid"])
    except UpstreamError as exc:
        return upstream_failure(provider_id, exc)


# -- linking a new source to an existing account ----------------------------

@blueprint.route("/lier", methods=["GET"])
def link() -> Response:
    """A match was found: prove control of the existing account, or keep a separate one."""
    broker = current_broker()
    pending = browser().get("pending_link")
    if not pending:
        return error_page(gettext("Aucune liaison en cours"), gettext("Il n'y a pas de compte à relier."), 400,
                          advice=gettext("Retournez sur le site du service et recommencez."))
    with_password = any(accounts.has_local_credential(broker.sessions, a) for a in pending["candidates"])
    linked_sources = {link.provider_id for a in pending["candidates"] for link in accounts.links_of(broker.sessions, a)}
    sources = [p for pid, p in broker.providers.items() if pid in linked_sources and pid != pending["provider_id"]]
    local = local_provider() if with_password else None
    return page("link.html", title=page_title(gettext("Relier votre compte")), rid=pending["rid"] or "",
                source_name=localized(broker.providers[pending["provider_id"]]), local=local, sources=sources)


@blueprint.route("/lier", methods=["POST"])
def link_submit() -> Response:
    """The citizen keeps a separate account for this source."""
    broker = current_broker()
    session = browser()
    pending = session.get("pending_link")
    if not csrf_valid() or not pending or request.form.get("action") != "new":
        return error_page(gettext("Demande expirée"), gettext("La page a expiré."), 400,
                          advice=gettext("Retournez sur le site du service et recommencez."))
    identity = UpstreamIdentity(provider_id=pending["provider_id"], subject=pending["subject"], acr=pending["acr"],
                                amr=tuple(pending["amr"]), auth_time=pending["auth_time"],
                                session_data=pending["session_data"])
    account_id = create(broker, identity, pending["pivot"])
    session.pop("pending_link")
    return finish_login(identity, pending["rid"], local_account=account_id)


# -- chained logout -----------------------------------------------------------

def chain_logout(upstream: dict | None, target: str | None) -> str | None:
    """URL of the upstream logout to visit before ``target`` (B-17), or None."""
    if not upstream:
        return None
    broker = current_broker()
    provider = broker.providers.get(upstream["provider_id"])
    if not isinstance(provider, RedirectProvider):
        return None
    state = secrets.token_urlsafe(32)
    url = provider.begin_logout(upstream["data"], state, broker.config.broker.issuer + url_for("pages.logout_return"))
    if url:
        broker.store.put("logout:" + state, {"target": target}, broker.config.broker.lifetimes.login_transaction)
    return url


@blueprint.route("/logout/return")
def logout_return() -> Response:
    """Back from the upstream's logout: continue only with the state we sent."""
    broker = current_broker()
    pending = broker.store.consume("logout:" + request.args.get("state", "")[:100])
    if pending is None:
        return page("logged_out.html", title=page_title(gettext("Vous êtes déconnecté")))
    if pending.get("target"):
        return redirect(pending["target"], code=303)
    return page("logged_out.html", title=page_title(gettext("Vous êtes déconnecté")))
