"""Self-service sign-up with email verification, and the confirmation of emailed links.

Nothing is created until the address is confirmed: the form's answer is a link sent to
the address, holding the declared identity and the password's hash (never the password)
until it is used.  Signing up with an address that already has an account sends that
address a notice instead, and the page says the same thing in both cases (D-07); the
argon2 hash is computed in both cases so that both take the same time.
"""

from __future__ import annotations

import hmac

from flask import Response, jsonify, redirect, request, url_for
from flask_babel import gettext, lazy_gettext
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from broker import throttle
from broker.account import blueprint, tokens
from broker.account.common import (
    audit, brand, client_ip, form_page, mail_enabled, record, service_names, signed_in_account, throttled,
    valid_email,
)
from broker.account.identity_form import ELSEWHERE, GENDERS, commune_choices, country_choices, parse
from broker.accounts import _pivot_columns, normalise_email
from broker.app import current_broker
from broker.mail import MailError, send
from broker.models import Account, LocalCredential, utcnow
from broker.oidc.authorize import pending_request
from broker.passwords import MAX_LENGTH, MIN_LENGTH, check
from broker.web import browser, csrf_valid, error_page, page, page_title
from providers.local import hash_password

UNAVAILABLE = (lazy_gettext("Service indisponible"),
               lazy_gettext("La création de compte et l'envoi de courriels ne sont pas configurés sur ce serveur. "
                            "Contactez l'administrateur de NC Connect."))
SEND_FAILED = (lazy_gettext("Envoi impossible"),
               lazy_gettext("Le courriel n'a pas pu être envoyé. Réessayez dans quelques minutes."))
EXPIRED_LINK = (lazy_gettext("Lien invalide ou expiré"),
                lazy_gettext("Ce lien n'est plus valable : il a déjà été utilisé, il a expiré, ou un lien plus récent "
                             "l'a remplacé. Recommencez la démarche pour en recevoir un nouveau."))


def issuer_url(endpoint: str, **values) -> str:
    """Links in emails derive from the configured issuer, never from the request's Host (A-29)."""
    return current_broker().config.broker.issuer + url_for(endpoint, **values)


def email_exists(email: str) -> bool:
    with current_broker().sessions() as s:
        return s.execute(select(Account.id).outerjoin(LocalCredential, LocalCredential.account_id == Account.id)
                         .where(or_(LocalCredential.email == email, Account.email == email),
                                Account.disabled.is_(False)).limit(1)).first() is not None


def _signup_page(form: dict, errors: dict[str, str] | None = None, status: int = 200) -> Response:
    rid = form.get("rid", "")
    req = pending_request(rid) if rid else None
    client = current_broker().config.clients.get(req.client_id) if req else None
    current, former = country_choices()
    return form_page("account/signup.html", gettext("Créer un compte"), errors, status, form=form,
                     rid=rid if req else "",
                     client=client, communes=commune_choices(), countries=current, former_countries=former,
                     genders=GENDERS, elsewhere=ELSEWHERE, min_length=MIN_LENGTH, max_length=MAX_LENGTH)


@blueprint.route("/compte/inscription", methods=["GET"])
def signup() -> Response:
    if not mail_enabled(current_broker()):
        return error_page(*UNAVAILABLE, status=404)
    return _signup_page({"rid": request.args.get("rid", "")})


