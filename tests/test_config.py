"""nc-connect check-config: every mistake is reported with its file and key, exit status non-zero."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.cli import main
from tests.conftest import SECRET, write_config

REPO = Path(__file__).resolve().parent.parent


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


@pytest.fixture
def conf(tmp_path) -> Path:
    return write_config(tmp_path / "config", database_url="sqlite:///broker.db")


def add_client(conf: Path, name: str, body: str) -> None:
    (conf / "clients" / name).write_text(textwrap.dedent(body))


def test_demo_configuration_is_valid():
    result = run("--config", str(REPO / "config"), "check-config")
    assert result.exit_code == 0, result.output
    assert "Configuration OK" in result.output


def test_valid_configuration(conf):
    result = run("--config", str(conf), "check-config")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("file,body,expected", [
    ("bad.yaml", f"""
        name: X
        redirect_uris: [https://x.nc/cb]
        client_secret: {SECRET}
        colour: blue
     """, "clients/bad.yaml: colour: unknown key"),
    ("bad.yaml", f"""
        name: X
        redirect_uris: [http://x.nc/cb]
        client_secret: {SECRET}
     """, "clients/bad.yaml: redirect_uris[0]: 'http://x.nc/cb' must use https"),
    ("bad.yaml", f"""
        name: X
        redirect_uris: [https://x.nc/cb#frag]
        client_secret: {SECRET}
     """, "redirect_uris[0]: 'https://x.nc/cb#frag' must not contain a fragment"),
    ("bad.yaml", f"""
        name: X
        redirect_uris: [not a url]
        client_secret: {SECRET}
     """, "redirect_uris[0]: 'not a url' is not an absolute http(s) URL"),
    ("bad.yaml", """
        name: X
        redirect_uris: [https://x.nc/cb]
     """, "clients/bad.yaml: client_secret is required with token_endpoint_auth_method client_secret_basic"),
    ("bad.yaml", """
        name: X
        redirect_uris: [https://x.nc/cb]
        client_secret: ${NC_TEST_UNSET_SECRET}
     """, "clients/bad.yaml: client_secret: environment variable NC_TEST_UNSET_SECRET is not set"),
    ("bad.yaml", """
        name: X
        redirect_uris: [https://x.nc/cb]
        client_secret: short
     """, "client_secret must be at least 32 characters"),
    ("bad.yaml", """
        name: X
        redirect_uris: [https://x.nc/cb]
        token_endpoint_auth_method: private_key_jwt
     """, "private_key_jwt needs jwks or jwks_uri"),
    ("bad.yaml", f"""
        name: X
        redirect_uris: [https://x.nc/cb]
        client_secret: {SECRET}
        scopes: [openid, everything]
     """, "scopes: unknown scope(s) everything"),
    ("bad.yaml", f"""
        name: X
        redirect_uris: [https://x.nc/cb]
        client_secret: {SECRET}
        id_token_signed_response_alg: none
     """, "id_token_signed_response_alg: Input should be 'ES256' or 'RS256'"),
    ("alpha.yml", f"""
        name: Duplicate of alpha
        redirect_uris: [https://x.nc/cb]
        client_secret: {SECRET}
     """, "clients/alpha.yml: client_id: duplicated id 'alpha'"),
    ("broken.yaml", "name: [unclosed\n", "clients/broken.yaml: line"),
    ("odd.yaml", f"""
        client_id: "bad id!"
        name: X
        redirect_uris: [https://x.nc/cb]
        client_secret: {SECRET}
     """, "clients/odd.yaml: client_id: must be 1-64 letters, digits"),
])
def test_each_client_mistake_is_reported_with_file_and_key(conf, file, body, expected):
    add_client(conf, file, body)
    result = run("--config", str(conf), "check-config")
    assert result.exit_code != 0
    assert expected in result.output, result.output


def test_client_secret_from_environment(conf, monkeypatch):
    monkeypatch.setenv("NC_TEST_SECRET", SECRET)
    add_client(conf, "envsecret.yaml", """
        name: X
        redirect_uris: [https://x.nc/cb]
        client_secret: ${NC_TEST_SECRET}
    """)
    from broker.app import load

    assert load(conf).clients["envsecret"].client_secret == SECRET


def test_http_redirect_allowed_on_localhost_only(conf):
    add_client(conf, "native.yaml", f"""
        name: X
        redirect_uris: [http://localhost:8080/cb, http://127.0.0.1/cb]
        client_secret: {SECRET}
    """)
    assert run("--config", str(conf), "check-config").exit_code == 0


@pytest.mark.parametrize("line,expected", [
    ("issuer: ftp://x", "broker.yaml: issuer: 'ftp://x' is not an absolute http(s) URL"),
    ("issuer: http://nc-connect.nc", "broker.yaml: issuer: 'http://nc-connect.nc' must use https"),
    ("issuer: https://x.nc\nlifetimes: {authorization_code: 600}", "lifetimes.authorization_code: Input should be less than or equal to 60"),
    ("issuer: https://x.nc\nsecure_cookies: false", "secure_cookies may only be false when the issuer is on localhost"),
    ("issuer: https://x.nc\ndatbase_url: sqlite:///x.db", "broker.yaml: datbase_url: unknown key"),
    ("database_url: sqlite:///x.db", "broker.yaml: issuer: Field required"),
])
def test_broker_mistakes(conf, line, expected):
    (conf / "broker.yaml").write_text(line + "\n")
    result = run("--config", str(conf), "check-config")
    assert result.exit_code != 0
    assert expected in result.output, result.output


def test_provider_mistakes_and_all_problems_at_once(conf):
    (conf / "providers" / "ldap.yaml").write_text("type: carrier-pigeon\nname: X\nmapping: local.yaml\n")
    (conf / "providers" / "nomap.yaml").write_text("type: local\nname: Y\nmapping: missing.yaml\nflavour: x\n")
    add_client(conf, "bad.yaml", "name: X\nredirect_uris: [https://x.nc/cb]\n")
    result = run("--config", str(conf), "check-config")
    assert result.exit_code != 0
    out = result.output
    assert "providers/ldap.yaml: type: unknown identity source type 'carrier-pigeon'" in out
    assert "providers/nomap.yaml: mapping: mapping file 'missing.yaml' not found under mappings/" in out
    assert "providers/nomap.yaml: flavour: unknown key" in out
    assert "clients/bad.yaml: client_secret is required" in out
    assert "3 problem(s)" in out or "4 problem(s)" in out


def test_serve_refuses_an_invalid_configuration(conf):
    add_client(conf, "bad.yaml", "name: X\nredirect_uris: [http://x.nc/cb]\n")
    result = run("--config", str(conf), "serve", "--port", "0")
    assert result.exit_code != 0
    assert "clients/bad.yaml: redirect_uris[0]" in result.output


def test_missing_directory(tmp_path):
    result = run("--config", str(tmp_path / "nope"), "check-config")
    assert result.exit_code != 0
    assert "configuration directory not found" in result.output


def test_config_directory_from_environment(conf, monkeypatch):
    monkeypatch.setenv("NC_CONNECT_CONFIG", str(conf))
    assert run("check-config").exit_code == 0


def test_translations_only_for_the_languages_of_the_pages(conf):
    add_client(conf, "tr.yaml", f"""
        name: Impôts en ligne
        translations: {{de: {{name: Steuern}}, en: {{title: Tax}}}}
        redirect_uris: [https://x.nc/cb]
        client_secret: {SECRET}
    """)
    result = run("--config", str(conf), "check-config")
    assert result.exit_code != 0
    assert "clients/tr.yaml: translations.de: Input should be 'en'" in result.output, result.output
    assert "clients/tr.yaml: translations.en.title: unknown key" in result.output, result.output
