"""The citizen's space, ``/compte``: identity and how it was verified, linked sources,
connection history, active sessions, password, email, second factor, data, deletion.

Changes of password, email or second factor and the deletion need a fresh
authentication (D-16): a login or a password confirmation less than ten minutes old.
The password change asks for the current password in any case (D-04).
"""

from __future__ import annotations

import json
import time

from flask import Response, redirect, request, url_for
from flask_babel import gettext, lazy_gettext
from sqlalchemy import delete, select

from broker import throttle
from broker.account import blueprint, devices, mfa, sessions_index, tokens
from broker.account.common import (
    AFTER_LOGIN, audit, brand, client_ip, credential, form_page, history, local_time, mail_enabled, page_expired,
    record, require_fresh, service_names, signed_in, throttled, valid_email,
)
from broker.account.identity_form import country_name
from broker.account.recovery import notify_password_changed, set_password
from broker.account.signup import SEND_FAILED, email_exists, issuer_url
from broker.accounts import links_of, normalise_email, pivot_attributes
from broker.app import current_broker
from broker.mail import MailError, send
from broker.models import Account, AccountEvent, Grant
from broker.passwords import MAX_LENGTH, MIN_LENGTH, check
from broker.ui import localized
from broker.web import browser, csrf_valid, error_page, page, page_title
from mappings.geo import communes
from providers.local import HASHER

# where the password confirmation may lead (E-12: names of internal pages, never a URL)
STEPS = {"adresse": "account.email_change", "2fa": "account.mfa_manage", "supprimer": "account.delete_account"}
EVENT_LABELS = {
    "login": lazy_gettext("Connexion"), "authorized": lazy_gettext("Accès à un service"),
    "account_created": lazy_gettext("Création du compte"), "password_changed": lazy_gettext("Mot de passe modifié"),
    "password_reset": lazy_gettext("Mot de passe réinitialisé"),
    "email_changed": lazy_gettext("Adresse électronique modifiée"),
    "totp_enabled": lazy_gettext("Double authentification activée"),
    "totp_disabled": lazy_gettext("Double authentification désactivée"),
    "recovery_code_used": lazy_gettext("Code de secours utilisé"),
    "recovery_codes_renewed": lazy_gettext("Nouveaux codes de secours"),
    "sessions_ended": lazy_gettext("Déconnexion de toutes les sessions"),
}
LEVEL_LABELS = {"eidas1": lazy_gettext("faible (eidas1)"), "eidas2": lazy_gettext("substantiel (eidas2)"),
                "eidas3": lazy_gettext("élevé (eidas3)")}


def _level_label(level: str | None) -> str:
    return str(LEVEL_LABELS[level]) if level in LEVEL_LABELS else ""


@blueprint.app_context_processor
def _account_links() -> dict:
    """The login page shows "Créer un compte" and "Mot de passe oublié ?" when email can be sent."""
    try:
        return {"account_mail_enabled": mail_enabled(current_broker())}
    except (KeyError, RuntimeError):
        return {"account_mail_enabled": False}


@blueprint.route("/compte")
@signed_in
def space(account: Account) -> Response:
    broker = current_broker()
    session = browser()
    providers = broker.providers
    clients = broker.config.clients
    cred = credential(broker, account.id)
    def source(pid: str | None) -> str:
        return localized(providers[pid]) if pid in providers else (pid or "")

    links = [{"name": source(link.provider_id),
              "level": _level_label(link.acr), "since": local_time(link.created_at),
              "last": local_time(link.last_used_at)} for link in links_of(broker.sessions, account.id)]
    events = [{"label": EVENT_LABELS.get(e.kind, e.kind), "at": local_time(e.at),
               "client": localized(clients[e.client_id]) if e.client_id in clients else (e.client_id or ""),
               "source": source(e.provider_id),
               "level": e.acr or ""} for e in history(broker, account.id)]
    active = [{"sid": a.sid, "current": a.current, "device": devices.describe(a.user_agent, capitalised=True), "since": local_time(a.created),
               "seen": local_time(a.seen), "level": a.acr or "",
               "source": source(a.provider_id)}
              for a in sessions_index.active(broker, account.id, session.store_key)]
    birthplace = communes().by_insee.get(account.birthplace or "", account.birthplace or "")
    return page("account/space.html", title=page_title(gettext("Mon compte")), account=account,
                birthplace=birthplace, birthcountry=country_name(account.birthcountry),
                identity_level=_level_label(account.identity_level), links=links, events=events, sessions=active,
                has_password=cred is not None, totp=bool(cred and cred.totp_secret),
                codes_left=mfa.recovery_codes_left(broker, account.id) if cred and cred.totp_secret else 0,
                mail=mail_enabled(broker), local_name=next((localized(p) for p in providers.values()
                                                            if getattr(p, "second_factor_level", None)), ""))


