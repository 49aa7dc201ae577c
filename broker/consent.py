"""Consent: before the first login to a téléservice, and when it asks for more, the citizen
sees exactly which pivot data goes to it and decides.  Decisions are stored, listed in the
citizen's space and revocable.  A client marked ``consent: implied`` (a service of the same
administration) skips the page, and the audit log says so."""

from __future__ import annotations

import logging

from flask_babel import lazy_gettext
from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from broker.claims import claims_for_scopes
from broker.config import ClientSettings
from broker.models import Consent, utcnow

audit = logging.getLogger("nc_connect.audit")

# Scopes that release no personal data need no consent.
FREE_SCOPES = {"openid"}

# The labels are translated when shown (lazy_gettext): in the language of the page that lists them.
CLAIM_LABELS = {
    "given_name": lazy_gettext("Vos prénoms"),
    "family_name": lazy_gettext("Votre nom de naissance"),
    "preferred_username": lazy_gettext("Votre nom d'usage"),
    "birthdate": lazy_gettext("Votre date de naissance"),
    "gender": lazy_gettext("Votre sexe"),
    "birthplace": lazy_gettext("Votre lieu de naissance"),
    "birthcountry": lazy_gettext("Votre pays de naissance"),
    "email": lazy_gettext("Votre adresse électronique"),
}
OFFLINE_ACCESS_LABEL = lazy_gettext("Un accès prolongé, même après votre déconnexion")


def data_labels(scopes: list[str]) -> list:
    """The personal data the scopes release, in the citizen's words (email_verified goes with email):
    lazy strings, translated when the page shows them."""
    labels = [CLAIM_LABELS[c] for c in claims_for_scopes(scopes) if c in CLAIM_LABELS]
    if "offline_access" in scopes:
        labels.append(OFFLINE_ACCESS_LABEL)
    return labels


def granted_scopes(sessions: sessionmaker, account_id: str, client_id: str) -> set[str]:
    with sessions() as s:
        consent = s.get(Consent, (account_id, client_id))
    return set(consent.scope.split()) if consent else set()


def missing(sessions: sessionmaker, account_id: str, client: ClientSettings, scopes: list[str],
            *, forced: bool = False) -> list[str]:
    """Scopes the citizen has not agreed to yet for this client ([] when nothing to ask)."""
    if client.consent == "implied":
        audit.info("consent implied client=%s account=%s", client.client_id, account_id)
        return []
    wanted = [s for s in scopes if s not in FREE_SCOPES]
    if forced:
        return wanted
    have = granted_scopes(sessions, account_id, client.client_id)
    return [s for s in wanted if s not in have]


def grant(sessions: sessionmaker, account_id: str, client_id: str, scopes: list[str]) -> None:
    with sessions.begin() as s:
        consent = s.get(Consent, (account_id, client_id))
        if consent is None:
            s.add(Consent(account_id=account_id, client_id=client_id, scope=" ".join(scopes)))
        else:
            consent.scope = " ".join(sorted(set(consent.scope.split()) | set(scopes)))
            consent.granted_at = utcnow()
    audit.info("consent granted client=%s account=%s scope=%s", client_id, account_id, " ".join(scopes))


def revoke(sessions: sessionmaker, account_id: str, client_id: str) -> None:
    with sessions.begin() as s:
        s.execute(delete(Consent).where(Consent.account_id == account_id, Consent.client_id == client_id))
    audit.info("consent revoked client=%s account=%s", client_id, account_id)


def consents_of(sessions: sessionmaker, account_id: str) -> list[Consent]:
    with sessions() as s:
        return list(s.execute(select(Consent).where(Consent.account_id == account_id)
                              .order_by(Consent.granted_at.desc())).scalars())
