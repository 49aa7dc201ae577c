"""Security headers, cookies, CORS and escaping on the citizen-facing pages.

Checklist E-01..E-07, E-11, E-13, E-14, on every kind of page: source choice, login, sign-up, reset,
second factor, consent, the citizen's space, help, logout, errors.  The test configuration's issuer is
https, so cookies are ``Secure`` and carry the ``__Host-`` prefix; one
téléservice origin is allowlisted for CORS so that the tests show it is used
only where it should be.
"""

from __future__ import annotations

import re

import pytest

from tests.account.conftest import smtp_block
from tests.conftest import SECRET, Flow, csrf_of, storage_for, write_config
from tests.test_authorize import login_page

ALLOWED_ORIGIN = "https://alpha.example.nc"
XSS = '"><script>alert(1)</script><img src=x onerror=alert(1)>\'<svg/onload=alert(1)>'


@pytest.fixture
def config_dir(tmp_path, backend):
    # the mail server is never reached: the pages are only displayed
    extra = f"cors_origins: [{ALLOWED_ORIGIN}]\n" + smtp_block(9)
    directory = write_config(tmp_path / "config", extra=extra, **storage_for(backend))
    (directory / "clients" / "asking.yaml").write_text(f"""name: Service qui demande le consentement
redirect_uris: [https://asking.example.nc/cb]
client_secret: {SECRET}
""")
    return directory


def csp(response) -> dict[str, list[str]]:
    out = {}
    for directive in response.headers["Content-Security-Policy"].split(";"):
        name, *values = directive.split()
        out[name] = values
    return out


# Each returns an HTML response of the broker: pages, the login page, error pages.
def _login(client):
    return login_page(client, Flow(client))[0]


def _login_failed(client):
    page, html, rid = login_page(client, Flow(client))
    return client.post("/login", data={"csrf_token": csrf_of(html), "rid": rid, "email": "x@example.nc", "password": "nope"})


def _login_csrf_refused(client):
    _, _, rid = login_page(client, Flow(client))
    return client.post("/login", data={"rid": rid, "email": "x@example.nc", "password": "nope"})


def _signed_in(path):
    def get(client):
        flow = Flow(client)
        flow.token(flow.code())
        return client.get(path)
    return get


def _consent(client):
    flow = Flow(client, client_id="asking", redirect_uri="https://asking.example.nc/cb")
    response = flow.login(flow.authorize())
    return client.get(client.get(response.headers["Location"]).headers["Location"])


PAGES = {
    "home": lambda c: c.get("/"),
    "login without request": lambda c: c.get("/login"),
    "login": _login,
    "login failed": _login_failed,
    "login csrf refused": _login_csrf_refused,
    "login expired rid": lambda c: c.get("/login?rid=unknown"),
    "authorize unknown client": lambda c: Flow(c, client_id="nobody").authorize(),
    "authorize bad redirect_uri": lambda c: Flow(c).authorize(redirect_uri="https://evil.example/cb"),
    "logout confirmation": lambda c: c.get("/logout"),
    "logout error": lambda c: c.get("/logout?post_logout_redirect_uri=https://alpha.example.nc/bye"),
    "sign-up": lambda c: c.get("/compte/inscription"),
    "reset request": lambda c: c.get("/compte/mot-de-passe-oublie"),
    "reset with a wrong link": lambda c: c.get("/compte/nouveau-mot-de-passe?jeton=nope"),
    "help": lambda c: c.get("/aide"),
    "about franceconnect": lambda c: c.get("/franceconnect"),
    "consent": _consent,
    "citizen's space": _signed_in("/compte"),
    "password change": _signed_in("/compte/mot-de-passe"),
    "email change": _signed_in("/compte/adresse"),
    "second factor": _signed_in("/compte/double-authentification"),
    "authorisations": _signed_in("/compte/autorisations"),
    "account deletion": _signed_in("/compte/supprimer"),
    "not found": lambda c: c.get("/nowhere"),
    "method not allowed": lambda c: c.put("/authorize"),
}
ERROR_PAGES = {"login csrf refused", "login expired rid", "authorize unknown client", "authorize bad redirect_uri",
               "logout error", "reset with a wrong link", "not found", "method not allowed"}


@pytest.mark.parametrize("name", PAGES)
def test_html_pages_send_security_headers(client, account, name):
    response = PAGES[name](client)
    assert (400 <= response.status_code < 500) == (name in ERROR_PAGES), (name, response.status_code)
    assert response.content_type == "text/html; charset=utf-8"
    policy = csp(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'self'" in policy["script-src"] and len(policy["script-src"]) == 1
    assert "'self'" in policy["form-action"] and ALLOWED_ORIGIN in policy["form-action"]
    assert not re.search(r"unsafe-(inline|eval|hashes)|\*|data:.*script", response.headers["Content-Security-Policy"])
    headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cache-Control"] == "no-store"
    hsts = headers["Strict-Transport-Security"]
    assert int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 31536000 and "includeSubDomains" in hsts
    html = response.get_data(as_text=True)
    # no inline script or handler: only scripts from the broker's own static files
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert all(re.fullmatch(r' src="/static/[a-z-]+\.js"( defer)?', attrs) and not body.strip() for attrs, body in scripts)
    assert " on" not in re.sub(r">[^<]*<", "><", html)
    assert ' style="' not in html and "<style" not in html  # no inline style either (style-src 'self')
    assert not re.search(r'src="(https?:)?//', html)  # no third-party resources
    if name not in ("about franceconnect", "help"):  # pages of information, reached from the login pages' links
        assert not re.search(r'href="(https?:)?//', html)  # no link to another site (E-05)


def test_every_response_is_nosniff_and_not_cached_when_sensitive(client, account):
    flow = Flow(client)
    redirect = flow.authorize()
    token_error = client.post("/token", data={"grant_type": "authorization_code", "code": "nope"},
                              headers=flow.auth_headers())
    userinfo_error = client.get("/userinfo", headers={"Authorization": "Bearer nope"})
    tokens = flow.token(flow.code())
    userinfo = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens.json["access_token"]})
    for response in (redirect, token_error, userinfo_error, tokens, userinfo):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    assert token_error.status_code == 400 and userinfo_error.status_code == 401 and tokens.status_code == 200
    assert userinfo.status_code == 200
    for response in (token_error, tokens, userinfo):
        assert response.mimetype == "application/json"


