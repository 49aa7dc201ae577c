"""The login page carries what FranceConnect asks of its identity providers: support, account creation,
forgotten password, and a way back to the service."""

from __future__ import annotations

import pytest

from tests.conftest import Flow, storage_for, write_config


@pytest.fixture
def config_dir(tmp_path, backend):
    return write_config(tmp_path / "config", extra="branding:\n  support_url: https://assistance.gouv.nc/nc-connect\n",
                        **storage_for(backend))


def test_login_page_links(client):
    flow = Flow(client)
    page = client.get(flow.authorize().headers["Location"]).get_data(as_text=True)
    # E-05: no link to another site on the login page itself; the help page one step away has it
    assert "assistance.gouv.nc" not in page and 'href="/aide' in page
    assert "Annuler et retourner sur Service Alpha" in page
    assert 'href="https://assistance.gouv.nc/nc-connect"' in client.get("/aide").get_data(as_text=True)
