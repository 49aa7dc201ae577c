"""The ``nc-connect`` command line: serve, check-config, db, keys, users, sessions."""

from __future__ import annotations

import getpass
import logging
import sys

import click

from broker import keys as keyring
from broker.config import Config, config_dir_from
from broker.errors import BrokerError, ConfigError


def _load(ctx: click.Context) -> Config:
    from broker.app import load

    try:
        return load(ctx.obj["config_dir"])
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) in the configuration.", err=True)
        ctx.exit(2)
        raise  # unreachable: ctx.exit raises


@click.group()
@click.option("--config", "config_dir", metavar="DIR", help="Configuration directory (default: $NC_CONNECT_CONFIG or ./config).")
@click.pass_context
def main(ctx: click.Context, config_dir: str | None) -> None:
    """NC Connect, the identity broker of New Caledonia's public online services."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    ctx.obj = {"config_dir": str(config_dir_from(config_dir))}


@main.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate the configuration directory; print every problem with its file and key."""
    config = _load(ctx)
    click.echo(f"Configuration OK: {len(config.clients)} client(s), {len(config.providers)} identity source(s), "
               f"{len(config.data_providers)} data provider(s).")


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the database migrations."""
    from broker.db import make_engine, upgrade

    config = _load(ctx)
    upgrade(make_engine(config.database_url))
    click.echo("Database is up to date.")


@main.group()
def keys() -> None:
    """Signing keys, the subject secret and the data key (and what it encrypts)."""


def _sealed_values(config: Config, data_key_lost: bool):
    """``ensure_secrets``'s question: how many values does the database hold sealed with a data key?"""
    def count() -> int:
        from pathlib import Path

        from sqlalchemy.exc import SQLAlchemyError

        from broker.account.mfa import sealed_count
        from broker.db import make_engine

        if data_key_lost:
            return 0
        url = config.database_url
        if url.startswith("sqlite:///") and not url.endswith(":memory:") and not Path(url[len("sqlite:///"):]).exists():
            return 0  # a fresh deployment: no database yet (and none created here)
        engine = make_engine(url)
        try:
            return sealed_count(engine)
        except SQLAlchemyError as exc:  # cannot tell: do not create a key that may orphan data
            raise click.ClickException(f"cannot check the database for TOTP secrets sealed with a data key ({exc}); "
                                       "data-key not created") from None
        finally:
            engine.dispose()
    return count


@keys.command("generate")
@click.option("--if-missing", is_flag=True,
              help="When keys already exist, only add the secrets that are missing (data-key after an upgrade).")
@click.option("--data-key-lost", is_flag=True,
              help="Create a new data-key although the database holds TOTP secrets sealed with the lost one "
                   "(their citizens must enrol again).")
@click.pass_context
def keys_generate(ctx: click.Context, if_missing: bool, data_key_lost: bool) -> None:
    """Create the ES256 and RS256 signing keys, the pairwise subject secret and the data key.

    A missing secret is never recreated when something depends on it: subject-secret once signing
    keys exist, data-key while the database holds values sealed with it (restore them from backup)."""
    config = _load(ctx)
    sealed_values = _sealed_values(config, data_key_lost)
    try:
        kids = None
        if not (if_missing and (config.keys_dir / keyring.KEY_FILE).exists()):
            try:
                kids = keyring.generate(config.keys_dir, sealed_values=sealed_values)
            except keyring.KeysExist:
                if not if_missing:
                    raise  # (with --if-missing: a concurrent run created them first)
        created = [] if kids else keyring.ensure_secrets(config.keys_dir, sealed_values=sealed_values)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    if kids:
        click.echo(f"Generated keys {', '.join(kids)} in {config.keys_dir}.")
    else:
        added = f"; created {', '.join(created)}" if created else ""
        click.echo(f"Keys already present in {config.keys_dir}{added}.")


@keys.command("rotate")
@click.pass_context
def keys_rotate(ctx: click.Context) -> None:
    """New current keys; the previous ones stay published for the overlap period."""
    config = _load(ctx)
    try:
        kids = keyring.rotate(config.keys_dir, config.broker.key_rotation_overlap)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"New current keys {', '.join(kids)}; previous keys published for "
               f"{config.broker.key_rotation_overlap} s more.")


