"""The small interface every kind of identity source implements.

Providers know nothing of Flask routes, sessions or the broker's tables: the
broker owns the browser transaction and hands providers what they need.
Password-style sources implement :class:`PasswordProvider`; redirect-style
sources (OIDC, SAML) come with the identity source plugin issue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

LEVELS = ("eidas1", "eidas2", "eidas3")


def level_rank(acr: str | None) -> int:
    """0 for an unknown level, 1..3 for eidas1..eidas3."""
    return LEVELS.index(acr) + 1 if acr in LEVELS else 0


@dataclass(frozen=True)
class UpstreamIdentity:
    """What a source asserts about the person, raw and unmapped."""

    provider_id: str
    subject: str
    acr: str
    amr: tuple[str, ...]
    auth_time: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    provider_id: str
    name: str
    acr: str  # the highest level of assurance this source can reach


class PasswordProvider(Provider, Protocol):
    def authenticate(self, username: str, password: str) -> UpstreamIdentity | None:
        """The identity when the credentials are right, None otherwise (never says which part was wrong)."""
