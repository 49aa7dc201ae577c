"""Citizens' accounts: creation, the local credentials and the links to upstream sources."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from broker.errors import BrokerError
from broker.models import Account, LocalCredential, UpstreamLink, utcnow
from providers.local import hash_password

PIVOT_FIELDS = ("given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry", "preferred_username")
IDENTITY_FIELDS = ("given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry")


class AccountExists(BrokerError):
    pass


def normalise_email(email: str) -> str:
    return email.strip().lower()


def pivot_attributes(account: Account) -> dict[str, Any]:
    attrs: dict[str, Any] = {f: getattr(account, f) for f in PIVOT_FIELDS}
    if account.birthdate:
        attrs["birthdate"] = account.birthdate.isoformat()
    if account.email:
        attrs["email"] = account.email
        attrs["email_verified"] = account.email_verified
    return {k: v for k, v in attrs.items() if v is not None}


def _pivot_columns(pivot: dict[str, Any]) -> dict[str, Any]:
    unknown = set(pivot) - set(PIVOT_FIELDS)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    out = {k: (v if v != "" else None) for k, v in pivot.items()}
    if isinstance(out.get("birthdate"), str):
        out["birthdate"] = date.fromisoformat(out["birthdate"])
    return out


def create_account(sessions: sessionmaker, email: str, password: str, **pivot: Any) -> Account:
    """A local account: its pivot identity is declared, not verified."""
    email = normalise_email(email)
    account = Account(email=email, **_pivot_columns(pivot))
    try:
        with sessions.begin() as s:
            s.add(account)
            s.flush()
            s.add(LocalCredential(account_id=account.id, email=email, password_hash=hash_password(password)))
    except IntegrityError:
        raise AccountExists(f"an account already exists for {email}") from None
    return account


def create_from_upstream(sessions: sessionmaker, provider_id: str, subject: str, acr: str,
                         pivot: dict[str, Any]) -> Account:
    email = pivot.get("email")
    account = Account(email=normalise_email(email) if email else None, email_verified=bool(email),
                      identity_level=acr, **_pivot_columns({k: v for k, v in pivot.items() if k in PIVOT_FIELDS}))
    with sessions.begin() as s:
        s.add(account)
        s.flush()
        s.add(UpstreamLink(provider_id=provider_id, subject=subject, account_id=account.id, acr=acr))
    return account


def get_account(sessions: sessionmaker, account_id: str) -> Account | None:
    with sessions() as s:
        account = s.get(Account, account_id)
        return account if account and not account.disabled else None


def linked_account(sessions: sessionmaker, provider_id: str, subject: str) -> str | None:
    """The account an upstream identity is linked to; records the use."""
    with sessions.begin() as s:
        link = s.execute(select(UpstreamLink).where(UpstreamLink.provider_id == provider_id,
                                                    UpstreamLink.subject == subject)).scalar()
        if link is None:
            return None
        link.last_used_at = utcnow()
        return link.account_id


def link(sessions: sessionmaker, account_id: str, provider_id: str, subject: str, acr: str) -> None:
    with sessions.begin() as s:
        s.add(UpstreamLink(provider_id=provider_id, subject=subject, account_id=account_id, acr=acr))


def links_of(sessions: sessionmaker, account_id: str) -> list[UpstreamLink]:
    with sessions() as s:
        return list(s.execute(select(UpstreamLink).where(UpstreamLink.account_id == account_id)).scalars())


def has_local_credential(sessions: sessionmaker, account_id: str) -> bool:
    with sessions() as s:
        return s.get(LocalCredential, account_id) is not None


def matching_accounts(sessions: sessionmaker, pivot: dict[str, Any]) -> list[Account]:
    """Accounts whose six identity fields equal ``pivot``'s exactly, or that share its email."""
    cols = _pivot_columns({k: pivot[k] for k in IDENTITY_FIELDS if k in pivot})
    found: dict[str, Account] = {}
    with sessions() as s:
        if len(cols) == len(IDENTITY_FIELDS) and all(v is not None or k == "birthplace" for k, v in cols.items()):
            query = select(Account).where(Account.disabled.is_(False))
            for key, value in cols.items():
                column = getattr(Account, key)
                query = query.where(column.is_(None) if value is None else column == value)
            found.update({a.id: a for a in s.execute(query).scalars()})
        if pivot.get("email"):
            email = normalise_email(pivot["email"])
            query = select(Account).where(Account.email == email, Account.disabled.is_(False))
            found.update({a.id: a for a in s.execute(query).scalars()})
    return list(found.values())


def identity_matches(account: Account, pivot: dict[str, Any]) -> bool:
    """Every identity field present on both sides and equal (birthplace may be empty for both)."""
    mine = pivot_attributes(account)
    for key in IDENTITY_FIELDS:
        theirs = pivot.get(key) or ""
        if (mine.get(key) or "") != theirs or (key != "birthplace" and not theirs):
            return False
    return True


class AccountCredentials:
    """The local provider's view of the local credentials."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def find(self, email: str):
        with self.sessions() as s:
            row = s.execute(
                select(LocalCredential, Account).join(Account, Account.id == LocalCredential.account_id)
                .where(LocalCredential.email == normalise_email(email))
            ).first()
            if row is None or row[1].disabled:
                return None
            return row[1].id, row[0].password_hash, pivot_attributes(row[1])

    def update_hash(self, account_id: str, new_hash: str) -> None:
        with self.sessions.begin() as s:
            s.execute(update(LocalCredential).where(LocalCredential.account_id == account_id)
                      .values(password_hash=new_hash))
