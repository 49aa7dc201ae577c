"""OpenID Connect Back-Channel Logout 1.0: every téléservice of the session hears of its end.

The téléservices are real HTTP servers on loopback (werkzeug, threads) started by the
tests; the broker POSTs its logout tokens to them over the network, exactly as in
production.  Each token is validated against the broker's JWKS as a téléservice must
(§2.6): signature, ``typ``, ``iss``, ``aud``, ``events``, ``sid``, ``sub``, no ``nonce``.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from broker.accounts import create_account
from broker.oidc import backchannel
from tests.conftest import ISSUER, PASSWORD, SECRET, Flow, query_of

EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALPHA_CB, BETA_CB = "https://alpha.example.nc/callback", "https://beta.example.nc/cb"
BYE = "https://alpha.example.nc/bye"


class Receiver:
    """A téléservice's back-channel logout endpoint: records every token, answers the planned statuses then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.tokens: list[str] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/backchannel-logout"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def wsgi(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.requests.append({"method": request.method, "content_type": request.mimetype,
                                  "fields": sorted(request.form)})
            self.tokens.append(request.form.get("logout_token", ""))
            status = self.statuses.pop(0) if self.statuses else 200
        return Response(status=status, headers={"Cache-Control": "no-store"})(environ, start_response)

    def wait_for(self, count: int, timeout: float = 10) -> list[str]:
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.tokens) >= count:
                    return list(self.tokens)
            time.sleep(0.02)
        return list(self.tokens)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """Accepts TCP connections and never answers: a téléservice that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/backchannel-logout"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def receivers():
    made = {"alpha": Receiver(), "beta": Receiver(), "gamma": Receiver(), "flaky": Receiver((500,)),
            "refusing": Receiver((400,)), "silent": Silent()}
    yield made
    for r in made.values():
        r.close()


@pytest.fixture
def config_dir(config_dir, receivers):
    clients = config_dir / "clients"
    for cid, extra in {
        "alpha": "post_logout_redirect_uris: [https://alpha.example.nc/bye]\n",
        "beta": "id_token_signed_response_alg: RS256\nbackchannel_logout_session_required: true\n",
        "gamma": "", "flaky": "", "refusing": "", "silent": "",
    }.items():
        (clients / f"{cid}.yaml").write_text(
            f"name: Service {cid}\nredirect_uris: [https://{cid}.example.nc/cb]\nclient_secret: {SECRET}\n"
            + ("" if cid == "alpha" else "token_endpoint_auth_method: client_secret_post\n")  # Flow uses Basic for alpha
            + f"scopes: [openid, profile]\n"
            f"backchannel_logout_uri: {receivers[cid].url}\n{extra}")
    (clients / "alpha.yaml").write_text((clients / "alpha.yaml").read_text().replace(
        "redirect_uris: [https://alpha.example.nc/cb]", f"redirect_uris: [{ALPHA_CB}]"))
    (clients / "quiet.yaml").write_text(  # took part, registered no back-channel URI
        f"name: Quiet\nredirect_uris: [https://quiet.example.nc/cb]\nclient_secret: {SECRET}\n"
        "token_endpoint_auth_method: client_secret_post\n")
    return config_dir


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Short delays and timeouts; every dispatcher the test created is stopped afterwards."""
    monkeypatch.setattr(backchannel, "RETRY_DELAYS", (0.1, 0.1))
    monkeypatch.setattr(backchannel, "READ_TIMEOUT", 1.0)
    created = []

    class Tracked(backchannel.Dispatcher):
        def __init__(self, broker) -> None:
            super().__init__(broker)
            created.append(self)

    monkeypatch.setattr(backchannel, "Dispatcher", Tracked)
    yield
    for dispatcher in created:
        dispatcher.stop()


def log_in(client, cid: str, **params) -> dict:
    """Authorize ``cid`` in this browser (logging in when needed); return its token response."""
    flow = Flow(client, cid, ALPHA_CB if cid == "alpha" else f"https://{cid}.example.nc/cb")
    post = {} if cid == "alpha" else {"client_id": cid, "client_secret": SECRET}
    response = flow.token(flow.code(scope="openid profile", **params), **post)
    assert response.status_code == 200, response.json
    return response.json


