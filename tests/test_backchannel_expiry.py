"""Back-Channel Logout when a session reaches its absolute lifetime; none at an idle timeout.

Nothing ends an expired session by a request: the sweep of the account session index
(``sessions_index.sweep``, run by every serving broker and by ``nc-connect sessions
sweep``) finds the sessions whose absolute end has passed, claims each once, and queues
the logout tokens of its téléservices.  A session whose state left the store after an idle
timeout is only dropped from the index: the citizen may still be at work on a téléservice,
which does not slide the broker's idle clock.  The
téléservices are the real loopback receivers of tests/test_backchannel_logout.py, and
every token is checked against the broker's JWKS as a téléservice must.
"""

from __future__ import annotations

import os
import re
import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from broker.account import sessions_index
from broker.models import AccountSession
from broker.oidc import backchannel
from tests.conftest import PASSWORD, advance_clock, csrf_of
from tests.test_backchannel_logout import (  # noqa: F401 - fixtures: the receivers, their clients, fast retries
    BYE, claims_of, config_dir, fast_retries, idle, log_in, receivers, validate,
)


def index_rows(broker, account_id: str | None = None) -> list[AccountSession]:
    with broker.sessions() as s:
        query = select(AccountSession)
        if account_id:
            query = query.where(AccountSession.account_id == account_id)
        return list(s.execute(query).scalars())


def only_row(broker, account) -> AccountSession:
    [row] = index_rows(broker, account.id)
    return row


def new_browser(app, client):
    other = app.test_client()
    other.environ_base.update(client.environ_base)
    return other


def settle(broker, seconds: float = 0.3) -> None:
    """Let any (unexpected) delivery arrive before counting."""
    idle(broker)
    time.sleep(seconds)
    idle(broker)


def time_out(broker, monkeypatch) -> None:
    """The absolute lifetime passes (and with it the idle timeout: the key leaves the store)."""
    advance_clock(broker, monkeypatch, broker.config.broker.lifetimes.session_absolute + 5)


# -- idle timeout: dropped, not notified -----------------------------------------------------------

@pytest.mark.parametrize("how", ["clock", "evicted"])
def test_idle_timeout_drops_the_session_without_logging_the_teleservices_out(client, broker, account, receivers,
                                                                               monkeypatch, how):
    log_in(client, "alpha")
    row = only_row(broker, account)
    if how == "clock":
        advance_clock(broker, monkeypatch, broker.config.broker.lifetimes.session_idle + 5)
    else:  # the state left the store otherwise (eviction, flush): the same signal
        broker.store.delete(row.store_key)
    assert broker.store.get(row.store_key) is None
    swept = sessions_index.sweep(broker)
    assert (swept.sessions, swept.tokens) == (1, 0)
    assert index_rows(broker) == []
    settle(broker)
    assert receivers["alpha"].tokens == []


# -- absolute lifetime: one logout token per téléservice ----------------------------------------

def test_session_at_its_absolute_end_sends_one_token_per_teleservice(client, broker, account, receivers, monkeypatch):
    alpha = log_in(client, "alpha")
    beta = log_in(client, "beta")
    log_in(client, "quiet")  # took part, has no back-channel URI
    sid = claims_of(alpha["id_token"])["sid"]
    row = only_row(broker, account)
    assert row.sid == sid and row.clients.split() == ["alpha", "beta", "quiet"]
    assert row.expires_at is not None

    time_out(broker, monkeypatch)
    assert broker.store.get(row.store_key) is None

    swept = sessions_index.sweep(broker)
    assert (swept.sessions, swept.tokens) == (1, 2)
    [token_alpha] = receivers["alpha"].wait_for(1)
    [token_beta] = receivers["beta"].wait_for(1)
    got_alpha = validate(client, token_alpha, "alpha")
    got_beta = validate(client, token_beta, "beta", alg="RS256")
    assert got_alpha["sid"] == got_beta["sid"] == sid
    assert got_alpha["sub"] == claims_of(alpha["id_token"])["sub"]
    assert got_beta["sub"] == claims_of(beta["id_token"])["sub"]
    assert index_rows(broker) == []

    assert sessions_index.sweep(broker).sessions == 0  # a second sweep finds nothing to end
    settle(broker)
    assert len(receivers["alpha"].tokens) == 1 and len(receivers["beta"].tokens) == 1
    assert receivers["gamma"].tokens == []
    assert backchannel.pending_ids(broker.store) == []


