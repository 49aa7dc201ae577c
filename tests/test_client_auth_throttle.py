"""Throttling of failed client authentication: /token, /introspect, /revoke and /checktoken.

After ``FREE_FAILURES`` wrong credentials for one client_id from one IP (or
``FREE_FAILURES_PER_IP`` from one IP whatever the client_id, which then locks unregistered
ids only) within the window, the endpoints answer 429 with ``Retry-After`` and an RFC 6749
§5.2 body, without checking the credentials, until a soft lock ends by itself.  Other
addresses are never affected, a registered client is never locked out by the failures of
others sharing its address, and no secret reaches the logs.  A request authenticated but carrying an unknown code gets
``invalid_grant``: that is how these tests tell "authenticated" from refused.
"""

from __future__ import annotations

import base64
import logging
import textwrap

import pytest

from broker import throttle
from broker.oidc.client_auth import FREE_FAILURES, FREE_FAILURES_PER_IP
from tests.conftest import SECRET, advance_clock
from tests.test_authorize import shift_time

DP_SECRET = "foyer-s3cret-foyer-s3cret-foyer-s3cret-01"
WRONG = "wr0ng-guess-wr0ng-guess-wr0ng-guess-0042"
ATTACKER, OTHER = "203.0.113.7", "198.51.100.20"
UNKNOWN_CODE = {"grant_type": "authorization_code", "code": "unknown-code", "redirect_uri": "https://x.example.nc/cb"}


@pytest.fixture
def config_dir(config_dir):
    dps = config_dir / "data_providers"
    dps.mkdir()
    (dps / "foyer.yaml").write_text(textwrap.dedent(f"""
        name: Quotient familial (DSF)
        client_id: dsf-foyer
        client_secret: {DP_SECRET}
        scopes: [birth]
    """))
    (config_dir / "clients" / "deadkeys.yaml").write_text(textwrap.dedent("""
        name: Service whose jwks_uri does not answer
        redirect_uris: [https://deadkeys.example.nc/cb]
        token_endpoint_auth_method: private_key_jwt
        jwks_uri: http://127.0.0.1:1/jwks
    """))
    return config_dir


def basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def token(client, secret: str, ip: str = ATTACKER, client_id: str = "alpha"):
    return client.post("/token", data=UNKNOWN_CODE, headers=basic(client_id, secret),
                       environ_overrides={"REMOTE_ADDR": ip})


def checktoken(client, secret: str, ip: str = ATTACKER, client_id: str = "dsf-foyer"):
    return client.post("/checktoken", data={"token": "unknown-token", "client_id": client_id, "client_secret": secret},
                       environ_overrides={"REMOTE_ADDR": ip})


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_request"
    assert "retry later" in response.json["error_description"]
    assert 0 < int(response.headers["Retry-After"]) <= throttle.MAX_DELAY + 1
    assert "WWW-Authenticate" not in response.headers



# -- the token endpoint ------------------------------------------------------------------------

def test_wrong_secrets_at_token_are_throttled_for_that_ip_only(client):
    assert [token(client, WRONG).status_code for _ in range(FREE_FAILURES)] == [401] * FREE_FAILURES
    # locked: even the right secret is refused unchecked (no oracle while the lock lasts)
    assert_throttled(token(client, SECRET))
    assert_throttled(token(client, WRONG))
    # the legitimate client, calling from its own address, is not locked out
    response = token(client, SECRET, ip=OTHER)
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"
    # another client from the attacker's address is not locked either (its per-IP allowance is larger)
    beta = client.post("/token", data={**UNKNOWN_CODE, "client_id": "beta", "client_secret": SECRET},
                       environ_overrides={"REMOTE_ADDR": ATTACKER})
    assert beta.status_code == 400 and beta.json["error"] == "invalid_grant"


def test_the_lock_ends_by_itself_and_a_success_clears_the_count(client, monkeypatch):
    for _ in range(FREE_FAILURES):
        token(client, WRONG)
    assert_throttled(token(client, SECRET))
    shift_time(monkeypatch, throttle, throttle.MAX_DELAY + 1)
    assert token(client, SECRET).json["error"] == "invalid_grant"
    # the success forgot the client's failures from this address: a new typo is only a 401
    assert token(client, WRONG).status_code == 401
    assert token(client, SECRET).json["error"] == "invalid_grant"


