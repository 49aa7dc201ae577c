"""Provider kinds by ``type:``.

Built-in kinds are listed here; outside kinds register an object with the same
two functions through the ``nc_connect.providers`` entry point group.  Never a
dotted path read from config.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Protocol

from providers.base import Provider


@dataclass(frozen=True)
class Services:
    """What the broker lends to providers (never Flask, never tables directly)."""

    credentials: Any = None  # providers.local.CredentialStore
    config_dir: Path | None = None  # relative paths in provider files (keys, CA bundles) start here
    public_url: str | None = None  # the broker's issuer: SAML endpoints (ACS, SLO, metadata) derive from it


class ProviderKind(Protocol):
    def validate(self, raw: dict[str, Any], config_dir: Path) -> list[tuple[str, str]]:
        """Problems (key, message) with the kind-specific keys of a provider file."""

    def build(self, provider_id: str, name: str, raw: dict[str, Any], services: Services) -> Provider: ...


@dataclass(frozen=True)
class _Kind:
    validate: Callable[[dict[str, Any], Path], list[tuple[str, str]]]
    build: Callable[[str, str, dict[str, Any], Services], Provider]


def _local() -> ProviderKind:
    from providers.local import SECOND_FACTOR_LEVELS, LocalProvider

    def validate(raw: dict[str, Any], config_dir: Path) -> list[tuple[str, str]]:
        problems = [(key, "unknown key") for key in sorted(raw) if key != "second_factor_level"]
        if raw.get("second_factor_level", "eidas2") not in SECOND_FACTOR_LEVELS:
            problems.append(("second_factor_level", f"must be one of {', '.join(SECOND_FACTOR_LEVELS)}"))
        return problems

    return _Kind(
        validate=validate,
        build=lambda pid, name, raw, services: LocalProvider(
            pid, name, services.credentials, second_factor_level=raw.get("second_factor_level", "eidas2")),
    )


def _oidc() -> ProviderKind:
    from providers.oidc import OidcProvider, validate_settings

    return _Kind(validate=lambda raw, config_dir: validate_settings(raw, config_dir),
                 build=lambda pid, name, raw, services: OidcProvider.from_settings(
                     pid, name, raw, base_dir=services.config_dir))


def _saml() -> ProviderKind:
    from providers.saml import SamlProvider, validate_settings

    return _Kind(validate=lambda raw, config_dir: validate_settings(raw, config_dir),
                 build=lambda pid, name, raw, services: SamlProvider.from_settings(
                     pid, name, raw, public_url=services.public_url, base_dir=services.config_dir))


BUILTIN: dict[str, Callable[[], ProviderKind]] = {"local": _local, "oidc": _oidc, "saml": _saml}


def known_kinds() -> set[str]:
    return set(BUILTIN) | {ep.name for ep in entry_points(group="nc_connect.providers")}


def kind(name: str) -> ProviderKind:
    if name in BUILTIN:
        return BUILTIN[name]()
    for ep in entry_points(group="nc_connect.providers", name=name):
        return ep.load()
    raise KeyError(name)