@keys.command("seal-totp")
@click.pass_context
def keys_seal_totp(ctx: click.Context) -> None:
    """Encrypt with the data key every TOTP secret still stored in clear (after an upgrade).

    Idempotent, and safe while the broker serves logins.  Also checks that the encrypted ones open
    with this data key: exit status 1 when some do not."""
    from sqlalchemy import inspect

    from broker.account.mfa import seal_legacy_secrets
    from broker.db import make_engine, make_sessionmaker
    from broker.models import LocalCredential

    config = _load(ctx)
    try:
        data_key = keyring.read_data_key(config.keys_dir / keyring.DATA_KEY_FILE)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    engine = make_engine(config.database_url)
    try:
        table = LocalCredential.__tablename__
        inspector = inspect(engine)
        columns = {c["name"]: c["type"] for c in inspector.get_columns(table)} if inspector.has_table(table) else {}
        if (getattr(columns.get("totp_secret"), "length", 0) or 0) < 255:
            raise click.ClickException("the database schema cannot hold encrypted TOTP secrets yet: "
                                       "run 'nc-connect db upgrade' first")
        report = seal_legacy_secrets(make_sessionmaker(engine), data_key)
    finally:
        engine.dispose()
    click.echo(f"Sealed {report.sealed} TOTP secret(s) stored in clear; {report.already} already sealed.")
    if report.not_opening:
        click.echo(f"{len(report.not_opening)} sealed TOTP secret(s) do not open with {keyring.DATA_KEY_FILE} "
                   f"(another key, or moved between accounts): accounts {', '.join(report.not_opening)}", err=True)
        ctx.exit(1)


@main.group()
def users() -> None:
    """Local accounts."""


GENDERS = click.Choice(["male", "female"])


@users.command("add")
@click.argument("email")
@click.option("--given-name")
@click.option("--family-name")
@click.option("--preferred-username")
@click.option("--birthdate", metavar="YYYY-MM-DD")
@click.option("--gender", type=GENDERS)
@click.option("--birthplace", metavar="COG")
@click.option("--birthcountry", metavar="COG")
@click.option("--exist-ok", is_flag=True, help="Succeed without change when the account exists.")
@click.pass_context
def users_add(ctx: click.Context, email: str, exist_ok: bool, **pivot: str | None) -> None:
    """Create a local account; the password is read from a prompt or standard input."""
    from datetime import date

    from sqlalchemy import select

    from broker.accounts import AccountExists, create_account, normalise_email
    from broker.db import make_engine, make_sessionmaker, upgrade
    from broker.models import LocalCredential

    config = _load(ctx)
    fields = {k: v for k, v in pivot.items() if v}
    if "birthdate" in fields:
        try:
            date.fromisoformat(fields["birthdate"])
        except ValueError:
            raise click.BadParameter("expected YYYY-MM-DD", param_hint="--birthdate") from None
    for key in ("birthplace", "birthcountry"):
        if key in fields and not (len(fields[key]) == 5 and fields[key][:2].isalnum() and fields[key][2:].isdigit()):
            raise click.BadParameter("expected a 5-character INSEE COG code", param_hint=f"--{key}")
    if sys.stdin.isatty():
        password = getpass.getpass("Mot de passe : ")
        if password != getpass.getpass("Confirmez le mot de passe : "):
            raise click.ClickException("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    engine = make_engine(config.database_url)
    if engine.dialect.name == "sqlite":
        upgrade(engine)
    sessions = make_sessionmaker(engine)
    if exist_ok:  # an existing account is left as it is, whatever the password (provisioning re-runs)
        with sessions() as s:
            # a local login with this address (an account from an upstream source may carry it too)
            if s.execute(select(LocalCredential.account_id)
                         .where(LocalCredential.email == normalise_email(email))).first():
                click.echo(f"an account already exists for {normalise_email(email)}")
                return
    # the sign-up policy (broker.passwords): length, breached passwords, context words, strength
    from broker.passwords import check

    names = [fields.get(k, "") for k in ("given_name", "family_name", "preferred_username")]
    services = [c.name for c in config.clients.values()] + [p.name for p in config.providers.values()]
    verdict = check(password, email=email, names=names, services=services)
    if not verdict.ok:
        raise click.ClickException(f"password refused: {verdict.message}")
    try:
        account = create_account(sessions, email, password, **fields)
    except AccountExists as exc:
        if exist_ok:
            click.echo(str(exc))
            return
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created account {account.id} for {account.email}.")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="Worker processes (production server).")
@click.option("--threads", default=4, show_default=True, type=int, help="Threads per worker.")
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, threads: int, dev: bool) -> None:
    """Run the broker (gunicorn; --dev for the Flask reloader)."""
    from broker.app import create_app
    from broker.db import make_engine, upgrade

    config = _load(ctx)
    engine = make_engine(config.database_url)
    if engine.dialect.name == "sqlite":
        upgrade(engine)
    engine.dispose()
    if not (config.keys_dir / keyring.KEY_FILE).exists():
        raise click.ClickException(f"no signing keys in {config.keys_dir}: run 'nc-connect keys generate' first")
    from broker.ui import dsfr_problem

    if dsfr_problem():  # the citizen pages would be unstyled
        raise click.ClickException(f"cannot serve the citizen pages: {dsfr_problem()}")
    if dev:
        create_app(config, migrate=False, sweeper=True).run(host=host, port=port, debug=True, use_reloader=True)
        return
    from broker.server import run_gunicorn

    # each worker sweeps expired sessions (session_sweep_interval); a claim per session keeps it single
    run_gunicorn(lambda: create_app(config, migrate=False, sweeper=True), host, port, workers, threads)


