"""The second factor: TOTP enrolment by QR code, login with a code or a recovery code, and the
level it reaches (issue 4; checklist A-22, D-06, D-16)."""

from __future__ import annotations

import re
import time

import pyotp
import pytest

from broker.account import mfa
from tests.account.conftest import has_sso, link_in, login, new_browser, submit, text
from tests.conftest import PASSWORD, PG_URL, REDIS_URL, Flow, csrf_of, query_of, write_config
from tests.test_authorize import edit_session, id_token_claims, session_cookie

EMAIL = "citoyen@example.nc"


def enrol(client, rid: str | None = None) -> tuple[str, list[str], object]:
    """Enrol from the second-factor page: (secret, recovery codes, the response showing them)."""
    page = client.get("/compte/double-authentification" + (f"?rid={rid}" if rid else ""))
    assert page.status_code == 200, page.headers.get("Location")
    html = page.get_data(as_text=True)
    assert re.search(r'<img src="data:image/svg\+xml;charset=utf-8,%3Csvg[^"]+" alt="[^"]+"', html)  # the QR code, inline (CSP data:)
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', html).group(1).replace(" ", "")
    assert len(secret) == 32  # 160 bits
    assert 'autocomplete="one-time-code"' in html
    wrong = client.post("/compte/double-authentification", data={
        "csrf_token": csrf_of(html), "action": "enable", "rid": rid or "", "code": "000000"})
    assert "Ce code ne correspond pas" in wrong.get_data(as_text=True)
    done = client.post("/compte/double-authentification", data={
        "csrf_token": csrf_of(html), "action": "enable", "rid": rid or "", "code": pyotp.TOTP(secret).now()})
    body = done.get_data(as_text=True)
    assert done.status_code == 200 and "Ils ne seront plus jamais affichés" in body
    codes = re.findall(r"<li><code>([0-9a-z-]{19})</code></li>", body)
    assert len(codes) == 10
    return secret, codes, done


def next_code(secret: str, monkeypatch, steps: int = 1) -> str:
    """A code of a later time step (each step's code is accepted once)."""
    later = time.time() + 30 * steps
    monkeypatch.setattr(mfa, "totp_clock", lambda: later)
    return pyotp.TOTP(secret).at(later)


def password_then(client, flow: Flow | None = None, **authorize):
    """Password accepted, the code page next: returns the code page's HTML."""
    if flow:
        response = flow.login(flow.authorize(**authorize))
    else:
        response = login(client)
    assert response.status_code == 303 and response.headers["Location"] == "/login/code", response.headers.get("Location")
    page = client.get("/login/code")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_enrol_then_login_with_totp_reaches_eidas2(client, account, broker, mailbox, monkeypatch):
    assert login(client).status_code == 303
    assert "Activer la double authentification" in client.get("/compte").get_data(as_text=True)
    secret, codes, _ = enrol(client)
    assert "activée" in mailbox.last(EMAIL)["Subject"]  # notice (D-09)
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True)), "confirm": "1"})

    flow = Flow(client)
    html = password_then(client, flow, acr_values="eidas2")
    assert not has_sso(new_browser(client.application))
    code = next_code(secret, monkeypatch)
    response = client.post("/login/code", data={"csrf_token": csrf_of(html), "code": code})
    assert response.status_code == 303
    location = client.get(response.headers["Location"]).headers["Location"]
    claims = id_token_claims(broker, flow, query_of(location)["code"])
    assert claims["acr"] == "eidas2" and claims["amr"] == ["pwd", "otp", "mfa"]


def test_a_code_is_accepted_once(client, account, monkeypatch):
    login(client)
    secret, _, _ = enrol(client)
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True)), "confirm": "1"})
    html = password_then(client)
    code = next_code(secret, monkeypatch)
    assert client.post("/login/code", data={"csrf_token": csrf_of(html), "code": code}).status_code == 303
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True)), "confirm": "1"})
    html = password_then(client)
    replay = client.post("/login/code", data={"csrf_token": csrf_of(html), "code": code})
    assert replay.status_code == 200 and "Ce code n'est pas valide" in text(replay)
    assert not has_sso(client)