# -- D-16: confirm who you are before a sensitive change ----------------------------------------

@blueprint.route("/compte/confirmer-identite", methods=["GET", "POST"])
@signed_in
def reauth(account: Account) -> Response:
    from broker.pages import local_provider

    broker = current_broker()
    step = request.values.get("suite", "")
    target = STEPS.get(step, "account.space")
    cred = credential(broker, account.id)
    provider = local_provider()
    context = {"suite": step if step in STEPS else "", "has_password": bool(cred and provider),
               "totp": bool(cred and cred.totp_secret)}
    if request.method == "GET" or not context["has_password"]:
        return form_page("account/reauth.html", gettext("Confirmez votre identité"), **context)
    if not csrf_valid():
        return form_page("account/reauth.html", gettext("Confirmez votre identité"),
                         {"form": gettext("La page a expiré. Recommencez.")}, 400, **context)
    ip = client_ip()
    if throttle.retry_after(broker.store, cred.email, ip):
        return form_page("account/reauth.html", gettext("Confirmez votre identité"),
                         {"password": gettext("Trop de tentatives. Réessayez dans quelques minutes.")}, 429, **context)
    password = request.form.get("password", "")
    identity = provider.authenticate(cred.email, password) if password and len(password) <= 1024 else None
    ok = identity is not None and identity.subject == account.id
    if ok and context["totp"]:
        ok = mfa.verify_totp(broker, account.id, request.form.get("code", ""))
    if not ok:
        throttle.record_failure(broker.store, cred.email, ip)
        return form_page("account/reauth.html", gettext("Confirmez votre identité"),
                         {"password": gettext("Mot de passe incorrect.") if not context["totp"] else
                          gettext("Mot de passe ou code incorrect.")}, **context)
    throttle.record_success(broker.store, cred.email, ip)
    browser()["reauth_at"] = time.time()
    return redirect(url_for(target), code=303)


@blueprint.route("/compte/reconnexion", methods=["POST"])
def relogin() -> Response:
    """Accounts without a password confirm who they are by logging in again with their source."""
    if not csrf_valid():
        return error_page(gettext("Page expirée"), gettext("La page a expiré. Recommencez."), 400)
    session = browser()
    session["after_login"] = next(iter(AFTER_LOGIN))
    return redirect(url_for("pages.login"), code=303)


# -- password ------------------------------------------------------------------------------------

def _password_page(errors=None, status=200) -> Response:
    return form_page("account/password.html", gettext("Changer de mot de passe"), errors, status,
                     min_length=MIN_LENGTH, max_length=MAX_LENGTH)