@main.group()
def sessions() -> None:
    """Browser sessions."""


@sessions.command("sweep")
@click.option("--wait", default=60.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds to wait for the logout tokens to be delivered before exiting.")
@click.pass_context
def sessions_sweep(ctx: click.Context, wait: float) -> None:
    """End the sessions that expired: back-channel logout tokens at the end of the absolute lifetime;
    sessions that timed out for idleness are only dropped from the index.

    For a cron job or systemd timer, when the broker's own sweep is off (session_sweep_interval: 0).
    Safe to run alongside the broker and other sweeps: each expired session is ended once."""
    from sqlalchemy.exc import SQLAlchemyError

    from broker.account.sessions_index import sweep
    from broker.app import create_app
    from broker.oidc import backchannel

    config = _load(ctx)
    try:
        broker = create_app(config).extensions["nc_connect"]
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        swept = sweep(broker)
    except SQLAlchemyError as exc:
        broker.engine.dispose()
        raise click.ClickException(f"the session index cannot be read ({type(exc).__name__}); "
                                   "is the database migrated? run 'nc-connect db upgrade'") from None
    backchannel.resume_pending(broker)
    delivered = backchannel.dispatcher_for(broker).idle(wait)
    click.echo(f"{swept.sessions} expired session(s) ended, {swept.tokens} logout token(s) queued.")
    if not delivered:
        click.echo(f"Deliveries still pending after {wait:g} s stay in the store; the next sweep (or logout) "
                   "resumes them.", err=True)
    broker.engine.dispose()


@main.group("mappings")
def mappings_group() -> None:
    """Mapping files: an identity source's attributes → the pivot identity."""


@mappings_group.command("try")
@click.argument("provider")
@click.argument("sample", type=click.File("r", encoding="utf-8"))
@click.pass_context
def mappings_try(ctx: click.Context, provider: str, sample) -> None:
    """Apply PROVIDER's mapping file to the attributes in SAMPLE (a JSON object).

    Prints the pivot identity and, per claim, the rule that produced it or why it is
    missing.  Exit status 1 when a claim failed or a required claim is missing, 2 when
    the mapping file, the provider or the sample is invalid."""
    import json

    from mappings.engine import MappingError, load_mapping

    config = _load(ctx)
    settings = config.providers.get(provider)
    if settings is None:
        click.echo(f"unknown identity source {provider!r}; known: {', '.join(sorted(config.providers)) or 'none'}", err=True)
        ctx.exit(2)
    try:
        attributes = json.load(sample)
    except json.JSONDecodeError as exc:
        click.echo(f"{sample.name}: invalid JSON: {exc}", err=True)
        ctx.exit(2)
    if not isinstance(attributes, dict):
        click.echo(f"{sample.name}: expected a JSON object of attributes", err=True)
        ctx.exit(2)
    try:
        mapping = load_mapping(config.mappings_dir / settings.mapping)
    except MappingError as exc:
        click.echo(str(exc), err=True)
        ctx.exit(2)
    result = mapping.apply(attributes)
    width = max(len(claim) for claim in result.trace) + 2
    click.echo(f"Pivot identity ({provider}, mappings/{settings.mapping}):")
    for claim, value in result.pivot.items():
        click.echo(f"  {claim:<{width}}{json.dumps(value, ensure_ascii=False)}")
    click.echo("Trace:")
    for claim, why in result.trace.items():
        click.echo(f"  {claim:<{width}}{why}")
    if result.errors:
        click.echo(f"{len(result.errors)} error(s):", err=True)
        for claim, why in result.errors.items():
            click.echo(f"  {claim:<{width}}{why}", err=True)
        ctx.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
