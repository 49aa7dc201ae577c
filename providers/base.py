"""The small interface every kind of identity source implements.

Providers know nothing of Flask routes, sessions or the broker's tables: the
broker owns the browser transaction (``state``, ``nonce``, RelayState, request
ids), keeps whatever opaque ``provider_state`` a provider hands it, and gives it
back on the return.  Password-style sources implement :class:`PasswordProvider`;
redirect-style sources (OIDC, SAML) implement :class:`RedirectProvider`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

LEVELS = ("eidas1", "eidas2", "eidas3")


def level_rank(acr: str | None) -> int:
    """0 for an unknown level, 1..3 for eidas1..eidas3."""
    return LEVELS.index(acr) + 1 if acr in LEVELS else 0


class UpstreamError(Exception):
    """The source refused or failed.  ``message`` may be shown to the citizen (French);
    ``detail`` goes to the logs only and never carries tokens."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(detail or message)
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class UpstreamIdentity:
    """What a source asserts about the person, raw and unmapped."""

    provider_id: str
    subject: str
    acr: str  # eIDAS level really reached (eidas1..eidas3), already mapped from the upstream value
    amr: tuple[str, ...]
    auth_time: int
    attributes: Mapping[str, Any] = field(default_factory=dict)
    issuer: str = ""
    # Kept server-side by the broker for logout (e.g. the upstream ID token); never sent to browsers or clients.
    session_data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoginRequest:
    """What the broker asks of a redirect-style source for one browser transaction."""

    state: str  # >= 128 random bits, bound to the browser session by the broker
    nonce: str  # >= 128 random bits
    callback_url: str  # this provider's own callback URL (one per provider: mix-up defence)
    acr_values: tuple[str, ...] = ()  # eIDAS levels acceptable to the téléservice, lowest first
    force_login: bool = False  # prompt=login / max_age exceeded upstream
    max_age: int | None = None
    login_hint: str | None = None
    ui_locales: str | None = None


@dataclass(frozen=True)
class LoginStep:
    """Where to send the browser: a redirect, or an auto-submitted POST form (SAML HTTP-POST)."""

    redirect_url: str | None = None
    post_url: str | None = None
    post_fields: Mapping[str, str] = field(default_factory=dict)
    provider_state: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    provider_id: str
    name: str
    level: str  # the highest eIDAS level this source can reach


@runtime_checkable
class PasswordProvider(Provider, Protocol):
    def authenticate(self, username: str, password: str) -> UpstreamIdentity | None:
        """The identity when the credentials are right, None otherwise (never says which part was wrong)."""


@runtime_checkable
class RedirectProvider(Provider, Protocol):
    def begin_login(self, request: LoginRequest) -> LoginStep:
        """Build the upstream authentication request."""

    def complete_login(self, params: Mapping[str, str], provider_state: Mapping[str, Any],
                       request: LoginRequest) -> UpstreamIdentity:
        """Check the upstream's answer (the broker has already matched ``state``); raise UpstreamError."""

    def begin_logout(self, session_data: Mapping[str, Any], state: str, return_url: str) -> str | None:
        """URL of the upstream logout to chain to (None when the source has none)."""
