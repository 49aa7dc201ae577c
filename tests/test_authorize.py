"""The authorization endpoint: OIDC Core §3.1.2, RFC 6749 §4.1, RFC 7636, RFC 9207, RFC 9700.

Checklist A-01, A-02, A-03, A-05, A-08, A-09, A-10, A-22, A-23, A-24, A-27, A-30,
plus the SSO session (D-11, D-13, D-14) and the login page (D-06, D-07, E-09).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from html.parser import HTMLParser

import pytest

from broker import grants, throttle
from broker.sessions import _key as session_key
from tests.conftest import ISSUER, PASSWORD, SECRET, Flow, csrf_of, query_of, write_config

ALPHA_CB = "https://alpha.example.nc/callback"
COOKIE = "__Host-ncc_session"
HOST = "nc-connect.test"


# -- helpers -------------------------------------------------------------------

def assert_error_page(response, status: int = 400) -> str:
    """An HTML page in French on the broker itself: never a redirect (RFC 9700 §4.11.2, A-03)."""
    assert response.status_code == status, (response.status_code, response.headers.get("Location"))
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<html lang="fr">' in html
    return html


def assert_redirect_error(response, error: str, *, state: str | None, redirect_uri: str = ALPHA_CB) -> dict:
    """An error sent back to the registered redirect_uri with a 303, ``state`` and ``iss`` (RFC 9207)."""
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.split("?")[0] == redirect_uri
    params = query_of(location)
    assert params["error"] == error, params
    assert params["iss"] == ISSUER
    assert "code" not in params
    if state is None:
        assert "state" not in params
    else:
        assert params["state"] == state
    return params


def goes_to_login(response) -> bool:
    return response.status_code == 303 and response.headers["Location"].startswith("/login?rid=")


def session_cookie(client) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def plant_cookie(client, value: str) -> None:
    client.set_cookie(COOKIE, value, secure=True, path="/")


def has_sso(client, client_id: str = "alpha", redirect_uri: str = ALPHA_CB) -> bool:
    """prompt=none answers a code only when the browser holds a live session."""
    flow = Flow(client, client_id, redirect_uri)
    params = query_of(flow.authorize(prompt="none").headers["Location"])
    assert ("code" in params) != (params.get("error") == "login_required"), params
    return "code" in params


def edit_session(broker, client, **changes) -> None:
    key = session_key(session_cookie(client))
    data = broker.store.get(key)
    data.update(changes)
    broker.store.put(key, data, 3600)


def id_token_claims(broker, flow: Flow, code: str, **token_overrides) -> dict:
    response = flow.token(code, **token_overrides)
    assert response.status_code == 200, response.json
    return broker.keys.verify(response.json["id_token"])


def login_page(client, flow: Flow, **overrides):
    response = flow.authorize(**overrides)
    assert goes_to_login(response), response.headers.get("Location")
    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    rid = re.search(r'name="rid" value="([^"]*)"', html).group(1)
    return page, html, rid


def store_dump(broker) -> list[tuple[str, str]]:
    """Every (key, value) of the ephemeral store, whichever backend holds it."""
    if hasattr(broker.store, "redis"):
        r = broker.store.redis
        return [(k.decode(), (r.get(k) or b"").decode()) for k in r.scan_iter("*")]
    from sqlalchemy import select

    from broker.models import EphemeralEntry

    with broker.sessions() as s:
        return [(row.key, row.value) for row in s.execute(select(EphemeralEntry)).scalars()]


def store_ttl(broker, key: str) -> float:
    if hasattr(broker.store, "redis"):
        return broker.store.redis.ttl(broker.store.prefix + key)
    from broker.models import EphemeralEntry

    with broker.sessions() as s:
        return s.get(EphemeralEntry, key).expires_at - time.time()


def shift_time(monkeypatch, module, seconds: float) -> None:
    """Move the clock of one broker module only (stores keep their real clocks)."""
    real = time.time

    class _Clock:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def time():
            return real() + seconds

    monkeypatch.setattr(module, "time", _Clock())


# -- client and redirect_uri are checked before anything is redirected -------

REDIRECT_VARIANTS = [
    "https://alpha.example.nc/callback/extra",             # extra path
    "https://alpha.example.nc/callback?next=x",            # extra query
    "https://alpha.example.nc/callback#frag",              # fragment
    "https://ALPHA.example.nc/callback",                   # case change (host)
    "https://alpha.example.nc/Callback",                   # case change (path)
    "HTTPS://alpha.example.nc/callback",                   # case change (scheme)
    "https://alpha.example.nc:443/callback",               # explicit default port
    "https://alpha.example.nc:8443/callback",              # other port
    "https://alpha.example.nc/callback/",                  # trailing slash
    "https://alpha.example.nc/%63allback",                 # percent-encoding
    "https://alpha.example.nc%2Fcallback",                 # encoded slash
    "https://alpha.example.nc@evil.example/callback",      # userinfo: host is evil.example
    "https://evil.example@alpha.example.nc/callback",      # userinfo
    "http://alpha.example.nc/callback",                    # http instead of https
    "https://alpha.example.nc.evil.example/callback",      # suffix domain
    "https://alpha.example.nc/callback ",                  # trailing space
    "//alpha.example.nc/callback",                         # scheme-relative
    "https://beta.example.nc/cb",                          # another client's URI
    "https://evil.example/callback",
]


@pytest.mark.parametrize("redirect_uri", REDIRECT_VARIANTS)
def test_unregistered_redirect_uri_variant_shows_error_page(client, redirect_uri):
    html = assert_error_page(Flow(client).authorize(redirect_uri=redirect_uri))
    assert "Demande de connexion invalide" in html


@pytest.mark.parametrize("overrides", [
    {"client_id": "unknown"},
    {"client_id": "ALPHA"},
    {"client_id": None},
    {"client_id": ""},
    {"redirect_uri": None},
    {"redirect_uri": ""},
    {"client_id": "unknown", "response_type": "token"},  # errors later in the order must not leak a redirect
    {"redirect_uri": "https://evil.example/cb", "prompt": "none"},
])
def test_unknown_client_or_missing_redirect_uri_shows_error_page(client, overrides):
    html = assert_error_page(Flow(client).authorize(**overrides))
    assert "Demande de connexion invalide" in html


# -- errors redirected to the client (A-01, A-05, A-08, A-09, scope, request objects) ----------

@pytest.mark.parametrize("overrides, error", [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "id_token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"response_type": "code token"}, "unsupported_response_type"),
    ({"response_type": "none"}, "unsupported_response_type"),
    ({"response_type": None}, "invalid_request"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
    ({"nonce": None}, "invalid_request"),
    ({"nonce": "n" * 513}, "invalid_request"),
    ({"scope": "profile email"}, "invalid_scope"),
    ({"scope": None}, "invalid_scope"),
    ({"scope": "openid offline_access"}, "invalid_scope"),  # not registered for alpha
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://alpha.example.nc/req.jwt"}, "request_uri_not_supported"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "bogus"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"max_age": "abc"}, "invalid_request"),
    ({"max_age": "²"}, "invalid_request"),  # str.isdigit() is true, int() fails
    ({"acr_values": "eidas3"}, "unmet_authentication_requirements"),  # no source reaches it
])
def test_invalid_request_is_redirected_with_error_state_and_iss(client, overrides, error):
    flow = Flow(client)
    assert_redirect_error(flow.authorize(**overrides), error, state=flow.state)


def test_missing_state_is_invalid_request_without_state(client):
    assert_redirect_error(Flow(client).authorize(state=None), "invalid_request", state=None)


def test_scope_not_registered_for_this_client_is_invalid_scope(client):
    flow = Flow(client, "beta", "https://beta.example.nc/cb")  # beta: openid profile email only
    assert_redirect_error(flow.authorize(scope="openid birth"), "invalid_scope", state=flow.state,
                          redirect_uri="https://beta.example.nc/cb")


def test_state_is_returned_unchanged(client, account):
    flow = Flow(client)
    flow.state = "a b&c=d/é?#%"
    assert query_of(flow.authorize(response_type="token").headers["Location"])["state"] == flow.state
    assert flow.code()  # Flow.code checks the state of the success response


# -- each parameter at most once --------------------------------------------------------

def test_repeated_parameter_is_invalid_request(client):
    flow = Flow(client)
    qs = list(flow.authorize_params().items()) + [("scope", "openid")]
    assert_redirect_error(client.get("/authorize", query_string=qs), "invalid_request", state=flow.state)


def test_parameter_split_between_query_and_body_is_invalid_request(client):
    flow = Flow(client)
    params = flow.authorize_params()
    response = client.post("/authorize", query_string={"nonce": "other"}, data=params)
    assert_redirect_error(response, "invalid_request", state=flow.state)


def test_repeated_state_is_not_echoed(client):
    flow = Flow(client)
    qs = list(flow.authorize_params().items()) + [("state", "second")]
    assert_redirect_error(client.get("/authorize", query_string=qs), "invalid_request", state=None)


@pytest.mark.parametrize("name, value", [
    ("client_id", "alpha"),
    ("client_id", "beta"),
    ("redirect_uri", ALPHA_CB),
    ("redirect_uri", "https://evil.example/cb"),
])
def test_repeated_client_id_or_redirect_uri_shows_error_page(client, name, value):
    flow = Flow(client)
    qs = list(flow.authorize_params().items()) + [(name, value)]
    assert_error_page(client.get("/authorize", query_string=qs))
    # ... also when another repeated parameter comes first, and when split between query and body
    qs = [("scope", "openid"), *flow.authorize_params().items(), (name, value)]
    assert_error_page(client.get("/authorize", query_string=qs))
    assert_error_page(client.post("/authorize", query_string={name: value}, data=flow.authorize_params()))


# -- success: code, iss, POST, A-10 ------------------------------------------------------------

def test_success_response_carries_code_state_and_iss(client, account):
    flow = Flow(client)
    response = flow.login(flow.authorize())
    assert response.status_code == 303  # never 307/308 after the login POST
    response = client.get(response.headers["Location"])
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(ALPHA_CB + "?")
    params = query_of(location)
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == flow.state and params["iss"] == ISSUER


def test_authorize_accepts_post_form(client, account):
    flow = Flow(client)
    response = client.post("/authorize", data=flow.authorize_params())
    assert goes_to_login(response)
    resumed = client.get(flow.login(response).headers["Location"])
    assert query_of(resumed.headers["Location"])["state"] == flow.state
    # a second POST with a live session answers at once
    response = client.post("/authorize", data=flow.authorize_params())
    params = query_of(response.headers["Location"])
    assert params["state"] == flow.state and params["iss"] == ISSUER and params["code"]
    assert flow.token(params["code"]).status_code == 200


def test_code_is_long_random_short_lived_and_stored_only_as_hash(client, account, broker):
    flow = Flow(client)
    codes = {flow.code() for _ in range(3)}
    assert len(codes) == 3
    for code in codes:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", code)
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
        assert len(raw) * 8 >= 128
        key = "code:" + hashlib.sha256(code.encode()).hexdigest()
        assert broker.store.get(key)["client_id"] == "alpha"
        assert 0 < store_ttl(broker, key) <= 60
    dump = store_dump(broker)
    for code in codes:
        assert not any(code in k or code in v for k, v in dump), "a raw code is in the ephemeral store"


def test_code_is_bound_to_request(client, account, broker):
    flow = Flow(client)
    code = flow.code()
    binding = broker.store.get("code:" + grants.token_hash(code))
    assert binding["client_id"] == "alpha"
    assert binding["redirect_uri"] == ALPHA_CB
    assert binding["code_challenge"] == flow.challenge
    assert binding["nonce"] == flow.nonce
    assert binding["account_id"] == account.id
    assert binding["scope"] == "openid profile email"


# -- prompt, max_age (A-22, A-24) ----------------------------------------------------------------

def test_prompt_none_without_session_is_login_required(client):
    flow = Flow(client)
    assert_redirect_error(flow.authorize(prompt="none"), "login_required", state=flow.state)


def test_prompt_none_with_session_answers_a_code(client, account):
    Flow(client).code()
    assert has_sso(client)


def test_prompt_login_asks_for_the_password_again(client, account, broker):
    flow = Flow(client)
    first = id_token_claims(broker, flow, flow.code())
    edit_session(broker, client, auth_time=first["auth_time"] - 30)
    response = flow.authorize(prompt="login")
    assert goes_to_login(response)
    # going straight to the resume URL without signing in gives no code
    rid = query_of(response.headers["Location"])["rid"]
    assert_redirect_error(client.get(f"/authorize/resume?rid={rid}"), "login_required", state=flow.state)
    # signing in again answers, with a fresh auth_time
    flow = Flow(client)
    claims = id_token_claims(broker, flow, flow.code(prompt="login"))
    assert claims["auth_time"] > first["auth_time"] - 30


@pytest.mark.parametrize("max_age, age", [("0", 0), ("60", 120)])
def test_max_age_forces_reauthentication(client, account, broker, max_age, age):
    Flow(client).code()
    edit_session(broker, client, auth_time=int(time.time()) - age)
    flow = Flow(client)
    assert goes_to_login(flow.authorize(max_age=max_age))
    assert_redirect_error(flow.authorize(max_age=max_age, prompt="none"), "login_required", state=flow.state)
    before = int(time.time())
    claims = id_token_claims(broker, flow, flow.code(max_age=max_age))
    assert claims["auth_time"] >= before


def test_max_age_within_limit_keeps_sso(client, account):
    Flow(client).code()
    assert not goes_to_login(Flow(client).authorize(max_age="3600"))


# -- acr (A-22) --------------------------------------------------------------------------------------

def test_acr_values_eidas1_works_and_id_token_says_eidas1(client, account, broker):
    flow = Flow(client)
    claims = id_token_claims(broker, flow, flow.code(acr_values="eidas1"))
    assert claims["acr"] == "eidas1"
    assert claims["amr"] == ["pwd"]


def test_acr_values_eidas2_with_a_session_is_refused_never_a_code(client, account):
    """A password-only session (eidas1) never answers eidas2: a new login (with a second factor) is
    needed, and prompt=none cannot give one (the second factor itself: tests/account/test_mfa.py)."""
    Flow(client).code()
    flow = Flow(client)
    assert goes_to_login(flow.authorize(acr_values="eidas2"))
    flow = Flow(client)
    assert_redirect_error(flow.authorize(acr_values="eidas2", prompt="none"), "unmet_authentication_requirements",
                          state=flow.state)


# -- legacy clients may omit state and nonce (per-client switch) --------------------------------------

@pytest.fixture
def legacy_client(tmp_path, backend):
    from broker.accounts import create_account
    from broker.app import create_app
    from tests.conftest import PG_URL, REDIS_URL

    clients = {
        "legacy": """
            name: Ancien service
            redirect_uris: [https://legacy.example.nc/cb]
            token_endpoint_auth_method: none
            require_state_and_nonce: false
        """,
        "modern": """
            name: Nouveau service
            redirect_uris: [https://modern.example.nc/cb]
            token_endpoint_auth_method: none
        """,
    }
    if backend == "server":
        config = write_config(tmp_path / "legacy", database_url=PG_URL, redis_url=REDIS_URL, clients=clients)
    else:
        config = write_config(tmp_path / "legacy", database_url="sqlite:///legacy.db", clients=clients)
    app = create_app(config, migrate=True)
    app.config["TESTING"] = True
    create_account(app.extensions["nc_connect"].sessions, "citoyen@example.nc", PASSWORD, given_name="Jean")
    c = app.test_client()
    c.environ_base["wsgi.url_scheme"] = "https"
    c.environ_base["HTTP_HOST"] = HOST
    yield c
    app.extensions["nc_connect"].engine.dispose()


def test_legacy_client_may_omit_state_and_nonce(legacy_client):
    flow = Flow(legacy_client, "legacy", "https://legacy.example.nc/cb")
    response = flow.login(flow.authorize(state=None, nonce=None, scope="openid"))
    response = legacy_client.get(response.headers["Location"])
    params = query_of(response.headers["Location"])
    assert set(params) == {"code", "iss"}
    token = flow.token(params["code"], client_id="legacy")
    assert token.status_code == 200, token.json
    # a client without the switch still must send both
    modern = Flow(legacy_client, "modern", "https://modern.example.nc/cb")
    assert_redirect_error(modern.authorize(nonce=None, scope="openid"), "invalid_request", state=modern.state,
                          redirect_uri="https://modern.example.nc/cb")


# -- SSO and the session cookie (D-11, D-13, D-14) -----------------------------------------------------

def test_second_client_signs_in_without_password_and_sub_is_pairwise(client, account, broker):
    alpha = Flow(client)
    alpha_sub = id_token_claims(broker, alpha, alpha.code())["sub"]
    beta = Flow(client, "beta", "https://beta.example.nc/cb")
    response = beta.authorize()
    assert not goes_to_login(response)
    params = query_of(response.headers["Location"])
    assert params["state"] == beta.state and params["iss"] == ISSUER
    beta_sub = id_token_claims(broker, beta, params["code"], client_id="beta", client_secret=SECRET)["sub"]
    assert beta_sub != alpha_sub
    assert account.id not in (alpha_sub, beta_sub)


def test_sub_is_stable_for_one_client_across_logins(client, app, account, broker):
    alpha = Flow(client)
    first = id_token_claims(broker, alpha, alpha.code())["sub"]
    other_browser = app.test_client()
    other_browser.environ_base.update(client.environ_base)
    again = Flow(other_browser)
    assert id_token_claims(broker, again, again.code())["sub"] == first


def test_login_issues_a_new_session_cookie_and_planted_cookie_is_useless(client, app, account, broker):
    flow = Flow(client)
    response = flow.authorize()
    before = session_cookie(client)
    assert before
    response = flow.login(response)
    after = session_cookie(client)
    assert after and after != before
    assert broker.store.get(session_key(before)) is None
    # an attacker who planted ``before`` in the victim's browser gets nothing after the victim's login
    attacker = app.test_client()
    attacker.environ_base.update(client.environ_base)
    plant_cookie(attacker, before)
    assert not has_sso(attacker)
    assert has_sso(client)


def test_logout_destroys_the_session_and_old_cookie_gives_no_sso(client, app, account):
    Flow(client).code()
    old = session_cookie(client)
    page = client.get("/logout")
    response = client.post("/logout", data={"confirm": "1", "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert response.status_code == 200
    assert not has_sso(client)
    replay = app.test_client()
    replay.environ_base.update(client.environ_base)
    plant_cookie(replay, old)
    assert not has_sso(replay)


def test_session_idle_timeout(client, account, broker, monkeypatch):
    from broker import sessions

    Flow(client).code()
    idle = broker.config.broker.lifetimes.session_idle
    assert idle <= 30 * 60
    shift_time(monkeypatch, sessions, idle - 90)
    assert has_sso(client)  # still alive (and slid forward)
    shift_time(monkeypatch, sessions, 2 * idle - 120)
    assert has_sso(client)
    shift_time(monkeypatch, sessions, 3 * idle + 10)
    assert not has_sso(client)


def test_session_idle_timeout_from_stored_seen(client, account, broker):
    Flow(client).code()
    edit_session(broker, client, seen=time.time() - broker.config.broker.lifetimes.session_idle - 5)
    assert not has_sso(client)


def test_session_absolute_lifetime(client, account, broker):
    Flow(client).code()
    absolute = broker.config.broker.lifetimes.session_absolute
    assert absolute <= 12 * 3600
    edit_session(broker, client, created=time.time() - absolute + 120, seen=time.time())
    assert has_sso(client)
    edit_session(broker, client, created=time.time() - absolute - 5, seen=time.time())
    assert not has_sso(client)


# -- the login page ----------------------------------------------------------------------------------

class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict] = {}
        self.labels: dict[str, str] = {}
        self._label: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.inputs[a["name"]] = a
        if tag == "label":
            self._label = a.get("for")
            self.labels[self._label] = ""

    def handle_data(self, data):
        if self._label is not None:
            self.labels[self._label] += data

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None


def test_login_form_has_autocomplete_and_visible_labels(client):
    _, html, _ = login_page(client, Flow(client))
    form = _Form()
    form.feed(html)
    email, password = form.inputs["email"], form.inputs["password"]
    assert email["autocomplete"] == "username" and email["type"] == "email"
    assert password["autocomplete"] == "current-password" and password["type"] == "password"
    assert form.labels[email["id"]].strip() == "Adresse électronique" + "Format attendu : nom@domaine.nc"  # label, hint
    assert form.labels[password["id"]].strip() == "Mot de passe"


def test_unknown_email_and_wrong_password_get_identical_answers(client, account):
    flow = Flow(client)
    page, html, rid = login_page(client, flow)
    token = csrf_of(html)

    def attempt(email, password):
        response = client.post("/login", data={"csrf_token": token, "rid": rid, "email": email, "password": password})
        body = response.get_data(as_text=True).replace(token, "CSRF").replace(email, "EMAIL")
        headers = sorted((k, v) for k, v in response.headers.items() if k not in ("Date", "Content-Length"))
        return response.status_code, headers, body

    unknown = attempt("personne@example.nc", PASSWORD)
    wrong = attempt("citoyen@example.nc", "wrong password, nice try")
    assert unknown == wrong
    assert "Adresse électronique ou mot de passe incorrect." in wrong[2]
    assert not has_sso(client)


@pytest.mark.parametrize("token", [None, "", "forged-token", "x" * 43])
def test_login_without_valid_csrf_token_is_refused(client, account, token):
    flow = Flow(client)
    _, html, rid = login_page(client, flow)
    data = {"rid": rid, "email": "citoyen@example.nc", "password": PASSWORD}
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/login", data=data)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert not has_sso(client)


def test_login_csrf_token_from_another_browser_is_refused(client, app, account):
    other = app.test_client()
    other.environ_base.update(client.environ_base)
    _, other_html, _ = login_page(other, Flow(other))
    _, _, rid = login_page(client, Flow(client))
    response = client.post("/login", data={"csrf_token": csrf_of(other_html), "rid": rid,
                                           "email": "citoyen@example.nc", "password": PASSWORD})
    assert response.status_code == 400
    assert not has_sso(client)


def test_password_guessing_is_throttled_then_released(client, account, monkeypatch):
    flow = Flow(client)
    _, html, rid = login_page(client, flow)
    token = csrf_of(html)

    def attempt(password):
        return client.post("/login", data={"csrf_token": token, "rid": rid, "email": "citoyen@example.nc",
                                           "password": password})

    statuses = [attempt(f"wrong password {i}").status_code for i in range(throttle.FREE_ATTEMPTS + 1)]
    assert statuses == [200] * (throttle.FREE_ATTEMPTS + 1)
    locked = attempt(PASSWORD)
    assert locked.status_code == 429
    assert "Trop de tentatives" in locked.get_data(as_text=True)
    assert not has_sso(client)
    # the lock is soft: it ends by itself
    shift_time(monkeypatch, throttle, throttle.MAX_DELAY + 1)
    released = attempt(PASSWORD)
    assert released.status_code == 303
    assert released.headers["Location"].startswith("/authorize/resume?rid=")


def test_cancel_returns_access_denied_to_the_client(client, account):
    flow = Flow(client)
    _, html, rid = login_page(client, flow)
    response = client.post("/login", data={"csrf_token": csrf_of(html), "rid": rid, "cancel": "1"})
    assert_redirect_error(response, "access_denied", state=flow.state)
    assert not has_sso(client)


def test_login_post_with_expired_or_unknown_rid_shows_error_page(client, account):
    _, html, _ = login_page(client, Flow(client))
    response = client.post("/login", data={"csrf_token": csrf_of(html), "rid": "forged", "email": "citoyen@example.nc",
                                           "password": PASSWORD})
    assert_error_page(response)
    assert_error_page(client.get("/login?rid=forged"))
    assert_error_page(client.get("/authorize/resume?rid=forged"))


def test_pending_request_expires(client, account, broker, monkeypatch):
    from broker.oidc import authorize

    flow = Flow(client)
    response = flow.login(flow.authorize())
    shift_time(monkeypatch, authorize, broker.config.broker.lifetimes.login_transaction + 5)
    assert_error_page(client.get(response.headers["Location"]))


def test_session_cookie_value_is_not_stored_in_clear(client, account, broker):
    Flow(client).code()
    cookie = session_cookie(client)
    assert broker.store.get(session_key(cookie))["account_id"] == account.id
    assert not any(cookie in k or cookie in v for k, v in store_dump(broker))