def _session_set_cookie(response) -> list[str]:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("__Host-ncc_session=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return [a.strip() for a in cookies[0].split(";")]


def test_session_cookie_attributes(client, account):
    flow = Flow(client)
    first = flow.authorize()  # the pending request opens a session
    after_login = flow.login(first)
    for response in (first, after_login):
        name_value, *attrs = _session_set_cookie(response)
        assert len(name_value.split("=", 1)[1]) >= 22  # at least 128 bits
        lower = [a.lower() for a in attrs]
        assert "secure" in lower and "httponly" in lower and "path=/" in lower
        assert "samesite=lax" in lower
        assert not any(a.startswith(("domain", "expires", "max-age")) for a in lower)
    assert [c for c in client._cookies.values()]  # the browser keeps it over https


@pytest.mark.parametrize("origin", [ALLOWED_ORIGIN, "https://evil.example", "null"])
@pytest.mark.parametrize("request_", [
    lambda c, h: c.get("/authorize", query_string=Flow(c).authorize_params(), headers=h),
    lambda c, h: c.post("/authorize", data=Flow(c).authorize_params(), headers=h),
    lambda c, h: c.options("/authorize", headers={**h, "Access-Control-Request-Method": "POST"}),
    lambda c, h: c.get("/authorize?client_id=nobody", headers=h),
    lambda c, h: c.get("/login", headers=h),
    lambda c, h: c.get("/logout", headers=h),
    lambda c, h: c.get("/", headers=h),
], ids=["authorize", "authorize-post", "authorize-preflight", "error-page", "login", "logout", "home"])
def test_no_cors_on_authorize_and_pages(client, origin, request_):
    response = request_(client, {"Origin": origin})
    assert not [h for h in response.headers.keys() if h.lower().startswith("access-control-")]


@pytest.mark.parametrize("path", ["/jwks", "/.well-known/openid-configuration"])
def test_cors_on_metadata_only_for_allowlisted_origins(client, path):
    allowed = client.get(path, headers={"Origin": ALLOWED_ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Origin" in allowed.headers.get("Vary", "")
    assert allowed.headers.get("Access-Control-Allow-Credentials") != "true"
    for origin in ("https://evil.example", "null", ALLOWED_ORIGIN + ".evil.example"):
        assert "Access-Control-Allow-Origin" not in client.get(path, headers={"Origin": origin}).headers


def _assert_inert(response) -> str:
    assert response.status_code < 500
    html = response.get_data(as_text=True)
    ours = re.sub(r'<script src="/static/[a-z-]+\.js"( defer)?></script>', "", html)  # the broker's own scripts
    for raw in ("<script", "<img", "<svg", "alert(1)>"):
        assert raw not in ours, raw
    return html


@pytest.mark.parametrize("overrides", [
    {"state": XSS, "redirect_uri": "https://evil.example/cb"},
    {"client_id": XSS},
    {"redirect_uri": XSS},
    {"redirect_uri": "https://alpha.example.nc/callback?x=" + XSS},
    {"state": XSS, "nonce": XSS, "scope": "openid " + XSS, "ui_locales": XSS, "acr_values": XSS,
     "claims": XSS, "prompt": "login"},
])
def test_xss_payloads_in_authorize_parameters_render_inert(client, overrides):
    response = Flow(client).authorize(**overrides)
    if response.status_code == 303:
        assert not re.search(r"[<>\"' ]", response.headers["Location"])
        if response.headers["Location"].startswith("/login"):
            _assert_inert(client.get(response.headers["Location"]))
    else:
        _assert_inert(response)


def test_xss_in_login_hint_and_email_is_escaped(client, account):
    page, html, rid = login_page(client, Flow(client), login_hint=XSS)
    _assert_inert(page)
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;' in html
    failed = client.post("/login", data={"csrf_token": csrf_of(html), "rid": rid, "email": XSS, "password": "x"})
    assert 'value="&#34;&gt;&lt;script&gt;' in _assert_inert(failed)


@pytest.mark.parametrize("request_", [
    lambda c: c.get("/logout", query_string={"state": XSS, "post_logout_redirect_uri": XSS, "id_token_hint": XSS}),
    lambda c: c.get("/" + XSS),
    lambda c: c.get("/login", query_string={"rid": XSS}),
    lambda c: c.get("/authorize/resume", query_string={"rid": XSS}),
], ids=["logout", "not-found", "login-rid", "resume-rid"])
def test_xss_payloads_elsewhere_render_inert(client, request_):
    _assert_inert(request_(client))
