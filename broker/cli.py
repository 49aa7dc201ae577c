"""The ``nc-connect`` command line: serve, check-config, db, keys, users."""

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
    """Signing keys."""


@keys.command("generate")
@click.option("--if-missing", is_flag=True,
              help="When keys already exist, only add the secrets that are missing (data-key after an upgrade).")
@click.pass_context
def keys_generate(ctx: click.Context, if_missing: bool) -> None:
    """Create the ES256 and RS256 signing keys, the pairwise subject secret and the data key."""
    config = _load(ctx)
    if if_missing and (config.keys_dir / keyring.KEY_FILE).exists():
        created = keyring.ensure_secrets(config.keys_dir)
        added = f"; created {', '.join(created)}" if created else ""
        click.echo(f"Keys already present in {config.keys_dir}{added}.")
        return
    try:
        kids = keyring.generate(config.keys_dir)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Generated keys {', '.join(kids)} in {config.keys_dir}.")


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

    from broker.accounts import AccountExists, create_account
    from broker.db import make_engine, make_sessionmaker, upgrade

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
    # the sign-up policy (broker.passwords): length, breached passwords, context words, strength
    from broker.passwords import check

    names = [fields.get(k, "") for k in ("given_name", "family_name", "preferred_username")]
    services = [c.name for c in config.clients.values()] + [p.name for p in config.providers.values()]
    verdict = check(password, email=email, names=names, services=services)
    if not verdict.ok:
        raise click.ClickException(f"password refused: {verdict.message}")
    engine = make_engine(config.database_url)
    if engine.dialect.name == "sqlite":
        upgrade(engine)
    try:
        account = create_account(make_sessionmaker(engine), email, password, **fields)
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
        create_app(config, migrate=False).run(host=host, port=port, debug=True, use_reloader=True)
        return
    from broker.server import run_gunicorn

    run_gunicorn(lambda: create_app(config, migrate=False), host, port, workers, threads)


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
