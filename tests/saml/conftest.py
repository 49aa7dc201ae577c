"""Fixtures for SAML tests: a broker with one SAML source whose IdP is played by :mod:`tests.saml.forge`.

``sp`` is the broker (Flask test client over https, the default test issuer) with the
source ``agents`` configured from a metadata file; ``sp.start()`` begins a login and
returns the AuthnRequest ID and RelayState the broker sent; ``sp.post(...)`` plays
the browser posting the IdP's answer, with the cookies the broker set.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ISSUER, PG_URL, REDIS_URL, write_config
from tests.saml import forge

PID = "agents"
IDP = "https://idp.province-sud.test/idp"
SSO = "https://idp.province-sud.test/sso"
SLO = "https://idp.province-sud.test/slo"
ACS = f"{ISSUER}/callback/{PID}"
SP_ENTITY = f"{ISSUER}/saml/{PID}/metadata"


def provider_yaml(extra: str = "", *, level: str = "eidas2") -> str:
    return f"""type: saml
name: Annuaire des agents
mapping: saml-example.yaml
order: 20
idp_metadata_file: saml/idp.xml
sp_certificate: saml/sp.crt
sp_private_key: saml/sp.key
level: {level}
authn_context_map:
  "{forge.PPT}": eidas1
  "{forge.SMARTCARD}": eidas2
{extra}"""


def write_saml_files(config_dir: Path, *, idp_keys: forge.KeyPair | None = None, sp_keys: forge.KeyPair | None = None,
                     metadata: bytes | None = None) -> None:
    folder = config_dir / "saml"
    folder.mkdir(exist_ok=True)
    sp_keys = sp_keys or forge.keypair("nc-connect-sp")
    (folder / "sp.crt").write_text(sp_keys.cert_pem)
    (folder / "sp.key").write_text(sp_keys.key_pem)
    (folder / "idp.xml").write_bytes(metadata or forge.idp_metadata(IDP, idp_keys or forge.keypair("idp"), SSO, SLO))


@dataclass
class ServiceProvider:
    app: object
    client: object
    broker: object
    idp_keys: forge.KeyPair
    sp_keys: forge.KeyPair

    def start(self, path: str = f"/login/{PID}") -> tuple[str, str]:
        """Begin a login; return (AuthnRequest ID, RelayState)."""
        response = self.client.get(path)
        assert response.status_code == 303, response.get_data(as_text=True)
        request, params = forge.authn_request_of(response.headers["Location"])
        return request.get("ID"), params["RelayState"]

    def spec(self, request_id: str | None, **changes) -> forge.Spec:
        return forge.Spec(**{"idp": IDP, "acs": ACS, "audience": SP_ENTITY, "in_response_to": request_id, **changes})

    def signed(self, spec: forge.Spec) -> str:
        root = forge.response(spec)
        forge.sign(forge.assertion_of(root), self.idp_keys)
        return forge.encode(root)

    def post(self, saml_response: str, relay_state: str, **kwargs):
        return self.client.post(f"/callback/{PID}", data={"SAMLResponse": saml_response, "RelayState": relay_state},
                                **kwargs)

    def login(self, saml_response: str, relay_state: str):
        """Post, then follow the broker's 303 back to the callback (the GET in the citizen's session)."""
        posted = self.post(saml_response, relay_state)
        assert posted.status_code == 303, posted.get_data(as_text=True)
        return self.client.get(posted.headers["Location"])


def make_sp(tmp_path, backend, extra: str = "", **files) -> ServiceProvider:
    from broker.app import create_app

    database = dict(database_url=PG_URL, redis_url=REDIS_URL) if backend == "server" else dict(
        database_url="sqlite:///broker.db")
    config_dir = write_config(tmp_path / "config", **database)
    idp_keys = files.pop("idp_keys", None) or forge.keypair("idp")
    sp_keys = forge.keypair("nc-connect-sp")
    write_saml_files(config_dir, idp_keys=idp_keys, sp_keys=sp_keys, **files)
    (config_dir / "providers" / f"{PID}.yaml").write_text(provider_yaml(extra))
    app = create_app(config_dir, migrate=True)
    app.config["TESTING"] = True
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    client.environ_base["HTTP_HOST"] = "nc-connect.test"
    return ServiceProvider(app=app, client=client, broker=app.extensions["nc_connect"], idp_keys=idp_keys,
                           sp_keys=sp_keys)


@pytest.fixture
def sp(tmp_path, backend):
    made = make_sp(tmp_path, backend)
    yield made
    made.broker.engine.dispose()


def text(response) -> str:
    return response.get_data(as_text=True)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
