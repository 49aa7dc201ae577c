"""The local login/password source: accounts held by NC Connect itself."""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from providers.base import UpstreamIdentity

# OWASP's argon2id profile "m=19 MiB, t=2, p=1" (security checklist D-05).
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified when the account does not exist, so both answers cost the same time (D-07).
_DUMMY_HASH = HASHER.hash("nc-connect dummy password for timing equalisation")


class CredentialStore(Protocol):
    """Implemented by the broker; the provider never touches tables itself."""

    def find(self, email: str) -> tuple[str, str, dict[str, Any]] | None:
        """(account id, password hash, pivot attributes) of an active account, or None."""

    def update_hash(self, account_id: str, new_hash: str) -> None: ...


def hash_password(password: str) -> str:
    return HASHER.hash(password)


# What a password alone reaches.  The citizen's identity itself is declared, not verified.
PASSWORD_LEVEL = "eidas1"
SECOND_FACTOR_LEVELS = ("eidas1", "eidas2")


class LocalProvider:
    """``level`` is the highest level a local login can reach: ``second_factor_level``, with a
    second factor (TOTP).  A password-only login yields :data:`PASSWORD_LEVEL`; a deployment
    following FranceConnect's rule that a second factor alone does not raise the level sets
    ``second_factor_level: eidas1``."""

    def __init__(self, provider_id: str, name: str, credentials: CredentialStore,
                 clock: Callable[[], float] = time.time, second_factor_level: str = "eidas2") -> None:
        if second_factor_level not in SECOND_FACTOR_LEVELS:
            raise ValueError(f"second_factor_level must be one of {SECOND_FACTOR_LEVELS}")
        self.provider_id = provider_id
        self.name = name
        self.credentials = credentials
        self.clock = clock
        self.level = second_factor_level
        self.second_factor_level = second_factor_level

    def authenticate(self, username: str, password: str) -> UpstreamIdentity | None:
        found = self.credentials.find(username.strip().lower())
        if found is None or not found[1]:
            try:
                HASHER.verify(_DUMMY_HASH, password)
            except VerificationError:
                pass
            return None
        account_id, stored, attributes = found
        try:
            HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if HASHER.check_needs_rehash(stored):
            self.credentials.update_hash(account_id, HASHER.hash(password))
        return UpstreamIdentity(
            provider_id=self.provider_id,
            subject=account_id,
            acr=PASSWORD_LEVEL,
            amr=("pwd",),
            auth_time=int(self.clock()),
            attributes=attributes,
        )