def test_login_with_a_recovery_code_once(client, account, broker, monkeypatch):
    login(client)
    _, codes, _ = enrol(client)
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True)), "confirm": "1"})
    html = password_then(client)
    assert 'name="recovery_code"' in html
    used = client.post("/login/code", data={"csrf_token": csrf_of(html), "recovery_code": codes[3].upper().replace("-", " ")})
    assert used.status_code == 303 and has_sso(client)
    assert "9 codes de secours restants" in client.get("/compte").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True)), "confirm": "1"})
    html = password_then(client)
    again = client.post("/login/code", data={"csrf_token": csrf_of(html), "recovery_code": codes[3]})
    assert "Ce code de secours n'est pas valide ou a déjà servi." in text(again)
    assert not has_sso(client)


def test_wrong_codes_are_throttled_and_end_the_attempt(client, account, monkeypatch):
    login(client)
    secret, _, _ = enrol(client)
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True)), "confirm": "1"})
    html = password_then(client)
    token = csrf_of(html)
    statuses = [client.post("/login/code", data={"csrf_token": token, "code": f"{i:06d}"}).status_code
                for i in range(4)]
    assert statuses == [200] * 4
    last = client.post("/login/code", data={"csrf_token": token, "code": "000009"})
    assert last.status_code == 400 and "trop de fois" in text(last)
    # the half-authenticated state is gone: even the right code needs the password again
    right = client.post("/login/code", data={"csrf_token": token, "code": next_code(secret, monkeypatch)})
    assert right.status_code == 400 and not has_sso(client)
    # and the account is locked for a while (growing delays)
    html = password_then(client)
    locked = client.post("/login/code", data={"csrf_token": csrf_of(html), "code": next_code(secret, monkeypatch)})
    assert locked.status_code == 429
    from broker import throttle
    from tests.test_authorize import shift_time

    shift_time(monkeypatch, throttle, 3)
    released = client.post("/login/code", data={"csrf_token": csrf_of(html), "code": next_code(secret, monkeypatch, 2)})
    assert released.status_code == 303


def test_the_password_step_issues_a_new_session_identifier(client, account, monkeypatch):
    login(client)
    secret, _, _ = enrol(client)
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True)), "confirm": "1"})
    client.get("/login")
    planted = session_cookie(client)
    html = password_then(client)
    half = session_cookie(client)
    assert half != planted
    client.post("/login/code", data={"csrf_token": csrf_of(html), "code": next_code(secret, monkeypatch)})
    assert session_cookie(client) not in (planted, half)


def test_eidas2_without_a_second_factor_offers_enrolment_or_refuses(client, account, broker):
    flow = Flow(client)
    response = flow.login(flow.authorize(acr_values="eidas2"))
    assert response.status_code == 303 and response.headers["Location"].startswith("/compte/connexion-renforcee?rid=")
    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert "Service Alpha" in html and "eidas2" in html
    rid = query_of(response.headers["Location"])["rid"]
    refused = client.post("/compte/connexion-renforcee", data={"csrf_token": csrf_of(html), "rid": rid})
    assert refused.status_code == 303
    params = query_of(refused.headers["Location"])
    assert refused.headers["Location"].startswith(flow.redirect_uri)
    assert params["error"] == "unmet_authentication_requirements" and params["state"] == flow.state
    assert "code" not in params


