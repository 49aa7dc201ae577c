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

from flask import Response, redirect, request, url_for

from broker import accounts
from broker.app import current_broker
from broker.identities import create
from broker.oidc.authorize import pending_request
from broker.pages import blueprint, continue_after_login, finish_login, local_provider
from broker.web import browser, csrf_valid, error_page, page
from providers.base import LEVELS, LoginRequest, RedirectProvider, UpstreamError, UpstreamIdentity, level_rank

log = logging.getLogger("nc_connect.upstream")
MAX_TRANSACTIONS = 5


def callback_url(provider_id: str) -> str:
    return current_broker().config.broker.issuer + url_for("pages.callback", provider_id=provider_id)


def begin(provider: RedirectProvider, rid: str | None) -> Response:
    broker = current_broker()
    req = pending_request(rid) if rid else None
    required = level_rank(req.acr_required) if req else 0
    if level_rank(provider.level) < required:
        return error_page("Niveau de garantie insuffisant",
                          f"« {provider.name} » ne permet pas d'atteindre le niveau de garantie demandé par ce service. "
                          "Choisissez une autre façon de vous connecter.", 400)
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
        return page("autopost.html", title="Redirection – NC Connect", action=step.post_url, fields=step.post_fields)
    return redirect(step.redirect_url, code=303)


def upstream_failure(provider_id: str, exc: UpstreamError) -> Response:
    """B-15: a page that explains, the cause in the logs, and no automatic loop back upstream."""
    log.warning("upstream %s failed: %s", provider_id, exc.detail or exc.message)
    return error_page("Connexion impossible", exc.message + " Vous pouvez réessayer ou choisir une autre façon de vous connecter.", 400)


@blueprint.route("/callback/<provider_id>", methods=["GET", "POST"])
def callback(provider_id: str) -> Response:
    broker = current_broker()
    params = {k: v for k, v in request.values.items()}
    state = params.get("state") or params.get("RelayState") or ""
    transactions = dict(browser().get("upstream_tx", {}))
    tx = transactions.pop(state, None)
    if tx is not None:
        browser()["upstream_tx"] = transactions
    if tx is None or tx["provider_id"] != provider_id:
        log.warning("upstream callback refused for %s: unknown, reused or foreign state", provider_id)
        return error_page("Réponse inattendue",
                          "La réponse du fournisseur d'identité ne correspond à aucune connexion en cours dans ce navigateur. "
                          "Retournez sur le site du service et recommencez.", 400)
    if tx["created"] + broker.config.broker.lifetimes.login_transaction < time.time():
        return error_page("Demande expirée", "La connexion a pris trop de temps. Recommencez depuis le site du service.", 400)
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
        return error_page("Aucune liaison en cours", "Il n'y a pas de compte à relier. Retournez sur le site du service.", 400)
    with_password = any(accounts.has_local_credential(broker.sessions, a) for a in pending["candidates"])
    linked_sources = {link.provider_id for a in pending["candidates"] for link in accounts.links_of(broker.sessions, a)}
    sources = [p for pid, p in broker.providers.items() if pid in linked_sources and pid != pending["provider_id"]]
    local = local_provider() if with_password else None
    return page("link.html", title="Relier votre compte – NC Connect", rid=pending["rid"] or "",
                source_name=broker.providers[pending["provider_id"]].name, local=local, sources=sources)


@blueprint.route("/lier", methods=["POST"])
def link_submit() -> Response:
    """The citizen keeps a separate account for this source."""
    broker = current_broker()
    session = browser()
    pending = session.get("pending_link")
    if not csrf_valid() or not pending or request.form.get("action") != "new":
        return error_page("Demande expirée", "La page a expiré. Retournez sur le site du service et recommencez.", 400)
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
        return page("logged_out.html", title="Vous êtes déconnecté")
    if pending.get("target"):
        return redirect(pending["target"], code=303)
    return page("logged_out.html", title="Vous êtes déconnecté")
