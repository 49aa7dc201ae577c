"""NC Connect as a SAML service provider: its metadata, its requests, its cookies and its settings."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus, urlsplit

import pytest
import xmlsec
from lxml import etree

from tests.saml import forge
from tests.saml.conftest import ACS, IDP, ISSUER, PID, SLO, SP_ENTITY, SSO, provider_yaml, text, write_saml_files

MD = f"{{{forge.MD}}}"


def _verify_enveloped(root: etree._Element, cert_pem: str) -> None:
    xmlsec.tree.add_ids(root, ["ID"])
    signature = root.find(f"{{{forge.DS}}}Signature")
    assert signature is not None
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_memory(cert_pem.encode(), xmlsec.KeyFormat.CERT_PEM, None)
    ctx.verify(signature)  # raises when the signature is wrong


def test_sp_metadata_is_published_signed_at_a_stable_url(sp):
    response = sp.client.get(f"/saml/{PID}/metadata")
    assert response.status_code == 200 and response.mimetype == "application/samlmetadata+xml"
    root = etree.fromstring(response.data)
    assert root.get("entityID") == SP_ENTITY
    descriptor = root.find(f"{MD}SPSSODescriptor")
    assert descriptor.get("AuthnRequestsSigned") == "true" and descriptor.get("WantAssertionsSigned") == "true"
    acs = descriptor.find(f"{MD}AssertionConsumerService")
    assert (acs.get("Location"), acs.get("Binding")) == (ACS, forge.POST)
    slo = descriptor.find(f"{MD}SingleLogoutService")
    assert (slo.get("Location"), slo.get("Binding")) == (f"{ISSUER}/saml/{PID}/slo", forge.REDIRECT)
    assert descriptor.find(f"{MD}NameIDFormat").text == forge.PERSISTENT
    assert sp.sp_keys.cert_b64 in response.get_data(as_text=True)
    assert 'Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"' in response.get_data(as_text=True)
    _verify_enveloped(root, sp.sp_keys.cert_pem)
    assert sp.client.get("/saml/local/metadata").status_code == 404
    assert sp.client.get("/saml/nope/metadata").status_code == 404


def test_authn_request_is_signed_over_http_redirect_and_relay_state_is_the_opaque_state(sp):
    response = sp.client.get(f"/login/{PID}")
    location = response.headers["Location"]
    assert location.startswith(SSO + "?")
    request, params = forge.authn_request_of(location)
    assert request.get("Destination") == SSO and request.get("AssertionConsumerServiceURL") == ACS
    assert request.get("ProtocolBinding") == forge.POST
    assert request.find(f"{{{forge.SAML}}}Issuer").text == SP_ENTITY
    assert params["SigAlg"] == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert len(params["RelayState"]) >= 43 and "/" not in params["RelayState"]  # 256 random bits, not a URL
    signed = "&".join(f"{k}={quote_plus(params[k])}" for k in ("SAMLRequest", "RelayState", "SigAlg"))
    key = xmlsec.Key.from_memory(sp.sp_keys.cert_pem.encode(), xmlsec.KeyFormat.CERT_PEM, None)
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    ctx.verify_binary(signed.encode(), xmlsec.Transform.RSA_SHA256, base64.b64decode(params["Signature"]))


def test_authn_request_over_http_post_is_an_auto_submitted_signed_form(tmp_path, backend):
    from tests.saml.conftest import make_sp

    made = make_sp(tmp_path, backend, extra="request_binding: post\n")
    try:
        page = made.client.get(f"/login/{PID}")
        html = text(page)
        assert page.status_code == 200 and f'action="{SSO}"' in html
        assert "form-action 'self'" in page.headers["Content-Security-Policy"]
        assert "https://idp.province-sud.test" in page.headers["Content-Security-Policy"].split("form-action")[1]
        import re

        encoded = re.search(r'name="SAMLRequest" value="([^"]+)"', html).group(1)
        request = etree.fromstring(base64.b64decode(encoded))
        _verify_enveloped(request, made.sp_keys.cert_pem)
        assert made.client.get_cookie("__Secure-ncc_upstream_tx", path=f"/callback/{PID}") is not None
    finally:
        made.broker.engine.dispose()


def test_the_cross_site_return_cookie_is_separate_short_lived_and_samesite_none(sp):
    """E-08: SameSite=None, Secure, HttpOnly, path limited to the callback, an opaque value; the session stays Lax."""
    response = sp.client.get(f"/login/{PID}")
    cookies = response.headers.getlist("Set-Cookie")
    tx = next(c for c in cookies if c.startswith("__Secure-ncc_upstream_tx="))
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in tx.split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite", "max-age"} <= set(attributes)
    assert attributes["path"] == f"Path=/callback/{PID}" and attributes["samesite"] == "SameSite=None"
    assert 0 < int(attributes["max-age"].split("=")[1]) <= 3600
    assert "domain" not in attributes
    value = tx.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43 and sp.broker.store.get("uptx:" + value) is None  # stored under a hash only
    session = next(c for c in cookies if c.startswith("__Host-ncc_session="))
    assert "SameSite=Lax" in session and "Path=/" in session


def test_csp_form_action_allows_the_idp_endpoints(sp):
    csp = sp.client.get("/").headers["Content-Security-Policy"]
    assert "https://idp.province-sud.test" in csp.split("form-action", 1)[1]


def test_python3_saml_runs_strict_with_sha256_and_deprecated_algorithms_refused(sp):
    """C-01, C-02, C-03, C-04: the library settings are fixed by code, not by configuration."""
    provider = sp.broker.providers[PID]
    settings = provider.onelogin_settings(provider.idp())
    security = settings.get_security_data()
    assert settings.is_strict() and not settings.is_debug_active()
    assert security["wantAssertionsSigned"] and security["rejectDeprecatedAlgorithm"]
    assert security["authnRequestsSigned"] and security["logoutRequestSigned"] and security["logoutResponseSigned"]
    assert security["signatureAlgorithm"].endswith("rsa-sha256") and security["digestAlgorithm"].endswith("sha256")
    assert security["failOnAuthnContextMismatch"]
    idp = settings.get_idp_data()
    signing = idp["x509certMulti"]["signing"]
    assert not idp.get("certFingerprint") and len(signing) == 1 and sp.idp_keys.cert_b64[:60] in signing[0]


# --------------------------------------------------------------------------- settings and check-config


def _check(tmp_path, yaml_text: str, **files) -> list[tuple[str, str]]:
    from providers.saml import validate_settings

    import yaml

    config_dir = tmp_path / "cfg"
    config_dir.mkdir(exist_ok=True)
    write_saml_files(config_dir, **files)
    raw = yaml.safe_load(yaml_text)
    for key in ("type", "name", "mapping", "order"):
        raw.pop(key, None)
    return validate_settings(raw, config_dir)


def test_a_correct_provider_file_has_no_problem(tmp_path):
    assert _check(tmp_path, provider_yaml()) == []


@pytest.mark.parametrize("change,key,message", [
    ("idp_metadata_file: saml/missing.xml", "idp_metadata_file", "cannot be read"),
    ("idp_metadata_url: https://idp.example/metadata", "", "exactly one of"),
    ("name_id_format: urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "name_id_format", "transient"),
    ("clock_skew: 600", "clock_skew", "less than or equal"),
    ("debug: true", "debug", "unknown key"),
    ("strict: false", "strict", "unknown key"),
    ("level: eidas4", "level", "eidas1"),
    ("sp_private_key: saml/missing.key", "sp_private_key", "cannot be read"),
], ids=["metadata-missing", "two-sources", "transient", "skew", "debug", "strict", "level", "key-missing"])
def test_provider_file_mistakes_are_reported_with_their_key(tmp_path, change, key, message):
    base = provider_yaml()
    name = change.split(":")[0]
    lines = [line for line in base.splitlines() if not line.startswith(name + ":")]
    problems = _check(tmp_path, "\n".join(lines) + "\n" + change + "\n")
    assert any(k.startswith(key) and message in m for k, m in problems), problems


def test_expired_or_foreign_certificates_and_bad_metadata_are_reported(tmp_path):
    expired = forge.keypair("expired-idp", days=-1)
    problems = _check(tmp_path, provider_yaml(), idp_keys=expired)
    assert any(k == "idp_metadata_file" and "expired" in m for k, m in problems), problems
    problems = _check(tmp_path, provider_yaml(), sp_keys=forge.keypair("expired-sp", days=-1))
    assert any(k == "sp_certificate" and "expired" in m for k, m in problems), problems
    mixed = forge.KeyPair(forge.keypair("one").key_pem, forge.keypair("two").cert_pem)
    problems = _check(tmp_path, provider_yaml(), sp_keys=mixed)
    assert ("sp_private_key", "does not match sp_certificate") in problems
    problems = _check(tmp_path, provider_yaml(), metadata=b"<!DOCTYPE x><x/>")
    assert any(k == "idp_metadata_file" and "DOCTYPE" in m for k, m in problems), problems
    old = forge.idp_metadata(IDP, forge.keypair("idp"), SSO, SLO, valid_until="2020-01-01T00:00:00Z")
    problems = _check(tmp_path, provider_yaml(), metadata=old)
    assert any(k == "idp_metadata_file" and "expired" in m for k, m in problems), problems


def test_check_config_validates_saml_provider_files_and_their_mapping(tmp_path):
    from click.testing import CliRunner

    from broker.cli import main
    from tests.conftest import write_config

    config_dir = write_config(tmp_path / "config", database_url="sqlite:///broker.db")
    write_saml_files(config_dir, idp_keys=forge.keypair("expired-idp", days=-1))
    (config_dir / "providers" / "agents.yaml").write_text(provider_yaml().replace("saml-example.yaml", "nope.yaml"))
    result = CliRunner().invoke(main, ["--config", str(config_dir), "check-config"])
    assert result.exit_code != 0
    assert "agents.yaml: idp_metadata_file: IdP signing certificate expired" in result.output
    assert "agents.yaml: mapping: mapping file 'nope.yaml' not found" in result.output


def test_the_example_provider_file_is_valid_once_its_files_exist(tmp_path, monkeypatch):
    """config/providers/saml-example.yaml is disabled, and correct once an administrator provides its files."""
    from pathlib import Path

    import yaml

    from providers.saml import validate_settings

    example = Path(__file__).resolve().parents[2] / "config" / "providers" / "saml-example.yaml"
    raw = yaml.safe_load(example.read_text())
    assert raw["enabled"] is False and raw["type"] == "saml" and raw["mapping"] == "saml-example.yaml"
    write_saml_files(tmp_path)
    raw.update(idp_metadata_file="saml/idp.xml", sp_certificate="saml/sp.crt", sp_private_key="saml/sp.key")
    raw.pop("idp_metadata_url", None)
    raw.pop("idp_entity_id", None)
    from broker.config import ProviderSettings

    for key in ProviderSettings.model_fields:  # the keys every kind shares: the broker checks them itself
        raw.pop(key, None)
    assert validate_settings(raw, tmp_path) == []


# --------------------------------------------------------------------------- metadata by URL


class _Http:
    """A stand-in for requests.Session serving metadata documents in turn."""

    def __init__(self, *bodies):
        self.bodies, self.calls = list(bodies), 0

    def get(self, url, **kwargs):
        self.calls += 1
        body = self.bodies.pop(0) if len(self.bodies) > 1 else self.bodies[0]

        class R:
            status_code = 200 if body else 503
            content = body or b""
        return R()


def test_metadata_by_url_is_cached_refreshed_and_kept_when_the_idp_is_down(tmp_path):
    from providers.saml_metadata import MetadataSource

    import time

    now = [time.time()]
    keys = forge.keypair("idp")
    first = forge.idp_metadata(IDP, keys, SSO, SLO)
    http = _Http(first, None)
    source = MetadataSource(file=None, url="https://idp.province-sud.test/metadata", entity_id=None, max_age=3600,
                            timeout=5, http=http, clock=lambda: now[0])
    assert source.get().entity_id == IDP and http.calls == 1
    now[0] += 100
    source.get()
    assert http.calls == 1  # cached
    now[0] += 4000
    assert source.get().signing_certs == (keys.cert_b64,) and http.calls == 2  # refresh failed: previous copy kept


def test_metadata_past_its_valid_until_is_not_used(tmp_path):
    from providers.saml_metadata import MetadataError, parse_idp_metadata

    old = forge.idp_metadata(IDP, forge.keypair("idp"), SSO, SLO, valid_until="2020-01-01T00:00:00Z")
    with pytest.raises(MetadataError, match="expired"):
        parse_idp_metadata(old)
    assert urlsplit(SSO).scheme == "https"