def test_session_kept_alive_is_left_alone(client, broker, account, receivers, monkeypatch):
    log_in(client, "alpha")
    advance_clock(broker, monkeypatch, broker.config.broker.lifetimes.session_idle - 120)
    assert sessions_index.sweep(broker).sessions == 0
    assert client.get("/compte").status_code == 200  # still signed in, and the idle timeout slides
    advance_clock(broker, monkeypatch, 200)  # past the first idle deadline, not the slid one
    assert sessions_index.sweep(broker).sessions == 0
    assert len(index_rows(broker, account.id)) == 1
    assert [s.current for s in sessions_index.active(broker, account.id)] == [False]
    settle(broker)
    assert receivers["alpha"].tokens == []


def test_session_past_its_absolute_lifetime_is_ended_even_if_its_state_remains(client, broker, account, receivers,
                                                                                monkeypatch):
    alpha = log_in(client, "alpha")
    row = only_row(broker, account)
    state = broker.store.get(row.store_key)
    advance_clock(broker, monkeypatch, broker.config.broker.lifetimes.session_absolute + 5)
    broker.store.put(row.store_key, state, 600)  # a store that kept it: the absolute end still applies

    swept = sessions_index.sweep(broker)
    assert (swept.sessions, swept.tokens) == (1, 1)
    got = validate(client, receivers["alpha"].wait_for(1)[0], "alpha")
    assert got["sid"] == claims_of(alpha["id_token"])["sid"]
    assert broker.store.get(row.store_key) is None  # the state is gone with it
    assert index_rows(broker) == []


# -- exactly once ----------------------------------------------------------------------------------

def test_concurrent_sweeps_end_each_session_once(app, client, broker, account, receivers, monkeypatch):
    sids = set()
    for browser in (client, new_browser(app, client), new_browser(app, client)):
        sids.add(claims_of(log_in(browser, "alpha")["id_token"])["sid"])
    assert len(sids) == 3 and len(index_rows(broker)) == 3
    time_out(broker, monkeypatch)

    results, start = [], threading.Barrier(3)

    def run():
        start.wait()
        results.append(sessions_index.sweep(broker))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r.sessions for r in results) == 3 and sum(r.tokens for r in results) == 3
    assert sessions_index.sweep(broker).sessions == 0
    received = receivers["alpha"].wait_for(3)
    settle(broker)
    assert len(receivers["alpha"].tokens) == 3
    assert {validate(client, t, "alpha")["sid"] for t in received} == sids