@blueprint.route("/compte/mot-de-passe", methods=["GET", "POST"])
@signed_in
def password_change(account: Account) -> Response:
    broker = current_broker()
    cred = credential(broker, account.id)
    if cred is None:
        return error_page(gettext("Sans objet"), gettext("Votre compte n'a pas de mot de passe : vous vous connectez "
                                                         "avec une autre source d'identité."),
                          400, back_url=url_for("account.space"))
    if request.method == "GET":
        return _password_page()
    if not csrf_valid():
        return _password_page({"form": gettext("La page a expiré. Recommencez.")}, 400)
    ip = client_ip()
    if throttle.retry_after(broker.store, cred.email, ip):
        return _password_page({"current_password": gettext("Trop de tentatives. Réessayez dans quelques minutes.")},
                              429)
    current = request.form.get("current_password", "")
    new = request.form.get("password", "")
    try:
        right = len(current) <= 1024 and HASHER.verify(cred.password_hash, current)
    except Exception:  # argon2: mismatch or invalid hash
        right = False
    if not right:  # D-04: the current password is required, whatever the session's age
        throttle.record_failure(broker.store, cred.email, ip)
        return _password_page({"current_password": gettext("Le mot de passe actuel est incorrect.")})
    verdict = check(new, email=cred.email, names=[account.given_name or "", account.family_name or ""],
                    services=service_names(broker))
    errors = {} if verdict.ok else {"password": verdict.message}
    if not errors and new == current:
        errors["password"] = gettext("Le nouveau mot de passe doit être différent de l'actuel.")
    if errors:
        return _password_page(errors)
    throttle.record_success(broker.store, cred.email, ip)
    set_password(broker, account.id, new)
    session = browser()
    ended = sessions_index.end_all(broker, account.id, keep=session.store_key)  # D-15: the other sessions
    session["reauth_at"] = time.time()
    record(broker, account.id, "password_changed")
    notify_password_changed(cred.email)
    heading = gettext("Mot de passe modifié")
    return page("account/message.html", title=page_title(heading), heading=heading,
                paragraphs=[gettext("Votre nouveau mot de passe est enregistré."),
                            gettext("Vos autres sessions (%(count)d) ont été fermées et les services en ligne devront "
                                    "vous reconnecter.", count=ended)],
                links=[(gettext("Mon compte"), url_for("account.space"))])


# -- email ---------------------------------------------------------------------------------------

