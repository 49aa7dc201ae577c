"""Outgoing email: the message itself and the ``smtp`` configuration block."""

from __future__ import annotations

import pytest

from broker.config import SmtpSettings
from tests.account.conftest import SENDER


def settings(**overrides) -> SmtpSettings:
    return SmtpSettings(**{"host": "smtp.gouv.nc", "sender": SENDER, **overrides})


def test_a_message_is_french_text_and_html_without_tracking(app):
    from broker.mail import build_message

    with app.test_request_context():
        message = build_message(settings(), "a@example.nc", "reset",
                                link="https://nc-connect.test/compte/nouveau-mot-de-passe?jeton=abc&x=<y>", minutes=20)
    assert message["From"] == f"NC Connect <{SENDER}>" and message["To"] == "a@example.nc"
    assert message["Subject"] == "Choisissez un nouveau mot de passe NC Connect"
    assert message["Content-Language"] == "fr" and message["Message-ID"].endswith("@nc-connect.test>")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "valable 20 minutes" in text and "jeton=abc&x=<y>" in text
    assert '<a href="https://nc-connect.test/compte/nouveau-mot-de-passe?jeton=abc&amp;x=&lt;y&gt;">' in html
    assert "<img" not in html and "<script" not in html and '<html lang="fr">' in html


def test_smtp_defaults_and_checks():
    s = settings()
    assert (s.port, s.starttls, s.username, s.password) == (587, True, None, None)
    with pytest.raises(ValueError, match="both username and password"):
        settings(username="nc-connect")
    with pytest.raises(ValueError, match="starttls"):
        settings(username="u", password="p", starttls=False)
    assert settings(host="localhost", port=1025, starttls=False, username="u", password="p").username == "u"
    with pytest.raises(ValueError, match="not an email address"):
        settings(sender="NC Connect")
    with pytest.raises(ValueError):
        settings(port=0)


def test_smtp_password_is_read_from_the_environment(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from broker.cli import main
    from tests.conftest import write_config

    extra = (f"smtp:\n  host: smtp.gouv.nc\n  username: nc-connect\n  password: ${{NC_SMTP_PASSWORD}}\n"
             f"  sender: {SENDER}\n")
    conf = write_config(tmp_path / "config", database_url="sqlite:///broker.db", extra=extra)
    result = CliRunner().invoke(main, ["--config", str(conf), "check-config"])
    assert result.exit_code == 2 and "broker.yaml: smtp.password: environment variable NC_SMTP_PASSWORD is not set" in result.output
    monkeypatch.setenv("NC_SMTP_PASSWORD", "s3cret")
    result = CliRunner().invoke(main, ["--config", str(conf), "check-config"])
    assert result.exit_code == 0, result.output
    from broker.app import load

    assert load(conf).broker.smtp.password == "s3cret"


def test_an_unreachable_server_is_a_clean_error_page(app, client, account, broker, monkeypatch):
    from tests.account.conftest import submit

    monkeypatch.setattr(broker.config.broker.smtp, "__dict__", {**broker.config.broker.smtp.__dict__, "port": 1})
    response = submit(client, "/compte/mot-de-passe-oublie", {"email": "citoyen@example.nc"})
    assert response.status_code == 503 and "Envoi impossible" in response.get_data(as_text=True)
