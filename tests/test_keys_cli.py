"""Key generation and rotation with overlap, and the administrator's commands."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from click.testing import CliRunner
from joserfc.errors import JoseError
from sqlalchemy import func, select

from broker import keys as keyring
from broker.cli import main
from broker.keys import KeyRing
from broker.models import Account, LocalCredential


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def test_generate_writes_private_file_and_publishes_public_keys(tmp_path):
    kids = keyring.generate(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / keyring.KEY_FILE).st_mode)
    assert mode == 0o600
    jwks = KeyRing(tmp_path, 3600).jwks()
    assert sorted(k["alg"] for k in jwks["keys"]) == ["ES256", "RS256"]
    assert {k["kid"] for k in jwks["keys"]} == set(kids)
    for key in jwks["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)


def test_generate_refuses_to_overwrite(tmp_path):
    keyring.generate(tmp_path)
    with pytest.raises(Exception, match="already exists"):
        keyring.generate(tmp_path)


def test_rotation_keeps_old_tokens_verifiable_during_overlap_only(tmp_path, monkeypatch):
    keyring.generate(tmp_path)
    ring = KeyRing(tmp_path, overlap=600)
    old_token = ring.sign({"iss": "x", "sub": "y"}, "ES256")
    subject_secret = (tmp_path / keyring.SUBJECT_SECRET_FILE).read_text()
    time.sleep(0.01)
    new_kids = keyring.rotate(tmp_path, overlap=600)
    os.utime(tmp_path / keyring.KEY_FILE, (time.time() + 1, time.time() + 1))  # make the change visible to the cache
    assert ring.verify(old_token)["sub"] == "y"
    published = {k["kid"] for k in ring.jwks()["keys"]}
    assert set(new_kids) < published and len(published) == 4
    new_token = ring.sign({"sub": "z"}, "ES256")
    assert json.loads(__import__("base64").urlsafe_b64decode(new_token.split(".")[0] + "==="))["kid"] in new_kids
    # the pairwise subject secret never changes with a rotation
    assert (tmp_path / keyring.SUBJECT_SECRET_FILE).read_text() == subject_secret
    # after the overlap, the retired keys are no longer published and old tokens fail
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 700)
    keyring.rotate(tmp_path, overlap=600)
    os.utime(tmp_path / keyring.KEY_FILE, (real() + 2, real() + 2))
    with pytest.raises(JoseError):
        ring.verify(old_token)


def test_keys_commands(tmp_path):
    from tests.conftest import write_config

    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db")
    (conf / "keys" / keyring.KEY_FILE).unlink()
    result = run("--config", str(conf), "keys", "generate")
    assert result.exit_code == 0, result.output
    assert run("--config", str(conf), "keys", "generate").exit_code != 0
    assert run("--config", str(conf), "keys", "generate", "--if-missing").exit_code == 0
    result = run("--config", str(conf), "keys", "rotate")
    assert result.exit_code == 0 and "New current keys" in result.output


def test_users_add_and_db_upgrade(config_dir, backend):
    from broker.db import make_engine, make_sessionmaker
    from broker.app import load

    result = run("--config", str(config_dir), "db", "upgrade")
    assert result.exit_code == 0, result.output
    result = run("--config", str(config_dir), "users", "add", "Agent@Example.NC", "--given-name", "Marie Louise",
                 "--family-name", "Gope", "--birthdate", "1979-02-03", "--gender", "female",
                 "--birthplace", "98818", "--birthcountry", "99100", input="a long enough passphrase\n")
    assert result.exit_code == 0, result.output
    engine = make_engine(load(config_dir).database_url)
    with make_sessionmaker(engine)() as s:
        account = s.execute(select(Account).where(Account.email == "agent@example.nc")).scalar_one()
        assert account.given_name == "Marie Louise" and str(account.birthdate) == "1979-02-03"
        credential = s.get(LocalCredential, account.id)
        assert credential.email == "agent@example.nc" and credential.password_hash.startswith("$argon2id$")
        assert "a long enough passphrase" not in credential.password_hash
    duplicate = run("--config", str(config_dir), "users", "add", "agent@example.nc", input="another passphrase!\n")
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    assert run("--config", str(config_dir), "users", "add", "agent@example.nc", "--exist-ok",
               input="another passphrase!\n").exit_code == 0
    # provisioning scripts re-run: an existing account is left alone, even if its password would now be refused
    again = run("--config", str(config_dir), "users", "add", "agent@example.nc", "--exist-ok", input="short\n")
    assert again.exit_code == 0 and "already exists" in again.output
    engine.dispose()


@pytest.mark.parametrize("args,message", [
    (["--birthdate", "14/07/1985"], "expected YYYY-MM-DD"),
    (["--birthplace", "Nouméa"], "INSEE COG code"),
    (["--gender", "other"], "'other' is not one of"),
])
def test_users_add_rejects_bad_fields(config_dir, args, message):
    result = run("--config", str(config_dir), "users", "add", "x@example.nc", *args, input="a long enough passphrase\n")
    assert result.exit_code != 0 and message in result.output


@pytest.mark.parametrize("password, message", [
    ("short", "au moins 12 caractères"),
    ("azerty123456", "plus courants"),
    ("marielouise1979", "trop prévisible"),  # the citizen's own names
    ("demo-sesame-2026", "trop prévisible"),  # the broker's own words (the former demo password)
])
def test_users_add_applies_the_signup_password_policy(config_dir, password, message):
    result = run("--config", str(config_dir), "users", "add", "marie@example.nc", "--given-name", "Marie Louise",
                 input=password + "\n")
    assert result.exit_code == 1, result.output
    assert "password refused" in result.output and message in result.output
    assert password not in result.output


def test_users_add_accepts_a_strong_password(config_dir):
    assert run("--config", str(config_dir), "db", "upgrade").exit_code == 0  # PostgreSQL is not migrated by users add
    result = run("--config", str(config_dir), "users", "add", "marie@example.nc", "--given-name", "Marie Louise",
                 input="pirogue-niaouli-lagon-2026\n")
    assert result.exit_code == 0, result.output
    assert "Created account" in result.output


def test_demo_password_passes_the_policy():
    """scripts/demo creates its account with ``nc-connect users add``: its password must pass the policy."""
    import re
    from pathlib import Path

    from broker.app import load
    from broker.passwords import check

    root = Path(__file__).resolve().parent.parent
    script = (root / "scripts" / "demo").read_text()
    password = re.search(r"^DEMO_PASSWORD='([^']+)'$", script, re.M).group(1)
    email = re.search(r"^DEMO_EMAIL=(\S+)$", script, re.M).group(1)
    config = load(root / "config")
    services = [c.name for c in config.clients.values()] + [p.name for p in config.providers.values()]
    verdict = check(password, email=email, names=["Marie Louise", "Wamytan"], services=services)
    assert verdict.ok, verdict.message
    assert f"`{password}`" in (root / "README.md").read_text()  # the README shows the same password


def test_demo_configuration_ships_no_account(tmp_path):
    """Checklist D-10: no default or shared account comes with the configuration."""
    import shutil
    from pathlib import Path

    from broker.app import create_app

    conf = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parent.parent / "config", conf)
    (conf / "broker.yaml").write_text((conf / "broker.yaml").read_text()
                                      .replace("../var/nc-connect.db", "demo.db").replace("../var/keys", "keys"))
    keyring.generate(conf / "keys")
    app = create_app(conf)
    broker = app.extensions["nc_connect"]
    with broker.sessions() as s:
        assert s.execute(select(func.count()).select_from(Account)).scalar() == 0
    broker.engine.dispose()


def test_secret_files_are_created_without_hard_links_too(tmp_path, monkeypatch):
    """Some network filesystems refuse hard links: the exclusive creation still never replaces a file."""
    from broker import keys as keyring

    def refused(src, dst):
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(keyring.os, "link", refused)
    path = tmp_path / "keys" / "data-key"
    assert keyring._create_private(path, "first") is True
    assert keyring._create_private(path, "second") is False
    assert path.read_text() == "first" and (path.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["data-key"]  # no temporary file left


def test_users_add_exist_ok_still_creates_a_local_login_for_an_upstream_account_s_address(config_dir):
    """--exist-ok skips only an existing local login: an account from FranceConnect may carry the address too."""
    from broker.accounts import create_from_upstream
    from broker.app import load
    from broker.db import make_engine, make_sessionmaker

    assert run("--config", str(config_dir), "db", "upgrade").exit_code == 0
    engine = make_engine(load(config_dir).database_url)
    sessions = make_sessionmaker(engine)
    create_from_upstream(sessions, "fc", "fc-sub-1", "eidas1", {"email": "marie@example.nc"})
    result = run("--config", str(config_dir), "users", "add", "marie@example.nc", "--exist-ok",
                 input="pirogue-niaouli-lagon-2026\n")
    assert result.exit_code == 0 and "Created account" in result.output, result.output
    with sessions() as s:
        assert s.execute(select(LocalCredential).where(LocalCredential.email == "marie@example.nc")).scalar_one()
    engine.dispose()
