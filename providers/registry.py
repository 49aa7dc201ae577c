"""Provider kinds by ``type:``.  Outside kinds register through the
``nc_connect.providers`` entry point group (never dotted paths read from config)."""

from __future__ import annotations

from importlib.metadata import entry_points

BUILTIN_KINDS = {"local"}


def known_kinds() -> set[str]:
    return BUILTIN_KINDS | {ep.name for ep in entry_points(group="nc_connect.providers")}