def claims_of(token: str) -> dict:
    """The payload of a JWT this test already trusts (an ID token it has just received)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def validate(client, token: str, cid: str, alg: str = "ES256") -> dict:
    """What a téléservice checks (§2.6), against the keys published at /jwks."""
    keys = KeySet.import_key_set(client.get("/jwks").json)
    decoded = jwt.decode(token, keys, algorithms=["ES256", "RS256"])
    assert decoded.header["typ"] == "logout+jwt"
    assert decoded.header["alg"] == alg
    claims = decoded.claims
    assert claims["iss"] == ISSUER
    assert claims["aud"] == cid
    assert claims["events"] == {EVENT: {}}
    assert "nonce" not in claims
    now = time.time()
    assert claims["iat"] <= now + 1 and now < claims["exp"] <= claims["iat"] + 120
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert set(claims) == {"iss", "aud", "iat", "exp", "jti", "events", "sid", "sub"}
    return claims


def idle(broker, timeout: float = 10) -> None:
    assert backchannel.dispatcher_for(broker).idle(timeout)


# -- RP-initiated logout ---------------------------------------------------------------------

def test_both_teleservices_of_the_session_receive_a_valid_logout_token(client, broker, account, receivers):
    alpha = log_in(client, "alpha")
    beta = log_in(client, "beta")  # single sign-on: same session
    log_in(client, "quiet")
    id_alpha, id_beta = claims_of(alpha["id_token"]), claims_of(beta["id_token"])
    assert id_alpha["sid"] == id_beta["sid"]
    assert id_alpha["sub"] != id_beta["sub"]  # pairwise

    response = client.get("/logout", query_string={"id_token_hint": alpha["id_token"],
                                                   "post_logout_redirect_uri": BYE, "state": "s"})
    assert response.status_code == 303 and query_of(response.headers["Location"]) == {"state": "s"}

    [token_alpha] = receivers["alpha"].wait_for(1)
    [token_beta] = receivers["beta"].wait_for(1)
    got_alpha = validate(client, token_alpha, "alpha")
    got_beta = validate(client, token_beta, "beta", alg="RS256")  # the client's id_token_signed_response_alg
    assert got_alpha["sid"] == id_alpha["sid"] and got_alpha["sub"] == id_alpha["sub"]
    assert got_beta["sid"] == id_beta["sid"] and got_beta["sub"] == id_beta["sub"]
    assert got_alpha["jti"] != got_beta["jti"]
    for r in (receivers["alpha"], receivers["beta"]):
        assert r.requests == [{"method": "POST", "content_type": "application/x-www-form-urlencoded",
                               "fields": ["logout_token"]}]
    idle(broker)
    # a téléservice that did not take part hears nothing
    assert receivers["gamma"].tokens == []
    assert backchannel.pending_ids(broker.store) == []


def test_confirmed_logout_without_hint_notifies_too(client, broker, account, receivers):
    from tests.conftest import csrf_of

    log_in(client, "gamma")
    page = client.get("/logout")
    assert page.status_code == 200
    client.post("/logout", data={"confirm": "1", "csrf_token": csrf_of(page.get_data(as_text=True))})
    [token] = receivers["gamma"].wait_for(1)
    validate(client, token, "gamma")
    idle(broker)
    assert receivers["alpha"].tokens == [] and receivers["beta"].tokens == []


def test_failing_receiver_is_retried(client, broker, account, receivers, caplog):
    tokens = log_in(client, "flaky")
    with caplog.at_level(logging.INFO, logger="nc_connect.backchannel"):
        client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
        received = receivers["flaky"].wait_for(2)
        idle(broker)
    assert len(received) == 2  # 500, then 200
    first, second = (validate(client, t, "flaky") for t in received)
    assert first["sid"] == second["sid"] and first["jti"] != second["jti"]  # each attempt is signed afresh
    assert "attempt=1/3: HTTP 500; retry in 0.1s" in caplog.text
    assert "back-channel logout delivered" in caplog.text and "attempt=2/3" in caplog.text
    for token in received:
        assert token not in caplog.text  # attempts are logged without the token
    assert backchannel.pending_ids(broker.store) == []


def test_refused_token_is_not_retried(client, broker, account, receivers, caplog):
    tokens = log_in(client, "refusing")
    with caplog.at_level(logging.INFO, logger="nc_connect.backchannel"):
        client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
        receivers["refusing"].wait_for(1)
        idle(broker)
    assert len(receivers["refusing"].tokens) == 1
    assert "abandoned" in caplog.text and "HTTP 400" in caplog.text


def test_unreachable_teleservice_does_not_delay_the_logout(client, broker, account, receivers, caplog, monkeypatch):
    monkeypatch.setattr(backchannel, "READ_TIMEOUT", 1.5)
    monkeypatch.setattr(backchannel, "RETRY_DELAYS", (0.1,))
    log_in(client, "silent")
    alpha = log_in(client, "alpha")
    with caplog.at_level(logging.INFO, logger="nc_connect.backchannel"):
        started = time.monotonic()
        response = client.get("/logout", query_string={"id_token_hint": alpha["id_token"],
                                                       "post_logout_redirect_uri": BYE})
        elapsed = time.monotonic() - started
        assert response.status_code == 303
        # the citizen got the answer while the first attempt to the silent téléservice was still waiting
        assert "client=silent attempt=" not in caplog.text
        assert elapsed < 1.5, elapsed
        # the other téléservice is not held up either
        validate(client, receivers["alpha"].wait_for(1, timeout=3)[0], "alpha")
        idle(broker, timeout=15)
    assert caplog.text.count("client=silent attempt=") == 2
    assert "abandoned" in caplog.text and "timeout" in caplog.text
    assert backchannel.pending_ids(broker.store) == []


# -- other ends of a session --------------------------------------------------------------------

def test_sign_out_everywhere_notifies_every_session(client, broker, app, account, receivers):
    from broker.account import sessions_index

    log_in(client, "alpha")
    laptop = app.test_client()
    laptop.environ_base.update(client.environ_base)
    log_in(laptop, "beta")
    with app.app_context():
        sessions_index.end_all(broker, account.id)
    validate(client, receivers["alpha"].wait_for(1)[0], "alpha")
    validate(client, receivers["beta"].wait_for(1)[0], "beta", alg="RS256")


def test_same_citizen_logging_in_again_keeps_the_session(client, broker, account, receivers):
    alpha = log_in(client, "alpha")
    beta = log_in(client, "beta", prompt="login")  # a fresh authentication, same citizen
    assert claims_of(beta["id_token"])["sid"] == claims_of(alpha["id_token"])["sid"]
    idle(broker)
    assert receivers["alpha"].tokens == []
    client.get("/logout", query_string={"id_token_hint": beta["id_token"]})
    validate(client, receivers["alpha"].wait_for(1)[0], "alpha")
    validate(client, receivers["beta"].wait_for(1)[0], "beta", alg="RS256")


def test_another_citizen_logging_in_ends_the_previous_session(client, broker, account, receivers):
    create_account(broker.sessions, "autre@example.nc", PASSWORD, given_name="Marie", family_name="Wamytan",
                   birthdate="1990-04-12", gender="female", birthplace="98818", birthcountry="99100")
    alpha = log_in(client, "alpha")
    flow = Flow(client, "beta", BETA_CB)
    response = flow.login(flow.authorize(prompt="login", scope="openid profile"), email="autre@example.nc")
    assert response.status_code == 303
    [token] = receivers["alpha"].wait_for(1)
    got = validate(client, token, "alpha")
    assert got["sid"] == claims_of(alpha["id_token"])["sid"] and got["sub"] == claims_of(alpha["id_token"])["sub"]


def test_second_factor_step_keeps_the_session_or_ends_it_for_another_citizen(app, broker, account, receivers):
    """The second-factor login regenerates the session between the password and the code (mfa.py)."""
    from broker.sessions import BrowserSession

    with app.test_request_context():
        session = BrowserSession(broker.store, broker.config)
        session.sign_in(account.id, "eidas1", ["pwd"], int(time.time()), "local")
        session["clients"] = ["alpha"]
        sid = session["sid"]
        session.regenerate()  # password right, code awaited: not signed in meanwhile
        assert session.account_id is None
        session.sign_in(account.id, "eidas2", ["pwd", "otp", "mfa"], int(time.time()), "local")
        assert session["sid"] == sid and session["clients"] == ["alpha"]
        idle(broker)
        assert receivers["alpha"].tokens == []
        session.regenerate()
        session.sign_in("another-account-id", "eidas2", ["pwd", "otp", "mfa"], int(time.time()), "local")
        assert session["sid"] != sid and session["clients"] == []
    got = validate(app.test_client(), receivers["alpha"].wait_for(1)[0], "alpha")
    assert got["sid"] == sid


def test_stale_delivery_left_by_a_stopped_process_is_resumed(client, broker, account, receivers):
    from broker import grants

    gamma = broker.config.clients["gamma"]
    sub = grants.subject(broker, gamma, account.id)
    broker.store.put(backchannel.KEY + "left-behind", {"client_id": "gamma", "sid": "old-sid", "sub": sub,
                                                       "attempt": 1, "due": time.time() - 600}, 3600)
    tokens = log_in(client, "alpha")
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    [token] = receivers["gamma"].wait_for(1)
    got = validate(client, token, "gamma")
    assert got["sid"] == "old-sid" and got["sub"] == sub
    idle(broker)
    assert backchannel.pending_ids(broker.store) == []


def test_discovery_advertises_back_channel_logout(client):
    meta = client.get("/.well-known/openid-configuration").json
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True


@pytest.mark.parametrize("uri,ok", [
    ("https://rp.example.nc/backchannel", True),
    ("http://localhost:9000/bcl", True),
    ("http://rp.example.nc/backchannel", False),
    ("https://rp.example.nc/backchannel#frag", False),
    ("https://user@rp.example.nc/backchannel", False),
])
def test_backchannel_logout_uri_is_checked_like_other_urls(tmp_path, uri, ok):
    from click.testing import CliRunner

    from broker.cli import main
    from tests.conftest import write_config

    conf = write_config(tmp_path / "conf", database_url="sqlite:///broker.db")
    (conf / "clients" / "rp.yaml").write_text(
        f"name: RP\nredirect_uris: [https://rp.example.nc/cb]\nclient_secret: {SECRET}\nbackchannel_logout_uri: '{uri}'\n")
    result = CliRunner().invoke(main, ["--config", str(conf), "check-config"])
    assert (result.exit_code == 0) == ok, result.output
    if not ok:
        assert "clients/rp.yaml: backchannel_logout_uri:" in result.output
