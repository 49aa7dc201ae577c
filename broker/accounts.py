"""Citizens' accounts: creation and the credential lookup the local provider uses."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from broker.errors import BrokerError
from broker.models import Account
from providers.local import hash_password

PIVOT_FIELDS = ("given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry", "preferred_username")


class AccountExists(BrokerError):
    pass


def normalise_email(email: str) -> str:
    return email.strip().lower()


def pivot_attributes(account: Account) -> dict[str, Any]:
    attrs: dict[str, Any] = {f: getattr(account, f) for f in PIVOT_FIELDS}
    if account.birthdate:
        attrs["birthdate"] = account.birthdate.isoformat()
    attrs["email"] = account.email
    attrs["email_verified"] = account.email_verified
    return {k: v for k, v in attrs.items() if v is not None}


def create_account(sessions: sessionmaker, email: str, password: str, **pivot: Any) -> Account:
    unknown = set(pivot) - set(PIVOT_FIELDS)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    if isinstance(pivot.get("birthdate"), str):
        pivot["birthdate"] = date.fromisoformat(pivot["birthdate"])
    account = Account(email=normalise_email(email), password_hash=hash_password(password), **pivot)
    try:
        with sessions.begin() as s:
            s.add(account)
    except IntegrityError:
        raise AccountExists(f"an account already exists for {normalise_email(email)}") from None
    return account


def get_account(sessions: sessionmaker, account_id: str) -> Account | None:
    with sessions() as s:
        account = s.get(Account, account_id)
        return account if account and not account.disabled else None


class AccountCredentials:
    """The local provider's view of the accounts table."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def find(self, email: str):
        with self.sessions() as s:
            account = s.execute(select(Account).where(Account.email == normalise_email(email))).scalar()
            if account is None or account.disabled:
                return None
            return account.id, account.password_hash or "", pivot_attributes(account)

    def update_hash(self, account_id: str, new_hash: str) -> None:
        with self.sessions.begin() as s:
            s.execute(update(Account).where(Account.id == account_id).values(password_hash=new_hash))
