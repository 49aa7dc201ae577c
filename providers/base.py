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


def N_(message: str) -> str:
    """Mark a citizen-facing message for translation (extracted by ``make i18n``); the broker's pages
    translate it when they show it, so providers stay free of Flask and Babel."""
    return message


class UpstreamError(Exception):
    """The source refused or failed.  ``message`` may be shown to the citizen (French, marked with N_);
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
    # A one-time identifier of the upstream message (e.g. the SAML Assertion ID): the broker accepts it
    # once and remembers it until ``replay_until`` (a timestamp); providers themselves store nothing.
    replay_id: str = ""
    replay_until: int = 0


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


@dataclass(frozen=True)
class LogoutMessage:
    """A front-channel logout message from the upstream, already verified by the provider.

    ``kind == "request"``: the upstream ends the citizen's session (IdP-initiated);
    ``subject`` and ``session_indexes`` say which, ``redirect_url`` carries the signed
    answer back.  ``kind == "response"``: the answer to the broker's own logout request,
    whose ``relay_state`` is the broker's logout ``state``.
    """

    kind: str
    relay_state: str = ""
    success: bool = True
    subject: str = ""
    session_indexes: tuple[str, ...] = ()
    message_id: str = ""
    redirect_url: str = ""


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


# Optional capabilities of a redirect-style provider, looked up with getattr by the broker:
#   answers_by_post: bool          the upstream returns by a cross-site POST (SAML): the broker binds the
#                                  transaction with a separate SameSite=None cookie (checklist E-08)
#   allows_unsolicited: bool       a POST without a pending transaction may be considered (IdP-initiated)
#   form_action_origins() -> set   origins the broker's pages may post or redirect to (CSP form-action)
#   sp_metadata() -> (bytes, type) metadata the broker publishes for this source
#   handle_logout_message(query_string) -> LogoutMessage   front-channel logout at the broker's endpoint
#   session_key(session_data) / logout_key(message) -> str  what links a logout message to sessions
