"""Pairwise sub per sector: client ids of one administration that share a sector see the same sub."""

from __future__ import annotations

import pytest

from tests.conftest import SECRET, Flow, storage_for, write_config

CLIENTS = {
    name: f"""
        name: {name}
        redirect_uris: [https://{name}.example.nc/cb]
        client_secret: {SECRET}
        token_endpoint_auth_method: client_secret_post
        {"sector: dsf.gouv.nc" if name != "other" else ""}
    """ for name in ("impots", "cadastre", "other")
}


@pytest.fixture
def config_dir(tmp_path, backend):
    return write_config(tmp_path / "config", clients=CLIENTS, **storage_for(backend))


def sub_for(client, name: str) -> str:
    flow = Flow(client, name, f"https://{name}.example.nc/cb")
    response = client.post("/token", data={"grant_type": "authorization_code", "code": flow.code(),
                                           "redirect_uri": flow.redirect_uri, "code_verifier": flow.verifier,
                                           "client_id": name, "client_secret": SECRET})
    assert response.status_code == 200, response.json
    return client.get("/userinfo", headers={"Authorization": "Bearer " + response.json["access_token"]}).json["sub"]


def test_clients_sharing_a_sector_see_the_same_sub(client, account):
    impots, cadastre, other = (sub_for(client, name) for name in ("impots", "cadastre", "other"))
    assert impots == cadastre
    assert other != impots
