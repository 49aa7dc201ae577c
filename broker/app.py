"""The Flask application factory: composes configuration, storage, keys and providers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from broker import db
from broker.accounts import AccountCredentials
from broker.config import MAPPINGS_DIR, Config, Problem, ProviderSettings, config_dir_from, load_config
from broker.keys import KeyRing
from broker.store import EphemeralStore, make_store
from providers import registry

log = logging.getLogger("nc_connect")


@dataclass
class Broker:
    """Everything a request needs, built once at start-up."""

    config: Config
    engine: Engine
    sessions: sessionmaker
    store: EphemeralStore
    keys: KeyRing
    providers: dict
    mappings: dict


def check_provider(settings: ProviderSettings, display: str) -> list[Problem]:
    """Kind-specific checks of a provider file, and its mapping file (errors name file and line)."""
    kinds = registry.known_kinds()
    if settings.type not in kinds:
        return [Problem(display, "type", f"unknown identity source type {settings.type!r}; known: {', '.join(sorted(kinds))}")]
    config_dir = Path(display).resolve().parent.parent
    raw = dict(settings.model_extra or {})
    problems = [Problem(display, key, msg) for key, msg in registry.kind(settings.type).validate(raw, config_dir)]
    return problems + check_mapping(settings, display)


def check_mapping(settings: ProviderSettings, display: str) -> list[Problem]:
    path = MAPPINGS_DIR / settings.mapping
    if not path.is_file():
        return [Problem(display, "mapping", f"mapping file {settings.mapping!r} not found under mappings/")]
    from mappings.engine import MappingError, load_mapping

    try:
        load_mapping(path)
    except MappingError as exc:
        return [Problem(f"mappings/{settings.mapping}", f"line {exc.line}", exc.message)]
    return []


def load(config_dir: str | Path | None) -> Config:
    return load_config(config_dir_from(str(config_dir) if config_dir else None), provider_validator=check_provider)


def build_providers(config: Config, sessions: sessionmaker) -> dict:
    """The enabled sources, in display order."""
    services = registry.Services(credentials=AccountCredentials(sessions), config_dir=config.directory,
                                 public_url=config.broker.issuer)
    providers = {}
    for pid, settings in sorted(config.providers.items(), key=lambda kv: (kv[1].order, kv[0])):
        if settings.enabled:
            raw = dict(settings.model_extra or {})
            providers[pid] = registry.kind(settings.type).build(pid, settings.name, raw, services)
    return providers


def load_mappings(config: Config) -> dict:
    from mappings.engine import load_mapping

    return {pid: load_mapping(MAPPINGS_DIR / s.mapping) for pid, s in config.providers.items() if s.enabled}


def create_app(config: Config | str | Path | None = None, *, migrate: bool | None = None,
               sweeper: bool = False) -> Flask:
    """Build the broker.  ``config`` is a loaded Config or a configuration directory.

    Migrations run automatically on the embedded SQLite default (``migrate=None``);
    on a server database ``nc-connect db upgrade`` is the administrator's step.
    ``sweeper``: a serving broker (``serve``, ``wsgi.py``) also sweeps expired sessions
    every ``session_sweep_interval`` seconds in a daemon thread (back-channel logout).
    """
    if not isinstance(config, Config):
        config = load(config)
    engine = db.make_engine(config.database_url)
    if migrate or (migrate is None and engine.dialect.name == "sqlite"):
        db.upgrade(engine)
    sessions = db.make_sessionmaker(engine)
    broker = Broker(
        config=config,
        engine=engine,
        sessions=sessions,
        store=make_store(config.broker.redis_url, sessions, config.broker.redis_key_prefix),
        keys=KeyRing(config.keys_dir, config.broker.key_rotation_overlap),
        providers=build_providers(config, sessions),
        mappings=load_mappings(config),
    )
    broker.keys.jwks()  # fail at start-up, not at the first request, when keys are missing

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, JSON_SORT_KEYS=False)
    app.extensions["nc_connect"] = broker

    from broker import web
    from broker.oidc import blueprint as oidc_blueprint
    from broker import consent_pages, upstream  # noqa: F401 - register their routes on the pages blueprint
    from broker import upstream_saml  # noqa: F401 - SAML metadata and single logout endpoints
    from broker.pages import blueprint as pages_blueprint
    from broker.account import blueprint as account_blueprint
    from broker.health import blueprint as health_blueprint

    web.init_app(app)
    app.register_blueprint(health_blueprint)
    app.register_blueprint(oidc_blueprint)
    app.register_blueprint(pages_blueprint)
    app.register_blueprint(account_blueprint)
    if sweeper:
        from broker.account.sessions_index import start_sweeper

        # at the first request, in the process that serves it: never in a pre-forking master
        # (gunicorn --preload, uWSGI) nor in a reloader's watcher
        @app.before_request
        def _sweep_in_this_process() -> None:
            start_sweeper(broker)
    return app


def current_broker() -> Broker:
    return current_app.extensions["nc_connect"]