@blueprint.route("/compte/inscription", methods=["POST"])
def signup_submit() -> Response:
    broker = current_broker()
    if not mail_enabled(broker):
        return error_page(*UNAVAILABLE, status=404)
    form = {k: v for k, v in request.form.items() if k not in ("password", "csrf_token")}
    if not csrf_valid():
        return _signup_page(form, {"form": gettext("La page a expiré. Vérifiez vos informations et envoyez à "
                                                   "nouveau.")}, 400)
    email = normalise_email(request.form.get("email", ""))[:254]
    ip = client_ip()
    refused = throttled("signup", ip, email)
    if refused:
        return refused
    pivot, errors = parse(request.form)
    if not valid_email(email):
        errors["email"] = gettext("Indiquez une adresse électronique valide, par exemple nom@exemple.nc.")
    password = request.form.get("password", "")
    verdict = check(password, email=email, names=[pivot.get("given_name", ""), pivot.get("family_name", "")],
                    services=service_names(broker))
    if not verdict.ok:
        errors["password"] = verdict.message
    if errors:
        return _signup_page(form, errors)
    throttle.count_scoped(broker.store, "signup", {ip: 10, email: 3}, base=60)
    password_hash = hash_password(password)  # in both cases, so that both answers take the same time
    rid = form.get("rid") or None
    try:
        if email_exists(email):
            send(broker.config.broker.smtp, email, "signup_exists", login_url=issuer_url("pages.login"),
                 reset_url=issuer_url("account.reset_request"))
        else:
            token = tokens.issue(broker, "signup", email, data={"pivot": pivot, "password_hash": password_hash})
            send(broker.config.broker.smtp, email, "signup_verify",
                 link=issuer_url("account.confirm", jeton=token), hours=tokens.LIFETIMES["signup"] // 3600)
    except MailError:
        return error_page(*SEND_FAILED, status=503)
    session = browser()
    session["signup"] = {"email": email, "rid": rid}
    return redirect(url_for("account.signup_sent"), code=303)


@blueprint.route("/compte/inscription/envoyee")
def signup_sent() -> Response:
    sent = browser().get("signup") or {}
    heading = gettext("Vérifiez votre messagerie")
    return page("account/message.html", title=page_title(heading), heading=heading,
                paragraphs=[gettext("Un courriel vient d'être envoyé à %(email)s.",
                                    email=sent.get("email") or gettext("votre adresse")),
                            gettext("Ouvrez-le et suivez le lien qu'il contient pour terminer la création de votre "
                                    "compte. Pensez à regarder dans les courriels indésirables."),
                            gettext("Vous pouvez fermer cette page.")])


# -- emailed links: address confirmation (sign-up, email change) ------------------------------

@blueprint.route("/compte/confirmer", methods=["GET"])
def confirm() -> Response:
    token = request.args.get("jeton", "")
    link = tokens.peek(current_broker(), token, ("signup", "email_change"))
    if link is None:
        return error_page(*EXPIRED_LINK, status=400)
    return page("account/confirm.html", title=page_title(gettext("Confirmer votre adresse")), token=token, link=link)


@blueprint.route("/compte/confirmer", methods=["POST"])
def confirm_submit() -> Response:
    broker = current_broker()
    if not csrf_valid():
        return error_page(gettext("Page expirée"), gettext("La page a expiré. Rouvrez le lien reçu par courriel."), 400)
    link = tokens.consume(broker, request.form.get("jeton", ""), ("signup", "email_change"))
    if link is None:
        return error_page(*EXPIRED_LINK, status=400)
    if link.purpose == "email_change":
        return _email_changed(link)
    account_id = _create_account(link)
    if account_id is None:
        return error_page(gettext("Compte déjà créé"),
                          gettext("Un compte existe déjà pour cette adresse. Connectez-vous, ou utilisez « Mot de "
                                  "passe oublié ? » sur la page de connexion."), 409)
    from broker.pages import local_provider

    provider = local_provider()
    record(broker, account_id, "account_created", provider_id=provider.provider_id if provider else None)
    pending = browser().get("signup") or {}
    rid = pending.get("rid") if pending.get("email") == link.email else None
    req = pending_request(rid) if rid else None
    client = broker.config.clients.get(req.client_id) if req else None
    return page("account/created.html", title=page_title(gettext("Compte créé")), rid=rid if req else None,
                client=client)


def _create_account(link: tokens.Link) -> str | None:
    broker = current_broker()
    account = Account(email=link.email, email_verified=True, **_pivot_columns(link.data["pivot"]))
    try:
        with broker.sessions.begin() as s:
            s.add(account)
            s.flush()
            s.add(LocalCredential(account_id=account.id, email=link.email, password_hash=link.data["password_hash"],
                                  password_changed_at=utcnow()))
    except IntegrityError:
        return None
    audit.info("account created account=%s source=local", account.id)
    return account.id


def _email_changed(link: tokens.Link) -> Response:
    broker = current_broker()
    with broker.sessions() as s:
        account = s.get(Account, link.account_id)
    if account is None or account.disabled:
        return error_page(*EXPIRED_LINK, status=400)
    old = account.email
    try:
        with broker.sessions.begin() as s:
            s.execute(update(Account).where(Account.id == account.id).values(email=link.email, email_verified=True))
            s.execute(update(LocalCredential).where(LocalCredential.account_id == account.id).values(email=link.email))
    except IntegrityError:
        return error_page(gettext("Adresse déjà utilisée"),
                          gettext("Cette adresse est déjà celle d'un autre compte %(brand)s.", brand=brand()), 409)
    record(broker, account.id, "email_changed")
    if old and old != link.email:
        try:  # D-09: the old address learns of the change (and how to react), with no secret
            send(broker.config.broker.smtp, old, "email_changed", new_email=link.email,
                 reset_url=issuer_url("account.reset_request"))
        except MailError:
            pass
    heading = gettext("Adresse modifiée")
    return page("account/message.html", title=page_title(heading), heading=heading,
                paragraphs=[gettext("Votre adresse électronique est désormais %(email)s. Utilisez-la pour vous "
                                    "connecter.", email=link.email)],
                links=[(gettext("Mon compte"), url_for("account.space"))] if signed_in_account() else
                [(gettext("Se connecter"), url_for("pages.login"))])


# -- the strength meter (a progressive enhancement: the form works without it) ----------------

@blueprint.route("/compte/force-mot-de-passe", methods=["POST"])
def strength() -> Response:
    """The same verdict the form will give, for the meter beside a new password field."""
    session = browser()
    sent, expected = request.headers.get("X-CSRF-Token", ""), session.get("csrf") or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return jsonify(error="csrf"), 400
    body = request.get_json(silent=True) or {}
    password = str(body.get("password", ""))[:4 * MAX_LENGTH]
    account = signed_in_account()
    email = account.email if account else str(body.get("email", ""))[:254]
    names = [account.given_name or "", account.family_name or ""] if account else \
        [str(body.get("given_name", ""))[:200], str(body.get("family_name", ""))[:200]]
    verdict = check(password, email=email, names=names, services=service_names(current_broker()))
    return jsonify(ok=verdict.ok, score=verdict.score, label=verdict.label, message=verdict.message)
