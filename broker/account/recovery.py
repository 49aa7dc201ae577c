"""Forgotten password: a link by email, then a new password (checklist D-06..D-09, D-15).

The request page answers the same way whatever the address (D-07): an address with a
local account receives a reset link, any other address a notice that it has none, so
both cases send one email.  The link is sent only to the address on file, lives 20
minutes, is single use, and a newer request voids it.  Setting the new password signs
every session of the account out, revokes its refresh tokens and sends a notice.  The
second factor stays: a reset never removes it.
"""

from __future__ import annotations

from flask import Response, redirect, request, url_for
from flask_babel import gettext, ngettext
from sqlalchemy import select, update

from broker import throttle
from broker.account import blueprint, sessions_index, tokens
from broker.account.common import (
    brand, client_ip, form_page, mail_enabled, record, service_names, throttled, valid_email,
)
from broker.account.signup import EXPIRED_LINK, SEND_FAILED, UNAVAILABLE, issuer_url
from broker.accounts import normalise_email
from broker.app import current_broker
from broker.mail import MailError, send
from broker.models import Account, LocalCredential, utcnow
from broker.passwords import MAX_LENGTH, MIN_LENGTH, check
from broker.web import browser, csrf_valid, error_page, page, page_title
from providers.local import hash_password


@blueprint.route("/compte/mot-de-passe-oublie", methods=["GET"])
def reset_request() -> Response:
    if not mail_enabled(current_broker()):
        return error_page(*UNAVAILABLE, status=404)
    return form_page("account/reset_request.html", gettext("Mot de passe oublié"),
                     email=request.args.get("email", "")[:254])


@blueprint.route("/compte/mot-de-passe-oublie", methods=["POST"])
def reset_request_submit() -> Response:
    broker = current_broker()
    if not mail_enabled(broker):
        return error_page(*UNAVAILABLE, status=404)
    email = normalise_email(request.form.get("email", ""))[:254]
    if not csrf_valid():
        return form_page("account/reset_request.html", gettext("Mot de passe oublié"),
                         {"form": gettext("La page a expiré. Envoyez à nouveau votre adresse.")}, 400, email=email)
    ip = client_ip()
    refused = throttled("reset", ip, email)
    if refused:
        return refused
    if not valid_email(email):
        return form_page("account/reset_request.html", gettext("Mot de passe oublié"),
                         {"email": gettext("Indiquez une adresse électronique valide, par exemple nom@exemple.nc.")},
                         email=email)
    throttle.count_scoped(broker.store, "reset", {ip: 10, email: 3}, base=60)
    with broker.sessions() as s:
        found = s.execute(select(LocalCredential.account_id).join(Account, Account.id == LocalCredential.account_id)
                          .where(LocalCredential.email == email, Account.disabled.is_(False))).scalar()
    try:
        if found:
            token = tokens.issue(broker, "reset", email, account_id=found)
            send(broker.config.broker.smtp, email, "reset", link=issuer_url("account.reset", jeton=token),
                 minutes=tokens.LIFETIMES["reset"] // 60)
        else:
            send(broker.config.broker.smtp, email, "reset_unknown", signup_url=issuer_url("account.signup"))
    except MailError:
        return error_page(*SEND_FAILED, status=503)
    browser()["reset_sent_to"] = email
    return redirect(url_for("account.reset_sent"), code=303)


@blueprint.route("/compte/mot-de-passe-oublie/envoye")
def reset_sent() -> Response:
    email = browser().get("reset_sent_to") or gettext("que vous avez indiquée")
    heading = gettext("Vérifiez votre messagerie")
    return page("account/message.html", title=page_title(heading), heading=heading,
                paragraphs=[ngettext("Si un compte %(brand)s utilise l'adresse %(email)s, un courriel vient de lui "
                                     "être envoyé avec un lien pour choisir un nouveau mot de passe. Ce lien est "
                                     "valable %(num)d minute et ne sert qu'une fois.",
                                     "Si un compte %(brand)s utilise l'adresse %(email)s, un courriel vient de lui "
                                     "être envoyé avec un lien pour choisir un nouveau mot de passe. Ce lien est "
                                     "valable %(num)d minutes et ne sert qu'une fois.",
                                     tokens.LIFETIMES["reset"] // 60, brand=brand(), email=email),
                            gettext("Pensez à regarder dans les courriels indésirables.")])


def _reset_form(token: str, email: str, errors: dict[str, str] | None = None, status: int = 200) -> Response:
    return form_page("account/reset.html", gettext("Choisir un nouveau mot de passe"), errors, status, token=token,
                     email=email, min_length=MIN_LENGTH, max_length=MAX_LENGTH)


@blueprint.route("/compte/nouveau-mot-de-passe", methods=["GET"])
def reset() -> Response:
    token = request.args.get("jeton", "")
    link = tokens.peek(current_broker(), token, ("reset",))
    if link is None:
        return error_page(*EXPIRED_LINK, status=400)
    return _reset_form(token, link.email)


@blueprint.route("/compte/nouveau-mot-de-passe", methods=["POST"])
def reset_submit() -> Response:
    broker = current_broker()
    token = request.form.get("jeton", "")
    link = tokens.peek(broker, token, ("reset",))
    if link is None:
        return error_page(*EXPIRED_LINK, status=400)
    if not csrf_valid():
        return _reset_form(token, link.email,
                           {"form": gettext("La page a expiré. Saisissez à nouveau votre mot de passe.")}, 400)
    with broker.sessions() as s:
        account = s.get(Account, link.account_id)
    password = request.form.get("password", "")
    verdict = check(password, email=link.email, names=[account.given_name or "", account.family_name or ""],
                    services=service_names(broker))
    if not verdict.ok:
        return _reset_form(token, link.email, {"password": verdict.message})
    if tokens.consume(broker, token, ("reset",)) is None:
        return error_page(*EXPIRED_LINK, status=400)
    set_password(broker, account.id, password, email_verified=True)
    ended = sessions_index.end_all(broker, account.id)
    if browser().account_id == account.id:
        browser().destroy()
    throttle.record_success(broker.store, link.email, client_ip())  # the citizen may log in at once
    record(broker, account.id, "password_reset")
    notify_password_changed(link.email)
    heading = gettext("Mot de passe modifié")
    return page("account/message.html", title=page_title(heading), heading=heading,
                paragraphs=[gettext("Votre nouveau mot de passe est enregistré. Par sécurité, toutes vos sessions "
                                    "ouvertes (%(count)d) ont été fermées et les services en ligne devront vous "
                                    "reconnecter.", count=ended)],
                links=[(gettext("Se connecter"), url_for("pages.login"))])


def set_password(broker, account_id: str, password: str, *, email_verified: bool = False) -> None:
    with broker.sessions.begin() as s:
        s.execute(update(LocalCredential).where(LocalCredential.account_id == account_id)
                  .values(password_hash=hash_password(password), password_changed_at=utcnow()))
        if email_verified:  # the reset link reached the address: it is proven
            s.execute(update(Account).where(Account.id == account_id).values(email_verified=True))


def notify_password_changed(email: str) -> None:
    """D-09: a notice without any secret, and what to do if it was not the citizen."""
    try:
        send(current_broker().config.broker.smtp, email, "password_changed",
             reset_url=issuer_url("account.reset_request"))
    except MailError:
        pass
