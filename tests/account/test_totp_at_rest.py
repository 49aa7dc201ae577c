"""The TOTP secret is encrypted at rest (broker.secretbox with ``<keys_dir>/data-key``), bound to
its account; legacy clear values still serve and are re-encrypted; a wrong key fails closed."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from broker import keys as keyring
from broker import secretbox
from broker.accounts import create_account
from broker.cli import main
from broker.models import LocalCredential
from tests.account.conftest import has_sso, login, new_browser, text
from tests.account.test_mfa import enrol, next_code, password_then
from tests.conftest import PASSWORD, csrf_of, write_config

REFUSED = "Ce code n'est pas valide. Vérifiez-le et réessayez."


def stored(broker, account_id: str) -> str | None:
    with broker.sessions() as s:
        return s.get(LocalCredential, account_id).totp_secret


def store(broker, account_id: str, value: str) -> None:
    with broker.sessions.begin() as s:
        s.execute(update(LocalCredential).where(LocalCredential.account_id == account_id).values(totp_secret=value))


def opens(broker, account_id: str, value: str) -> str:
    return secretbox.unseal(broker.keys.ensure_data_key(), value, secretbox.aad("totp", account_id))


def enrolled(app) -> tuple[str, list[str]]:
    """Enrol the account from its own browser; a fresh browser to sign in with afterwards."""
    first = new_browser(app)
    assert login(first).status_code == 303
    secret, codes, _ = enrol(first)
    return secret, codes


def test_enrolment_stores_the_secret_encrypted_and_codes_still_work(app, broker, account, monkeypatch):
    secret, _ = enrolled(app)
    value = stored(broker, account.id)
    assert value.startswith("v1:") and secret not in value and secret.lower() not in value
    assert opens(broker, account.id, value) == secret

    client = new_browser(app)
    html = password_then(client)
    response = client.post("/login/code", data={"csrf_token": csrf_of(html), "code": next_code(secret, monkeypatch)})
    assert response.status_code == 303 and has_sso(client)
    assert stored(broker, account.id) == value  # already sealed: not rewritten


def test_a_legacy_clear_value_is_accepted_then_encrypted(app, broker, account, monkeypatch):
    secret, _ = enrolled(app)
    store(broker, account.id, secret)  # as written before the upgrade

    client = new_browser(app)
    html = password_then(client)
    wrong = client.post("/login/code", data={"csrf_token": csrf_of(html), "code": "000000"})
    assert REFUSED in text(wrong) and stored(broker, account.id) == secret  # only a successful use rewrites
    response = client.post("/login/code", data={"csrf_token": csrf_of(html), "code": next_code(secret, monkeypatch)})
    assert response.status_code == 303 and has_sso(client)
    value = stored(broker, account.id)
    assert value.startswith("v1:") and secret not in value and opens(broker, account.id, value) == secret

    again = new_browser(app)  # and the re-encrypted value serves the next login
    html = password_then(again)
    response = again.post("/login/code", data={"csrf_token": csrf_of(html),
                                               "code": next_code(secret, monkeypatch, 2)})
    assert response.status_code == 303


def test_a_ciphertext_moved_to_another_account_does_not_verify(app, broker, account, monkeypatch, caplog):
    secret, _ = enrolled(app)
    other = create_account(broker.sessions, "voisin@example.nc", PASSWORD, given_name="Paul",
                           family_name="Naisseline", birthdate="1980-01-02", gender="male",
                           birthplace="98818", birthcountry="99100")
    store(broker, other.id, stored(broker, account.id))

    client = new_browser(app)
    assert login(client, "voisin@example.nc").headers["Location"] == "/login/code"
    html = client.get("/login/code").get_data(as_text=True)
    with caplog.at_level(logging.ERROR, logger="nc_connect.mfa"):
        response = client.post("/login/code", data={"csrf_token": csrf_of(html),
                                                    "code": next_code(secret, monkeypatch)})
    assert response.status_code == 200 and REFUSED in text(response) and not has_sso(client)
    assert any(other.id in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_a_wrong_data_key_fails_closed(app, broker, account, config_dir, monkeypatch, caplog):
    from broker.app import create_app

    secret, codes = enrolled(app)
    (config_dir / "keys" / keyring.DATA_KEY_FILE).write_text(os.urandom(32).hex())  # restored from another backup
    restarted = create_app(config_dir)
    try:
        client = new_browser(restarted)
        html = password_then(client)
        with caplog.at_level(logging.INFO):
            response = client.post("/login/code", data={"csrf_token": csrf_of(html),
                                                        "code": next_code(secret, monkeypatch)})
        assert response.status_code == 200 and REFUSED in text(response) and not has_sso(client)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("data key does not match" in m for m in errors), errors
        assert not any(secret in r.getMessage() or secret.lower() in r.getMessage() for r in caplog.records)
        # the recovery codes still serve
        response = client.post("/login/code", data={"csrf_token": csrf_of(html), "recovery_code": codes[0]})
        assert response.status_code == 303 and has_sso(client)
    finally:
        restarted.extensions["nc_connect"].engine.dispose()


def test_secretbox_binds_key_purpose_and_row():
    key = os.urandom(32)
    value = secretbox.seal(key, "JBSWY3DPEHPK3PXP", secretbox.aad("totp", "a"))
    assert value.startswith("v1:") and secretbox.unseal(key, value, secretbox.aad("totp", "a")) == "JBSWY3DPEHPK3PXP"
    assert value != secretbox.seal(key, "JBSWY3DPEHPK3PXP", secretbox.aad("totp", "a"))  # a fresh nonce each time
    for wrong in [(os.urandom(32), value, secretbox.aad("totp", "a")), (key, value, secretbox.aad("totp", "b")),
                  (key, value, secretbox.aad("other", "a")), (key, value[:-1], secretbox.aad("totp", "a")),
                  (key, "v1:", b""), (key, "JBSWY3DPEHPK3PXP", b"")]:
        with pytest.raises(secretbox.SecretBoxError):
            secretbox.unseal(*wrong)


# -- the key file ------------------------------------------------------------------------------

def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_keys_generate_creates_the_data_key_and_never_overwrites_it(tmp_path):
    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db")
    keys = conf / "keys"
    for path in keys.iterdir():
        path.unlink()
    result = run("--config", str(conf), "keys", "generate")
    assert result.exit_code == 0, result.output
    data_key = keys / keyring.DATA_KEY_FILE
    assert stat.S_IMODE(data_key.stat().st_mode) == 0o600
    first = data_key.read_text()
    assert len(bytes.fromhex(first)) == 32

    assert run("--config", str(conf), "keys", "generate").exit_code != 0
    assert run("--config", str(conf), "keys", "generate", "--if-missing").exit_code == 0
    assert run("--config", str(conf), "keys", "rotate").exit_code == 0
    assert data_key.read_text() == first

    # an existing deployment upgraded: --if-missing adds the data key, and only it
    data_key.unlink()
    signing, subject = (keys / keyring.KEY_FILE).read_text(), (keys / keyring.SUBJECT_SECRET_FILE).read_text()
    result = run("--config", str(conf), "keys", "generate", "--if-missing")
    assert result.exit_code == 0 and "created data-key" in result.output
    assert stat.S_IMODE(data_key.stat().st_mode) == 0o600 and data_key.read_text() != first
    assert (keys / keyring.KEY_FILE).read_text() == signing
    assert (keys / keyring.SUBJECT_SECRET_FILE).read_text() == subject


def test_the_broker_does_not_start_without_its_data_key(tmp_path):
    from broker.app import create_app

    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db")
    (conf / "keys" / keyring.DATA_KEY_FILE).unlink()
    with pytest.raises(keyring.KeysMissing, match="data-key"):
        create_app(conf)


# -- a lost secret is restored, never silently recreated -----------------------------------------

def test_if_missing_never_recreates_the_subject_secret_of_a_deployment(tmp_path):
    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db")
    keys = conf / "keys"
    (keys / keyring.SUBJECT_SECRET_FILE).unlink()  # a partial restore: signing keys, no subject secret
    before = {p.name: p.read_text() for p in keys.iterdir()}
    for args in (["keys", "generate", "--if-missing"], ["keys", "generate", "--if-missing", "--data-key-lost"]):
        result = run("--config", str(conf), *args)
        assert result.exit_code == 1, result.output
        assert "subject-secret is missing while the signing keys exist" in result.output
        assert "Restore it from the backup" in result.output
        assert {p.name: p.read_text() for p in keys.iterdir()} == before  # nothing created, nothing changed
    with pytest.raises(keyring.SecretLost):
        keyring.generate(keys, force=True)
    assert not (keys / keyring.SUBJECT_SECRET_FILE).exists()


def test_if_missing_adds_the_data_key_while_nothing_is_sealed(app, broker, account, config_dir):
    """An upgraded deployment: legacy clear secrets only (they open without a key), no data key yet."""
    store(broker, account.id, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    data_key = config_dir / "keys" / keyring.DATA_KEY_FILE
    data_key.unlink()
    result = run("--config", str(config_dir), "keys", "generate", "--if-missing")
    assert result.exit_code == 0, result.output
    assert "created data-key" in result.output and len(keyring.read_data_key(data_key)) == 32


def test_if_missing_refuses_a_new_data_key_while_the_database_holds_sealed_values(app, broker, account,
                                                                                  config_dir):
    enrolled(app)
    keys = config_dir / "keys"
    data_key = keys / keyring.DATA_KEY_FILE
    data_key.unlink()  # a keys_dir restored from an older backup, or a volume not mounted
    result = run("--config", str(config_dir), "keys", "generate", "--if-missing")
    assert result.exit_code == 1 and not data_key.exists()
    assert "holds 1 TOTP secret(s) encrypted with it" in result.output and "Restore it from the backup" in result.output
    # nor through a fresh key set: the signing keys lost as well
    signing = (keys / keyring.KEY_FILE).read_text()
    (keys / keyring.KEY_FILE).unlink()
    result = run("--config", str(config_dir), "keys", "generate")
    assert result.exit_code == 1 and "Restore it from the backup" in result.output
    assert not data_key.exists() and not (keys / keyring.KEY_FILE).exists()
    # the whole directory lost: the refusal creates nothing, not even a subject secret to restore over
    subject = (keys / keyring.SUBJECT_SECRET_FILE).read_text()
    (keys / keyring.SUBJECT_SECRET_FILE).unlink()
    result = run("--config", str(config_dir), "keys", "generate")
    assert result.exit_code == 1 and not (keys / keyring.SUBJECT_SECRET_FILE).exists()
    (keys / keyring.SUBJECT_SECRET_FILE).write_text(subject)
    (keys / keyring.KEY_FILE).write_text(signing)
    # lost for good: said explicitly
    result = run("--config", str(config_dir), "keys", "generate", "--if-missing", "--data-key-lost")
    assert result.exit_code == 0 and "created data-key" in result.output
    assert (keys / keyring.KEY_FILE).read_text() == signing


def test_no_data_key_when_the_database_cannot_be_asked(tmp_path):
    conf = write_config(tmp_path / "config", database_url="postgresql://nobody@127.0.0.1:1/none")
    (conf / "keys" / keyring.DATA_KEY_FILE).unlink()
    result = run("--config", str(conf), "keys", "generate", "--if-missing")
    assert result.exit_code == 1 and "cannot check the database" in result.output
    assert not (conf / "keys" / keyring.DATA_KEY_FILE).exists()


def test_concurrent_creation_keeps_the_first_key(tmp_path):
    import threading

    for round_ in range(20):
        keys = tmp_path / f"keys{round_}"
        barrier = threading.Barrier(8)
        created: list[list[str]] = []

        def create():
            barrier.wait()
            created.append(keyring.ensure_secrets(keys))
            seen.append((keys / keyring.DATA_KEY_FILE).read_text())

        seen: list[str] = []
        threads = [threading.Thread(target=create) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(keyring.DATA_KEY_FILE in c for c in created) == 1
        assert sum(keyring.SUBJECT_SECRET_FILE in c for c in created) == 1
        assert len(set(seen)) == 1 and seen[0] == (keys / keyring.DATA_KEY_FILE).read_text()
        assert len(bytes.fromhex(seen[0])) == 32
        assert sorted(p.name for p in keys.iterdir()) == [keyring.DATA_KEY_FILE, keyring.SUBJECT_SECRET_FILE]
        assert stat.S_IMODE((keys / keyring.DATA_KEY_FILE).stat().st_mode) == 0o600


def test_concurrent_key_generation_has_one_winner(tmp_path):
    import threading

    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def generate():
        barrier.wait()
        try:
            outcomes.append(keyring.generate(tmp_path))
        except keyring.KeysExist as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=generate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kids = [o for o in outcomes if isinstance(o, list)]
    assert len(kids) == 1 and len(outcomes) == 2
    assert {k["kid"] for k in keyring.KeyRing(tmp_path, 60).jwks()["keys"]} == set(kids[0])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- nc-connect keys seal-totp -------------------------------------------------------------------

def test_seal_totp_seals_the_legacy_values_once(app, broker, account, config_dir, monkeypatch):
    import pyotp

    secret, _ = enrolled(app)
    store(broker, account.id, secret)  # written before the upgrade
    other = create_account(broker.sessions, "voisin@example.nc", PASSWORD, given_name="Paul",
                           family_name="Naisseline", birthdate="1980-01-02", gender="male",
                           birthplace="98818", birthcountry="99100")
    other_secret = pyotp.random_base32(32)
    sealed_other = secretbox.seal(broker.keys.ensure_data_key(), other_secret, secretbox.aad("totp", other.id))
    store(broker, other.id, sealed_other)

    result = run("--config", str(config_dir), "keys", "seal-totp")
    assert result.exit_code == 0, result.output
    assert "Sealed 1 TOTP secret(s) stored in clear; 1 already sealed." in result.output
    value = stored(broker, account.id)
    assert value.startswith("v1:") and secret not in value and opens(broker, account.id, value) == secret
    assert stored(broker, other.id) == sealed_other  # left as it was

    result = run("--config", str(config_dir), "keys", "seal-totp")
    assert result.exit_code == 0 and "Sealed 0 TOTP secret(s) stored in clear; 2 already sealed." in result.output
    assert stored(broker, account.id) == value

    client = new_browser(app)  # the login still works
    html = password_then(client)
    response = client.post("/login/code", data={"csrf_token": csrf_of(html), "code": next_code(secret, monkeypatch)})
    assert response.status_code == 303 and has_sso(client)

    store(broker, other.id, value)  # a value that does not open (another account's): reported
    result = run("--config", str(config_dir), "keys", "seal-totp")
    assert result.exit_code == 1 and "1 sealed TOTP secret(s) do not open" in result.output
    assert other.id in result.output and secret not in result.output


def test_seal_totp_never_overwrites_a_value_changed_meanwhile(app, broker, account, monkeypatch):
    """A login (or a disable, or another run) that rewrote the row after it was read wins."""
    from broker.account import mfa

    secret, _ = enrolled(app)
    store(broker, account.id, secret)
    by_login = secretbox.seal(broker.keys.ensure_data_key(), secret, secretbox.aad("totp", account.id))
    real_seal = secretbox.seal

    def seal_while_a_login_seals(*args):
        store(broker, account.id, by_login)  # the concurrent login's conditional UPDATE came first
        return real_seal(*args)

    monkeypatch.setattr(mfa.secretbox, "seal", seal_while_a_login_seals)
    report = mfa.seal_legacy_secrets(broker.sessions, broker.keys.ensure_data_key())
    assert report.sealed == 0 and stored(broker, account.id) == by_login


def test_seal_totp_needs_the_migrated_schema(tmp_path):
    from broker.db import make_engine, upgrade

    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db")
    engine = make_engine(f"sqlite:///{conf / 'broker.db'}")
    upgrade(engine, "0003")
    engine.dispose()
    result = run("--config", str(conf), "keys", "seal-totp")
    assert result.exit_code == 1 and "run 'nc-connect db upgrade' first" in result.output


def test_downgrade_below_0004_refuses_while_values_are_sealed(config_dir):
    from datetime import datetime, timezone

    from alembic import command
    from sqlalchemy import inspect, text

    from broker.app import load
    from broker.db import alembic_config, make_engine, upgrade

    engine = make_engine(load(config_dir).database_url)
    try:
        upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO accounts (id, email_verified, identity_level, disabled, created_at) "
                              "VALUES ('a1', :no, 'eidas1', :no, :now)"),
                         {"no": False, "now": datetime.now(timezone.utc)})
            conn.execute(text("INSERT INTO local_credentials (account_id, email, password_hash, totp_secret) "
                              "VALUES ('a1', 'a@example.nc', 'x', :sealed)"), {"sealed": "v1:" + "A" * 80})
        with pytest.raises(RuntimeError, match="cannot downgrade below 0004: 1 TOTP secret"):
            command.downgrade(alembic_config(engine), "0003")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT totp_secret FROM local_credentials")).scalar_one() == "v1:" + "A" * 80
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0004"
        with engine.begin() as conn:  # nothing sealed left (the second factor turned off): the column narrows
            conn.execute(text("UPDATE local_credentials SET totp_secret = NULL"))
        command.downgrade(alembic_config(engine), "0003")
        columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("local_credentials")}
        assert columns["totp_secret"].length == 64
    finally:
        engine.dispose()