def test_eidas2_without_a_second_factor_enrols_then_continues_at_eidas2(client, account, broker, monkeypatch):
    flow = Flow(client)
    response = flow.login(flow.authorize(acr_values="eidas2"))
    rid = query_of(response.headers["Location"])["rid"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'href="/compte/double-authentification?rid={rid}"' in page
    before = session_cookie(client)
    _, _, done = enrol(client, rid)
    assert session_cookie(client) != before  # the step-up issues a new session identifier (D-11)
    onward = re.search(r'href="(/authorize/resume\?rid=[^"]+)"', done.get_data(as_text=True)).group(1)
    location = client.get(onward).headers["Location"]
    claims = id_token_claims(broker, flow, query_of(location)["code"])
    assert claims["acr"] == "eidas2" and claims["amr"] == ["pwd", "otp", "mfa"]


def test_a_session_at_eidas1_is_never_given_eidas2(client, account):
    assert Flow(client).code()  # signed in with the password only
    flow = Flow(client)
    response = flow.authorize(acr_values="eidas2")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login?rid=")
    params = query_of(Flow(client).authorize(acr_values="eidas2", prompt="none").headers["Location"])
    assert params["error"] == "unmet_authentication_requirements" and "code" not in params


def test_managing_the_second_factor_needs_a_fresh_authentication(client, account, broker, mailbox, monkeypatch):
    """D-16: enrolment, new recovery codes and removal ask for the password (and the code) again."""
    login(client)
    secret, _, _ = enrol(client)
    edit_session(broker, client, auth_time=int(time.time()) - 3600, reauth_at=0)
    page = client.get("/compte/double-authentification")
    assert page.status_code == 200  # the state is shown…
    html = page.get_data(as_text=True)
    stale = client.post("/compte/double-authentification", data={"csrf_token": csrf_of(html), "action": "disable"})
    assert stale.status_code == 303 and stale.headers["Location"] == "/compte/confirmer-identite?suite=2fa"
    form = client.get(stale.headers["Location"]).get_data(as_text=True)
    assert 'autocomplete="current-password"' in form and 'autocomplete="one-time-code"' in form
    bad = client.post("/compte/confirmer-identite", data={"csrf_token": csrf_of(form), "suite": "2fa",
                                                          "password": PASSWORD, "code": "123456"})
    assert "Mot de passe ou code incorrect." in text(bad)
    good = client.post("/compte/confirmer-identite", data={"csrf_token": csrf_of(form), "suite": "2fa",
                                                           "password": PASSWORD, "code": next_code(secret, monkeypatch)})
    assert good.status_code == 303 and good.headers["Location"] == "/compte/double-authentification"
    off = client.post("/compte/double-authentification", data={"csrf_token": csrf_of(html), "action": "disable"})
    assert "Double authentification désactivée" in text(off)
    assert "désactivée" in mailbox.last(EMAIL)["Subject"]
    assert not mfa.enabled(broker, account.id)


def test_a_password_reset_keeps_the_second_factor(client, account, mailbox, monkeypatch):
    login(client)
    secret, _, _ = enrol(client)
    other = new_browser(client.application)
    submit(other, "/compte/mot-de-passe-oublie", {"email": EMAIL})
    link = link_in(mailbox.last(EMAIL))
    page = other.get(link).get_data(as_text=True)
    other.post("/compte/nouveau-mot-de-passe", data={"csrf_token": csrf_of(page), "jeton": query_of(link)["jeton"],
                                                     "password": "la houle gronde sur le récif de Bourail"})
    response = login(other, EMAIL, "la houle gronde sur le récif de Bourail")
    assert response.headers["Location"] == "/login/code"


@pytest.fixture
def eidas1_config(tmp_path, backend, smtp_server):
    from tests.account.conftest import smtp_block

    kwargs = {"database_url": PG_URL, "redis_url": REDIS_URL} if backend == "server" else \
        {"database_url": "sqlite:///broker.db"}
    directory = write_config(tmp_path / "config", extra=smtp_block(smtp_server.port), **kwargs)
    (directory / "providers" / "local.yaml").write_text(
        "type: local\nname: Compte NC Connect\nmapping: local.yaml\nsecond_factor_level: eidas1\n")
    return directory


def test_second_factor_level_eidas1_never_claims_eidas2(eidas1_config, monkeypatch):
    """A deployment following FranceConnect's rule: a second factor alone does not raise the level."""
    from broker.accounts import create_account
    from broker.app import create_app

    app = create_app(eidas1_config, migrate=True)
    broker = app.extensions["nc_connect"]
    create_account(broker.sessions, EMAIL, PASSWORD, given_name="Jean", family_name="Kabar")
    client = new_browser(app)
    meta = client.get("/.well-known/openid-configuration").json
    assert meta["acr_values_supported"] == ["eidas1"]
    flow = Flow(client)
    params = query_of(flow.authorize(acr_values="eidas2").headers["Location"])
    assert params["error"] == "unmet_authentication_requirements"
    login(client)
    secret, _, _ = enrol(client)
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True)), "confirm": "1"})
    flow = Flow(client)
    html = password_then(client, flow)
    response = client.post("/login/code", data={"csrf_token": csrf_of(html), "code": next_code(secret, monkeypatch)})
    location = client.get(response.headers["Location"]).headers["Location"]
    claims = id_token_claims(broker, flow, query_of(location)["code"])
    assert claims["acr"] == "eidas1" and claims["amr"] == ["pwd", "otp", "mfa"]
    broker.engine.dispose()
