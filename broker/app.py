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
from broker.config import Config, Problem, ProviderSettings, config_dir_from, load_config
from broker.keys import KeyRing
from broker.store import EphemeralStore, make_store
from providers.local import LocalProvider
from providers.registry import known_kinds

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


def check_provider(settings: ProviderSettings, display: str) -> list[Problem]:
    if settings.type not in known_kinds():
        return [Problem(display, "type", f"unknown identity source type {settings.type!r}; known: {', '.join(sorted(known_kinds()))}")]
    extra = sorted(set(settings.model_extra or {}))
    if settings.type == "local" and extra:
        return [Problem(display, k, "unknown key") for k in extra]
    return []


def load(config_dir: str | Path | None) -> Config:
    return load_config(config_dir_from(str(config_dir) if config_dir else None), provider_validator=check_provider)


def build_providers(config: Config, sessions: sessionmaker) -> dict:
    providers = {}
    for pid, settings in sorted(config.providers.items(), key=lambda kv: (kv[1].order, kv[0])):
        if settings.enabled and settings.type == "local":
            providers[pid] = LocalProvider(pid, settings.name, AccountCredentials(sessions))
    return providers


def create_app(config: Config | str | Path | None = None, *, migrate: bool | None = None) -> Flask:
    """Build the broker.  ``config`` is a loaded Config or a configuration directory.

    Migrations run automatically on the embedded SQLite default (``migrate=None``);
    on a server database ``nc-connect db upgrade`` is the administrator's step.
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
    )
    broker.keys.jwks()  # fail at start-up, not at the first request, when keys are missing

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, JSON_SORT_KEYS=False)
    app.extensions["nc_connect"] = broker

    from broker import web
    from broker.oidc import blueprint as oidc_blueprint
    from broker.pages import blueprint as pages_blueprint

    web.init_app(app)
    app.register_blueprint(oidc_blueprint)
    app.register_blueprint(pages_blueprint)
    return app


def current_broker() -> Broker:
    return current_app.extensions["nc_connect"]