def test_explicit_logout_is_not_sent_again_by_the_sweep(app, client, broker, account, receivers, monkeypatch):
    tokens = log_in(client, "alpha")
    laptop = new_browser(app, client)
    log_in(laptop, "beta")
    client.get("/logout", query_string={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": BYE})
    receivers["alpha"].wait_for(1)
    with app.app_context():
        sessions_index.end_all(broker, account.id)  # "sign out everywhere": the laptop
    receivers["beta"].wait_for(1)
    time_out(broker, monkeypatch)
    assert sessions_index.sweep(broker).sessions == 0
    settle(broker)
    assert len(receivers["alpha"].tokens) == 1 and len(receivers["beta"].tokens) == 1


def test_same_citizen_authenticating_again_is_not_an_expiry(client, broker, account, receivers, monkeypatch):
    alpha = log_in(client, "alpha")
    log_in(client, "beta", prompt="login")  # new identifier, same session
    row = only_row(broker, account)
    assert row.sid == claims_of(alpha["id_token"])["sid"] and row.clients.split() == ["alpha", "beta"]
    assert sessions_index.sweep(broker).sessions == 0
    settle(broker)
    assert receivers["alpha"].tokens == []
    time_out(broker, monkeypatch)
    assert sessions_index.sweep(broker).tokens == 2
    assert validate(client, receivers["alpha"].wait_for(1)[0], "alpha")["sid"] == row.sid
    assert validate(client, receivers["beta"].wait_for(1)[0], "beta", alg="RS256")["sid"] == row.sid


def test_waiting_for_a_second_factor_is_not_an_expiry(app, broker, account, receivers):
    """Between the password and the code the session has a new identifier: the index follows it."""
    from broker.sessions import BrowserSession

    with app.test_request_context():
        session = BrowserSession(broker.store, broker.config)
        session.sign_in(account.id, "eidas1", ["pwd"], int(time.time()), "local")
        sessions_index.register(broker, session)
        sessions_index.note_client(broker, session.store_key, "alpha")
        session["clients"] = ["alpha"]
        first_key = session.store_key
        session.regenerate()  # password right, code awaited
        assert broker.store.get(first_key) is None
        assert only_row(broker, account).store_key == session.store_key != first_key
        assert sessions_index.sweep(broker).sessions == 0
        settle(broker)
        assert receivers["alpha"].tokens == []
        broker.store.delete(session.store_key)  # the code never came: the half-session timed out
    swept = sessions_index.sweep(broker)
    assert (swept.sessions, swept.tokens) == (1, 0)  # dropped like any idle timeout
    assert index_rows(broker, account.id) == []


def test_another_citizen_signing_in_is_notified_once(app, client, broker, account, receivers, monkeypatch):
    from broker.accounts import create_account
    from tests.conftest import Flow
    from tests.test_backchannel_logout import BETA_CB

    create_account(broker.sessions, "autre@example.nc", PASSWORD, given_name="Marie", family_name="Wamytan",
                   birthdate="1990-04-12", gender="female", birthplace="98818", birthcountry="99100")
    log_in(client, "alpha")
    flow = Flow(client, "beta", BETA_CB)
    assert flow.login(flow.authorize(prompt="login", scope="openid profile"),
                      email="autre@example.nc").status_code == 303
    receivers["alpha"].wait_for(1)
    assert index_rows(broker, account.id) == []  # the first citizen's session is no longer indexed
    time_out(broker, monkeypatch)
    assert sessions_index.sweep(broker).tokens == 0  # the second citizen's session had no téléservice yet
    settle(broker)
    assert len(receivers["alpha"].tokens) == 1


# -- nothing to notify -----------------------------------------------------------------------------

def test_session_without_teleservice_sends_nothing_and_is_dropped(client, broker, account, receivers, monkeypatch):
    page = client.get("/login", follow_redirects=True)
    html = page.get_data(as_text=True)
    rid = re.search(r'name="rid" value="([^"]*)"', html).group(1)
    response = client.post("/login", data={"csrf_token": csrf_of(html), "rid": rid, "email": "citoyen@example.nc",
                                           "password": PASSWORD})
    assert response.status_code == 303
    row = only_row(broker, account)
    assert row.clients == ""
    time_out(broker, monkeypatch)
    swept = sessions_index.sweep(broker)
    assert (swept.sessions, swept.tokens) == (1, 0)
    assert index_rows(broker) == []
    settle(broker)
    assert all(not getattr(r, "tokens", []) for r in receivers.values())


def test_teleservice_without_backchannel_uri_gets_nothing(client, broker, account, receivers, monkeypatch):
    log_in(client, "quiet")
    time_out(broker, monkeypatch)
    assert (sessions_index.sweep(broker).sessions, backchannel.pending_ids(broker.store)) == (1, [])
    assert index_rows(broker) == []


def test_row_indexed_before_the_upgrade_uses_the_grants(client, broker, account, receivers, monkeypatch):
    """Rows from before migration 0006 have no list: the session's grants name its téléservices."""
    from sqlalchemy import update

    log_in(client, "gamma")
    with broker.sessions.begin() as s:
        s.execute(update(AccountSession).values(clients=None, expires_at=None))
    time_out(broker, monkeypatch)
    assert sessions_index.sweep(broker).tokens == 1
    validate(client, receivers["gamma"].wait_for(1)[0], "gamma")


# -- running the sweep ---------------------------------------------------------------------------

def test_cli_sweep(client, broker, account, receivers, monkeypatch, config_dir):
    from broker.cli import main

    alpha = log_in(client, "alpha")
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(config_dir), "sessions", "sweep", "--wait", "10"])
    assert result.exit_code == 0, result.output
    assert "0 expired session(s) ended, 0 logout token(s) queued." in result.output

    time_out(broker, monkeypatch)
    result = runner.invoke(main, ["--config", str(config_dir), "sessions", "sweep", "--wait", "10"])
    assert result.exit_code == 0, result.output
    assert "1 expired session(s) ended, 1 logout token(s) queued." in result.output
    got = validate(client, receivers["alpha"].wait_for(1)[0], "alpha")  # delivered before the command returned
    assert got["sid"] == claims_of(alpha["id_token"])["sid"]
    assert index_rows(broker) == []
    result = runner.invoke(main, ["--config", str(config_dir), "sessions", "sweep"])
    assert "0 expired session(s) ended" in result.output
    assert len(receivers["alpha"].tokens) == 1