@blueprint.route("/compte/adresse", methods=["GET", "POST"])
@signed_in
def email_change(account: Account) -> Response:
    broker = current_broker()
    if not mail_enabled(broker):
        return error_page(gettext("Service indisponible"), gettext("L'envoi de courriels n'est pas configuré."), 404)
    stale = require_fresh("adresse")
    if stale:
        return stale
    if request.method == "GET":
        return form_page("account/email.html", gettext("Changer d'adresse électronique"), current=account.email,
                         email="")
    email = normalise_email(request.form.get("email", ""))[:254]
    if not csrf_valid():
        return form_page("account/email.html", gettext("Changer d'adresse électronique"),
                         {"form": gettext("La page a expiré.")}, 400, current=account.email, email=email)
    refused = throttled("email_change", account.id)
    if refused:
        return refused
    if not valid_email(email):
        error = gettext("Indiquez une adresse électronique valide, par exemple nom@exemple.nc.")
    elif email == account.email:
        error = gettext("C'est déjà votre adresse.")
    else:
        error = ""
    if error:
        return form_page("account/email.html", gettext("Changer d'adresse électronique"), {"email": error},
                         current=account.email, email=email)
    throttle.count_scoped(broker.store, "email_change", {account.id: 3}, base=60)
    try:
        if email_exists(email):
            send(broker.config.broker.smtp, email, "email_taken", reset_url=issuer_url("account.reset_request"))
        else:
            token = tokens.issue(broker, "email_change", email, account_id=account.id)
            send(broker.config.broker.smtp, email, "email_change_verify",
                 link=issuer_url("account.confirm", jeton=token), minutes=tokens.LIFETIMES["email_change"] // 60)
    except MailError:
        return error_page(*SEND_FAILED, status=503)
    heading = gettext("Vérifiez votre messagerie")
    return page("account/message.html", title=page_title(heading), heading=heading,
                paragraphs=[gettext("Un lien de confirmation vient d'être envoyé à %(email)s. Votre adresse ne "
                                    "changera qu'une fois ce lien ouvert et confirmé.", email=email)],
                links=[(gettext("Mon compte"), url_for("account.space"))])


# -- sessions ------------------------------------------------------------------------------------

@blueprint.route("/compte/sessions", methods=["POST"])
@signed_in
def sessions_end(account: Account) -> Response:
    broker = current_broker()
    if not csrf_valid():
        return page_expired()
    session = browser()
    if request.form.get("action") == "all":
        sessions_index.end_all(broker, account.id)
        record(broker, account.id, "sessions_ended")
        session.destroy()
        return page("logged_out.html", title=page_title(gettext("Vous êtes déconnecté")))
    sid = request.form.get("sid", "")
    sessions_index.end(broker, account.id, sid)
    if sid == session.get("sid"):
        session.destroy()
        return page("logged_out.html", title=page_title(gettext("Vous êtes déconnecté")))
    return redirect(url_for("account.space") + "#sessions", code=303)


# -- my data -------------------------------------------------------------------------------------

@blueprint.route("/compte/donnees", methods=["POST"])
@signed_in
def data_export(account: Account) -> Response:
    broker = current_broker()
    if not csrf_valid():
        return page_expired()
    cred = credential(broker, account.id)
    with broker.sessions() as s:
        grants = list(s.execute(select(Grant).where(Grant.account_id == account.id)).scalars())
    data = {
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "account": {"id": account.id, "created_at": account.created_at.isoformat(), "email": account.email,
                    "email_verified": account.email_verified,
                    "identity": {k: v for k, v in pivot_attributes(account).items() if k not in ("email", "email_verified")},
                    "identity_verified_at_level": account.identity_level or None},
        "password": {"set": cred is not None,
                     "changed_at": cred.password_changed_at.isoformat() if cred and cred.password_changed_at else None},
        "second_factor": {"totp": bool(cred and cred.totp_secret),
                          "recovery_codes_left": mfa.recovery_codes_left(broker, account.id)},
        "linked_sources": [{"source": link.provider_id, "subject": link.subject, "level": link.acr,
                            "linked_at": link.created_at.isoformat(), "last_used_at": link.last_used_at.isoformat()}
                           for link in links_of(broker.sessions, account.id)],
        "authorizations": [{"service": g.client_id, "scope": g.scope, "level": g.acr, "at": g.created_at.isoformat(),
                            "revoked": g.revoked} for g in grants],
        "history": [{"event": e.kind, "at": e.at.isoformat(), "service": e.client_id, "source": e.provider_id,
                     "level": e.acr} for e in history(broker, account.id, limit=10_000)],
        "active_sessions": [{"since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a.created)),
                             "source": a.provider_id, "level": a.acr, "device": a.user_agent}
                            for a in sessions_index.active(broker, account.id)],
        "known_browsers": [{"browser": d.browser, "system": d.system, "first_seen": d.first_seen.isoformat(),
                            "last_seen": d.last_seen.isoformat()} for d in devices.known(broker, account.id)],
    }
    body = json.dumps(data, ensure_ascii=False, indent=2)
    audit.info("account data exported account=%s", account.id)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": 'attachment; filename="nc-connect-mes-donnees.json"'})


# -- deletion ------------------------------------------------------------------------------------

@blueprint.route("/compte/supprimer", methods=["GET", "POST"])
@signed_in
def delete_account(account: Account) -> Response:
    broker = current_broker()
    stale = require_fresh("supprimer")
    if stale:
        return stale
    if request.method == "GET":
        return form_page("account/delete.html", gettext("Supprimer mon compte"))
    if not csrf_valid():
        return form_page("account/delete.html", gettext("Supprimer mon compte"),
                         {"form": gettext("La page a expiré. Recommencez.")}, 400)
    if request.form.get("confirm") != "oui":
        return form_page("account/delete.html", gettext("Supprimer mon compte"),
                         {"confirm": gettext("Cochez la case pour confirmer la suppression.")})
    email = account.email
    sessions_index.end_all(broker, account.id)
    with broker.sessions.begin() as s:
        s.execute(delete(AccountEvent).where(AccountEvent.account_id == account.id))
        s.execute(delete(Account).where(Account.id == account.id))  # cascades: credentials, links, grants, tokens,
        # consents, known browsers (foreign keys ON DELETE CASCADE; SQLite's are enforced by broker.db)
    record(broker, account.id, "account_deleted")
    browser().destroy()
    if email and mail_enabled(broker):
        try:
            send(broker.config.broker.smtp, email, "account_deleted")
        except MailError:
            pass
    heading = gettext("Compte supprimé")
    return page("account/message.html", title=page_title(heading), heading=heading,
                paragraphs=[gettext("Votre compte %(brand)s et les données qui s'y rattachent ont été supprimés. "
                                    "Les services en ligne auxquels vous vous étiez connecté conservent leurs propres "
                                    "données : adressez-vous à eux pour les faire supprimer.", brand=brand())])
