"""Durable tables (SQLAlchemy 2).  Schema changes go through Alembic migrations."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

from sqlalchemy import Boolean, Date, DateTime, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class Account(Base):
    """A citizen: one pivot identity, reached through one or more linked sources."""

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    preferred_username: Mapped[str | None] = mapped_column(String(200))
    birthdate: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(10))
    birthplace: Mapped[str | None] = mapped_column(String(5))
    birthcountry: Mapped[str | None] = mapped_column(String(5))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # Level of assurance of the source the pivot identity came from ("" when only declared by the citizen).
    identity_level: Mapped[str] = mapped_column(String(10), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LocalCredential(Base):
    """The local source's login: an email and an argon2id hash, for one account."""

    __tablename__ = "local_credentials"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Second factor (TOTP, RFC 6238): the base32 secret once enrolment is confirmed, and the last
    # time step accepted, so that a code is never accepted twice.
    totp_secret: Mapped[str | None] = mapped_column(String(255))  # encrypted (broker.secretbox)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    totp_last_step: Mapped[int | None] = mapped_column()


class UpstreamLink(Base):
    """An identity at an upstream source (provider id, subject) linked to an account."""

    __tablename__ = "upstream_links"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    provider_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    acr: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("provider_id", "subject", name="uq_upstream_links_provider_subject"),)


class Grant(Base):
    """What one authorization code gave one client: the root every token of it hangs from."""

    __tablename__ = "grants"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(512))
    auth_time: Mapped[int] = mapped_column()
    acr: Mapped[str] = mapped_column(String(32))
    amr: Mapped[str] = mapped_column(String(200))
    sid: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RefreshToken(Base):
    """Refresh tokens, stored only as SHA-256 hashes; rotated at each use."""

    __tablename__ = "refresh_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EphemeralEntry(Base):
    """The database flavour of the ephemeral store (used when no Redis is configured)."""

    __tablename__ = "ephemeral"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (Index("ix_ephemeral_expires_at", "expires_at"),)


class AccountToken(Base):
    """Emailed one-time links (address verification, password reset, email change), stored as SHA-256 only.

    A sign-up creates no account until its link is used: ``data`` holds the pending sign-up
    (declared identity and password hash) and ``account_id`` is empty.
    """

    __tablename__ = "account_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))  # signup, reset, email_change
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)  # where the link was sent
    data: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RecoveryCode(Base):
    """Second-factor recovery codes (80 random bits each), stored as SHA-256 only, single use."""

    __tablename__ = "recovery_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccountEvent(Base):
    """The citizen's connection history and the account's audit trail.

    ``account_id`` is deliberately not a foreign key: when an account is deleted its history
    goes with it, but the record of the deletion itself stays.
    """

    __tablename__ = "account_events"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    client_id: Mapped[str | None] = mapped_column(String(64))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    acr: Mapped[str | None] = mapped_column(String(10))
    __table_args__ = (Index("ix_account_events_account_at", "account_id", "at"),)


class AccountSession(Base):
    """Index of an account's browser sessions, whatever the ephemeral store (Redis or the database).

    ``store_key`` is the session's key in the store (a SHA-256 of the cookie, never the cookie):
    "sign out everywhere" and a password reset delete every listed key and revoke the grants of
    every listed ``sid``.  ``clients`` (the téléservices that received a code in the session,
    space-separated) and ``expires_at`` (the end of its absolute lifetime) outlive the state in the
    store, so that a session that expires still sends its back-channel logout tokens (the sweep,
    ``broker.account.sessions_index.sweep``).
    """

    __tablename__ = "account_sessions"
    store_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    sid: Mapped[str] = mapped_column(String(64), index=True)
    provider_id: Mapped[str | None] = mapped_column(String(64))
    acr: Mapped[str | None] = mapped_column(String(10))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    clients: Mapped[str | None] = mapped_column(Text)  # NULL: indexed before migration 0006
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Consent(Base):
    """What a citizen agreed to send to a téléservice: the scopes, hence exactly which pivot data."""

    __tablename__ = "consents"
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KnownDevice(Base):
    """A browser a citizen has logged in from with their password (the ``ncc_device`` cookie).

    Only a SHA-256 of the account id and the cookie's random value is stored (never the cookie),
    so one browser shared by two accounts is not linkable across them; ``browser`` and ``system``
    are the families read from the User-Agent ("Firefox", "Windows"), never the header itself.
    A login from a browser not listed here sends the citizen a notice (checklist D-09).
    """

    __tablename__ = "known_devices"
    device_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    browser: Mapped[str | None] = mapped_column(String(40))
    system: Mapped[str | None] = mapped_column(String(40))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