def test_serving_broker_starts_one_sweeper_per_process_at_its_first_request(config_dir):
    from broker.app import create_app

    pid = os.getpid()
    sessions_index._started.pop(pid, None)
    serving = create_app(config_dir, migrate=True, sweeper=True)  # as `serve` and wsgi.py build it
    try:
        assert pid not in sessions_index._started  # not at import or build time: maybe a pre-forking master
        serving.test_client().get("/healthz")
        sweeper = sessions_index._started[pid]
        assert sweeper.thread.is_alive() and sweeper.thread.daemon and sweeper.interval == 60  # the default
        serving.test_client().get("/healthz")
        assert sessions_index._started[pid] is sweeper  # one per process
    finally:
        sessions_index._started.pop(pid).stop()
        serving.extensions["nc_connect"].engine.dispose()
    assert not sweeper.thread.is_alive()


def test_two_workers_sweeping_periodically_send_once(client, broker, account, receivers, monkeypatch):
    sweepers = [sessions_index.Sweeper(broker, 1).start() for _ in range(2)]  # two workers, short interval
    try:
        alpha = log_in(client, "alpha")
        time.sleep(1.5)
        assert receivers["alpha"].tokens == []  # alive: left alone
        time_out(broker, monkeypatch)
        [token] = receivers["alpha"].wait_for(1, timeout=10)
        assert validate(client, token, "alpha")["sid"] == claims_of(alpha["id_token"])["sid"]
        time.sleep(2.5)  # more sweeps by both workers
        assert len(receivers["alpha"].tokens) == 1
    finally:
        for sweeper in sweepers:
            sweeper.stop()
    assert not any(s.thread.is_alive() for s in sweepers)


@pytest.mark.parametrize("interval, ok", [(0, True), (5, False), (10, True)])
def test_sweep_interval_is_off_or_at_least_ten_seconds(config_dir, interval, ok):
    from broker.app import load

    with open(config_dir / "broker.yaml", "a") as f:
        f.write(f"session_sweep_interval: {interval}\n")
    if ok:
        assert load(config_dir).broker.session_sweep_interval == interval
    else:
        with pytest.raises(Exception, match="0 \\(off\\) or at least 10 seconds"):
            load(config_dir)


def test_cli_sweep_on_an_unreadable_index_says_what_to_do(config_dir, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from broker.cli import main

    def unreadable(broker, batch=0):
        raise OperationalError("SELECT … FROM account_sessions", {}, Exception("no such column: clients"))

    monkeypatch.setattr(sessions_index, "sweep", unreadable)
    result = CliRunner().invoke(main, ["--config", str(config_dir), "sessions", "sweep", "--wait", "0"])
    assert result.exit_code == 1 and "nc-connect db upgrade" in result.output
    assert "Traceback" not in result.output
