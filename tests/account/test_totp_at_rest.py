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