def test_failures_are_forgotten_after_the_window(client, broker, monkeypatch):
    below = FREE_FAILURES - 1
    assert [token(client, WRONG).status_code for _ in range(below)] == [401] * below
    advance_clock(broker, monkeypatch, throttle.WINDOW + 1)
    assert [token(client, WRONG).status_code for _ in range(below)] == [401] * below
    assert token(client, SECRET).json["error"] == "invalid_grant"


def test_one_address_guessing_many_client_ids_is_throttled(client):
    statuses = [token(client, WRONG, client_id=f"guess-{i}").status_code for i in range(FREE_FAILURES_PER_IP)]
    assert statuses == [401] * FREE_FAILURES_PER_IP
    assert_throttled(token(client, WRONG, client_id="guess-next"))  # this address may guess no more ids
    # alpha, registered, shares the address (a NAT, a hosting egress) but never failed: not locked out
    assert token(client, SECRET).json["error"] == "invalid_grant"
    assert token(client, SECRET, ip=OTHER).json["error"] == "invalid_grant"


@pytest.mark.parametrize("endpoint", ["/introspect", "/revoke"])
def test_introspection_and_revocation_are_throttled_too(client, endpoint):
    def post(secret, ip=ATTACKER):
        return client.post(endpoint, data={"token": "unknown-token"}, headers=basic("alpha", secret),
                           environ_overrides={"REMOTE_ADDR": ip})

    assert [post(WRONG).status_code for _ in range(FREE_FAILURES)] == [401] * FREE_FAILURES
    assert_throttled(post(SECRET))
    assert post(SECRET, ip=OTHER).status_code == 200


def test_unreachable_client_keys_are_not_counted(client):
    """An outage of the client's jwks_uri is not a guess: it must not lock the client out once it is back."""
    data = {**UNKNOWN_CODE, "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZWFka2V5cyJ9.c2ln", "client_id": "deadkeys"}
    statuses = {client.post("/token", data=data).status_code for _ in range(FREE_FAILURES + 2)}
    assert statuses == {401}


# -- the checktoken endpoint (data providers) ----------------------------------------------------

def test_wrong_secrets_at_checktoken_are_throttled(client, monkeypatch):
    assert [checktoken(client, WRONG).status_code for _ in range(FREE_FAILURES)] == [401] * FREE_FAILURES
    locked = checktoken(client, DP_SECRET)
    assert_throttled(locked)
    assert locked.headers["Cache-Control"] == "no-store"
    assert checktoken(client, DP_SECRET, ip=OTHER).status_code == 200
    shift_time(monkeypatch, throttle, throttle.MAX_DELAY + 1)
    assert checktoken(client, DP_SECRET).status_code == 200


def test_unknown_data_providers_count_against_the_address(client):
    for i in range(FREE_FAILURES_PER_IP):
        assert checktoken(client, WRONG, client_id=f"dp-guess-{i}").status_code == 401
    # one allowance per address across both endpoints, for ids nobody registered
    assert_throttled(checktoken(client, WRONG, client_id="dp-guess-next"))
    assert_throttled(token(client, WRONG, client_id="guess-next"))
    assert checktoken(client, DP_SECRET).status_code == 200  # the registered data provider still gets through


# -- the logs ----------------------------------------------------------------------------------

def test_logs_name_the_client_and_the_address_never_a_secret(client, caplog):
    caplog.set_level(logging.DEBUG)
    for _ in range(FREE_FAILURES + 1):
        token(client, WRONG)
        checktoken(client, WRONG)
    token(client, SECRET, ip=OTHER)
    checktoken(client, DP_SECRET, ip=OTHER)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("failed" in m and "'alpha'" in m and ATTACKER in m for m in warnings)
    assert any("failed" in m and "'dsf-foyer'" in m and ATTACKER in m for m in warnings)
    # refusals while locked are the attacker's to repeat: debug only, the failures above tell the story
    assert any("throttled" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
    assert not any("throttled" in m for m in warnings)
    for secret in (WRONG, SECRET, DP_SECRET):
        assert secret not in caplog.text
        assert base64.b64encode(f"alpha:{secret}".encode()).decode() not in caplog.text
