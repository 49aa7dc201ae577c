"""The ``oidc`` identity source against a real upstream (oidc-provider) and a forged one.

Checklist group B: every refusal is an UpstreamError with a French message for the
citizen and a log detail that carries no token, code or secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from pydantic import ValidationError

from providers import oidc
from providers.base import LoginRequest, RedirectProvider, UpstreamError, UpstreamIdentity
from providers.oidc import OidcProvider, validate_settings
from tests.providers.forged import CALLBACK, CLIENT_ID, CLIENT_SECRET, new_key
from tests.upstream.fixture import run_upstream

FC_SCOPES = "openid given_name family_name birthdate gender birthplace birthcountry email preferred_username"
FRENCH_MESSAGES = {oidc.MSG_UNAVAILABLE, oidc.MSG_CANCELLED, oidc.MSG_UPSTREAM_ERROR, oidc.MSG_INVALID,
                   oidc.MSG_LEVEL, oidc.MSG_TOO_OLD}


def login_request(**overrides) -> LoginRequest:
    values = dict(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32), callback_url=CALLBACK)
    values.update(overrides)
    return LoginRequest(**values)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def assert_refused(excinfo, message: str | None = None, *, secrets_: tuple[str, ...] = (), detail: str = ""):
    """The refusal speaks French to the citizen and leaks nothing secret to the logs."""
    exc = excinfo.value
    assert isinstance(exc, UpstreamError)
    assert exc.message in FRENCH_MESSAGES
    assert "fournisseur d'identité" in exc.message
    if message is not None:
        assert exc.message == message
    assert exc.detail, "a refusal must say why in the logs"
    assert detail in exc.detail
    for secret in secrets_:
        if secret:
            assert secret not in exc.detail
            assert secret not in exc.message
            assert secret not in str(exc)


# ======================================================================= real upstream


@pytest.fixture(scope="module")
def fc_client(upstream):
    return upstream.register_client([CALLBACK], post_logout_redirect_uris=["http://localhost:8000/logout/done"])


@pytest.fixture(scope="module")
def jwt_client(upstream):
    """RS256 ID tokens and userinfo as a signed ES256 JWT (FranceConnect v2 style)."""
    return upstream.register_client([CALLBACK], id_token_signed_response_alg="RS256",
                                    userinfo_signed_response_alg="ES256")


def fc_provider(upstream, client, **overrides) -> OidcProvider:
    raw = {"issuer": upstream.issuer, "client_id": client.client_id, "client_secret": client.client_secret,
           "scopes": FC_SCOPES, "level": "eidas2"}
    raw.update(overrides)
    return OidcProvider.from_settings("fc", "FranceConnect (test)", raw)


def browse(upstream, provider, request, account="jean.kabar", **login):
    """begin_login, then the citizen logs in at the upstream; returns (params, provider_state)."""
    step = provider.begin_login(request)
    callback = upstream.login(requests.Session(), step.redirect_url, account, **login)
    assert callback.startswith(CALLBACK + "?"), callback
    params = upstream.callback_params(callback)
    assert params["state"] == request.state
    return params, step.provider_state


def test_full_login_gives_the_raw_identity(upstream, fc_client):
    provider = fc_provider(upstream, fc_client)
    assert isinstance(provider, RedirectProvider)
    request = login_request(acr_values=("eidas1",), force_login=True, ui_locales="fr")
    step = provider.begin_login(request)

    sent = query(step.redirect_url)
    assert step.redirect_url.startswith(f"{upstream.issuer}/auth?")
    verifier = step.provider_state["code_verifier"]
    assert step.provider_state == {"code_verifier": verifier, "issuer": upstream.issuer}
    assert sent == {
        "response_type": "code", "client_id": fc_client.client_id, "redirect_uri": CALLBACK, "scope": FC_SCOPES,
        "state": request.state, "nonce": request.nonce, "code_challenge_method": "S256",
        "code_challenge": base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode(),
        "acr_values": "eidas1", "prompt": "login", "ui_locales": "fr",
    }
    assert len(verifier) >= 43

    callback = upstream.login(requests.Session(), step.redirect_url, "jean.kabar")
    params = upstream.callback_params(callback)
    assert params["iss"] == upstream.issuer
    before = int(time.time())
    identity = provider.complete_login(params, step.provider_state, request)

    assert isinstance(identity, UpstreamIdentity)
    assert identity.provider_id == "fc"
    assert identity.subject == "jean.kabar"
    assert identity.issuer == upstream.issuer
    assert identity.acr == "eidas1"
    assert identity.amr == ("pwd",)
    assert before - 30 <= identity.auth_time <= before + 5
    account = {k: v for k, v in upstream.accounts["jean.kabar"].items() if k != "amr"}
    assert identity.attributes == {**account, "sub": "jean.kabar", "acr": "eidas1", "amr": ["pwd"],
                                   "auth_time": identity.auth_time}
    assert identity.attributes["given_name"] == "Jean Pierre Marie"  # every first name, raw
    # Only the upstream ID token is kept, for logout (B-13).
    assert set(identity.session_data) == {"id_token"}
    header = json.loads(base64.urlsafe_b64decode(identity.session_data["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "ES256"


def test_born_abroad_and_mfa_account(upstream, fc_client):
    provider = fc_provider(upstream, fc_client)
    request = login_request()
    identity = provider.complete_login(*browse(upstream, provider, request, "marie.wamytan"), request)
    assert identity.attributes["birthplace"] == ""
    assert identity.attributes["birthcountry"] == "99134"
    assert identity.amr == ("pwd", "mfa")


def test_rs256_id_token_and_signed_userinfo(upstream, jwt_client):
    """Keys are chosen by kid and alg in a JWKS holding ES256 and RS256 keys; userinfo is a JWT."""
    provider = fc_provider(upstream, jwt_client)
    request = login_request(acr_values=("eidas2",))
    identity = provider.complete_login(*browse(upstream, provider, request), request)
    assert identity.acr == "eidas2"
    assert identity.attributes["family_name"] == "Kabar"
    assert identity.attributes["birthplace"] == "98818"
    assert "aud" not in identity.attributes and "iss" not in identity.attributes
    header = json.loads(base64.urlsafe_b64decode(identity.session_data["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "RS256"


def test_userinfo_json_mode_refuses_a_jwt(upstream, jwt_client):
    provider = fc_provider(upstream, jwt_client, userinfo="json")
    request = login_request()
    params, state = browse(upstream, provider, request)
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login(params, state, request)
    assert_refused(excinfo, oidc.MSG_INVALID, secrets_=(params["code"],), detail="is not JSON")


def test_acr_is_capped_at_the_configured_level(upstream, fc_client):
    provider = fc_provider(upstream, fc_client, level="eidas1")
    request = login_request(acr_values=("eidas1",))
    identity = provider.complete_login(*browse(upstream, provider, request, acr="eidas2"), request)
    assert identity.acr == "eidas1"


def test_client_secret_basic(upstream):
    client = upstream.register_client([CALLBACK], token_endpoint_auth_method="client_secret_basic")
    provider = fc_provider(upstream, client, token_endpoint_auth_method="client_secret_basic")
    request = login_request()
    assert provider.complete_login(*browse(upstream, provider, request), request).subject == "jean.kabar"


def test_private_key_jwt(upstream, tmp_path):
    key = ECKey.generate_key("P-256", {"kid": "nc-connect-1"})
    client = upstream.register_client([CALLBACK], token_endpoint_auth_method="private_key_jwt",
                                      token_endpoint_auth_signing_alg="ES256",
                                      jwks={"keys": [key.as_dict(private=False)]})
    (tmp_path / "upstream-key.json").write_text(json.dumps(key.as_dict(private=True)))
    provider = OidcProvider.from_settings("fc", "FC", {
        "issuer": upstream.issuer, "client_id": client.client_id, "token_endpoint_auth_method": "private_key_jwt",
        "private_key_file": "upstream-key.json", "scopes": FC_SCOPES}, base_dir=tmp_path)
    request = login_request()
    assert provider.complete_login(*browse(upstream, provider, request), request).subject == "jean.kabar"


def test_wrong_nonce_is_refused(upstream, fc_client):
    """B-03: the ID token's nonce must be the transaction's."""
    provider = fc_provider(upstream, fc_client)
    request = login_request()
    params, state = browse(upstream, provider, request)
    other = LoginRequest(state=request.state, nonce=secrets.token_urlsafe(32), callback_url=CALLBACK)
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login(params, state, other)
    assert_refused(excinfo, oidc.MSG_INVALID, secrets_=(params["code"], request.nonce), detail="nonce")


def test_iss_response_parameter_mismatch_is_refused(upstream, fc_client):
    """B-05 / RFC 9207: a response claiming another issuer is refused before the code is used."""
    provider = fc_provider(upstream, fc_client)
    request = login_request()
    params, state = browse(upstream, provider, request)
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login({**params, "iss": "https://evil.example"}, state, request)
    assert_refused(excinfo, oidc.MSG_INVALID, secrets_=(params["code"],), detail="iss")
    with pytest.raises(UpstreamError) as excinfo:  # the upstream advertises iss: it may not be dropped
        provider.complete_login({k: v for k, v in params.items() if k != "iss"}, state, request)
    assert_refused(excinfo, oidc.MSG_INVALID, secrets_=(params["code"],), detail="without iss")
    # The code was never sent to the token endpoint: it still works.
    assert provider.complete_login(params, state, request).subject == "jean.kabar"


def test_transaction_started_with_another_upstream_is_refused(upstream, fc_client):
    provider = fc_provider(upstream, fc_client)
    request = login_request()
    params, state = browse(upstream, provider, request)
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login(params, {**state, "issuer": "https://other-idp.example"}, request)
    assert_refused(excinfo, oidc.MSG_INVALID, secrets_=(params["code"],), detail="expected issuer")


def test_upstream_access_denied(upstream, fc_client):
    """B-15: an error on the callback is refused with the cause in the logs."""
    provider = fc_provider(upstream, fc_client)
    request = login_request()
    step = provider.begin_login(request)
    callback = upstream.deny(requests.Session(), step.redirect_url)
    params = upstream.callback_params(callback)
    assert params["error"] == "access_denied" and params["state"] == request.state
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login(params, step.provider_state, request)
    assert_refused(excinfo, oidc.MSG_CANCELLED, detail="access_denied")


def test_other_upstream_error(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    step = provider.begin_login(request)
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login({"error": "server_error", "error_description": "boom", "iss": forged.issuer},
                                step.provider_state, request)
    assert_refused(excinfo, oidc.MSG_UPSTREAM_ERROR, detail="server_error")
    assert forged.hits.get("/token") is None


def test_acr_lower_than_requested_is_refused(upstream, fc_client):
    """B-09: eidas2 asked, eidas1 reached."""
    provider = fc_provider(upstream, fc_client)
    request = login_request(acr_values=("eidas2",))
    params, state = browse(upstream, provider, request, acr="eidas1")
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login(params, state, request)
    assert_refused(excinfo, oidc.MSG_LEVEL, secrets_=(params["code"],), detail="requested eidas2")


def test_acr_capped_below_the_request_is_refused(upstream, fc_client):
    """The upstream says eidas2 but this source is only trusted up to eidas1."""
    provider = fc_provider(upstream, fc_client, level="eidas1")
    request = login_request(acr_values=("eidas2",))
    params, state = browse(upstream, provider, request, acr="eidas2")
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login(params, state, request)
    assert_refused(excinfo, oidc.MSG_LEVEL)


def test_discovery_issuer_mismatch_is_refused(upstream, fc_client):
    """B-06: the discovery document must name exactly the configured issuer."""
    port = urlsplit(upstream.issuer).port
    provider = fc_provider(upstream, fc_client, issuer=f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamError) as excinfo:
        provider.begin_login(login_request())
    assert_refused(excinfo, oidc.MSG_UNAVAILABLE, detail="discovery issuer")


def test_replayed_code_is_refused_by_the_token_endpoint(upstream, fc_client):
    """B-15: a token endpoint failure is refused, without the code in the logs."""
    provider = fc_provider(upstream, fc_client)
    request = login_request()
    params, state = browse(upstream, provider, request)
    provider.complete_login(params, state, request)
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login(params, state, request)
    assert_refused(excinfo, oidc.MSG_UPSTREAM_ERROR, secrets_=(params["code"],), detail="invalid_grant")


def test_wrong_client_secret_is_refused(upstream, fc_client):
    wrong = "x" * 40
    provider = fc_provider(upstream, fc_client, client_secret=wrong)
    request = login_request()
    params, state = browse(upstream, provider, request)
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login(params, state, request)
    assert_refused(excinfo, oidc.MSG_UPSTREAM_ERROR, secrets_=(params["code"], wrong), detail="invalid_client")


def test_upstream_logout(upstream, fc_client):
    """B-17: id_token_hint, a fresh state and our return URL; the upstream comes back with that state."""
    provider = fc_provider(upstream, fc_client)
    request = login_request()
    browser = requests.Session()
    step = provider.begin_login(request)
    params = upstream.callback_params(upstream.login(browser, step.redirect_url, "jean.kabar"))
    identity = provider.complete_login(params, step.provider_state, request)

    state = secrets.token_urlsafe(32)
    url = provider.begin_logout(identity.session_data, state, "http://localhost:8000/logout/done")
    assert url.startswith(f"{upstream.issuer}/session/end?")
    assert query(url) == {"id_token_hint": identity.session_data["id_token"], "state": state,
                          "post_logout_redirect_uri": "http://localhost:8000/logout/done"}
    back = upstream.logout(browser, url)
    assert back == f"http://localhost:8000/logout/done?state={state}"


def test_upstream_with_a_client_and_accounts_given_at_start():
    """run_upstream() registers clients from its environment, for tests that need their own upstream."""
    secret = secrets.token_urlsafe(32)
    accounts = {"solo": {"given_name": "Solo", "family_name": "Test", "acr": "eidas2"}}
    clients = [{"client_id": "static-client", "client_secret": secret, "redirect_uris": [CALLBACK]}]
    with run_upstream(accounts=accounts, clients=clients) as solo:
        provider = OidcProvider.from_settings("solo", "Solo", {
            "issuer": solo.issuer, "client_id": "static-client", "client_secret": secret, "level": "eidas2",
            "scopes": ["openid", "given_name", "family_name"]})
        request = login_request()
        identity = provider.complete_login(*browse(solo, provider, request, "solo"), request)
    assert identity.subject == "solo" and identity.acr == "eidas2"
    assert identity.attributes["given_name"] == "Solo" and "birthdate" not in identity.attributes


def test_unreachable_upstream():
    provider = OidcProvider.from_settings("x", "X", {"issuer": "http://localhost:9", "client_id": "c",
                                                     "client_secret": "s" * 32, "timeout": 2})
    with pytest.raises(UpstreamError) as excinfo:
        provider.begin_login(login_request())
    assert_refused(excinfo, oidc.MSG_UNAVAILABLE, detail="unreachable")


# ======================================================================= forged tokens


def run(forged, provider, request, id_token, **answer):
    """complete_login with the forged upstream answering ``id_token``; returns the identity."""
    step = provider.begin_login(request)
    access_token = forged.answer(id_token, **answer)
    params = {"code": "forged-code-" + secrets.token_hex(8), "state": request.state, "iss": forged.issuer}
    run.last = (access_token, params["code"])
    return provider.complete_login(params, step.provider_state, request)


def refused(forged, provider, request, id_token, message=oidc.MSG_INVALID, detail="", **answer):
    with pytest.raises(UpstreamError) as excinfo:
        run(forged, provider, request, id_token, **answer)
    assert_refused(excinfo, message, secrets_=(id_token, *run.last), detail=detail)
    return excinfo.value


def test_forged_upstream_accepts_an_honest_token(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    identity = run(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce)))
    assert identity.subject == "forged-sub-1"
    assert identity.attributes["given_name"] == "Jean"
    # client_secret_post, PKCE verifier and redirect_uri went to the token endpoint (B-01, B-04).
    sent = forged.token_requests[-1]
    assert sent["client_id"] == CLIENT_ID and sent["client_secret"] == CLIENT_SECRET
    assert sent["grant_type"] == "authorization_code" and sent["redirect_uri"] == CALLBACK
    assert len(sent["code_verifier"]) >= 43
    assert "Authorization" not in forged.token_headers[-1]
    assert forged.userinfo_headers[-1]["Authorization"] == f"Bearer {run.last[0]}"


def test_id_token_issuer_mismatch(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    token = forged.sign(forged.id_token_claims(request.nonce, iss="https://evil.example"))
    refused(forged, provider, request, token, detail="iss")


def test_signature_by_another_key_is_refused(forged):
    """B-07: a token signed with a key the upstream never published, under a published kid."""
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    attacker = new_key("EC", kid=forged.es_key.kid)
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce), key=attacker),
            detail="bad_signature")


@pytest.mark.parametrize("header", ["jwk", "jku", "x5c"])
def test_keys_in_the_token_header_are_ignored(forged, header):
    """B-07: jwk / jku / x5u / x5c never supply the verification key."""
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    attacker = new_key("EC", kid="attacker-1")
    value = {"jwk": attacker.as_dict(private=False), "jku": f"{forged.issuer}/attacker-jwks",
             "x5c": ["MIIBattacker"]}[header]
    token = forged.sign(forged.id_token_claims(request.nonce), key=attacker, header={header: value})
    refused(forged, provider, request, token, detail="no single upstream key")
    assert "/attacker-jwks" not in forged.hits


def _unsigned(claims: dict, alg: str = "none") -> str:
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."


def test_alg_none_is_refused(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    refused(forged, provider, request, _unsigned(forged.id_token_claims(request.nonce)), detail="alg 'none'")


def test_hs256_keyed_by_the_client_secret_is_refused(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    token = jwt.encode({"alg": "HS256"}, forged.id_token_claims(request.nonce), OctKey.import_key(CLIENT_SECRET),
                       algorithms=["HS256"])
    refused(forged, provider, request, token, detail="alg 'HS256'")


def test_alg_outside_the_allow_list_is_refused(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings(id_token_signing_alg_values=["ES256"]))
    request = login_request()
    token = forged.sign(forged.id_token_claims(request.nonce), key=forged.rs_key)
    refused(forged, provider, request, token, detail="alg 'RS256'")


def test_key_of_the_wrong_type_for_the_alg_is_refused(forged):
    """A header that says RS256 with the kid of the EC key finds no key."""
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    token = forged.sign(forged.id_token_claims(request.nonce), key=forged.rs_key, header={"kid": forged.es_key.kid})
    refused(forged, provider, request, token, detail="no single upstream key")


def test_encrypted_id_token_is_refused(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    refused(forged, provider, login_request(), "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", detail="JWE")


@pytest.mark.parametrize("claims, detail", [
    ({"exp": -200}, "expired"),  # relative to now; see below
    ({"iat": +200}, "future"),
    ({"iat": -3600, "exp": +60}, "issued"),
    ({"nbf": +600}, "nbf"),
    ({"aud": "another-client"}, "aud"),
    ({"aud": ["another-client"]}, "aud"),
    ({"aud": [CLIENT_ID, "another-client"]}, "azp"),
    ({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}, "azp"),
    ({"azp": "another-client"}, "azp"),
    ({"nonce": None}, "nonce"),
    ({"sub": None}, "sub"),
    ({"sub": ""}, "sub"),
    ({"exp": None}, "exp"),
])
def test_id_token_claims_are_checked(forged, claims, detail):
    """B-08 (and B-03 for a missing nonce)."""
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    now = int(time.time())
    relative = {k: (now + v if k in ("exp", "iat", "nbf") and isinstance(v, int) else v) for k, v in claims.items()}
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce, **relative)), detail=detail)


def test_several_audiences_with_our_azp_are_accepted(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    token = forged.sign(forged.id_token_claims(request.nonce, aud=[CLIENT_ID, "other"], azp=CLIENT_ID))
    assert run(forged, provider, request, token).subject == "forged-sub-1"


def test_clock_skew_is_tolerated(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings(clock_skew=60))
    request = login_request()
    now = int(time.time())
    token = forged.sign(forged.id_token_claims(request.nonce, iat=now + 30, exp=now - 30))
    assert run(forged, provider, request, token).subject == "forged-sub-1"


def test_at_hash_mismatch_is_refused(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    token = forged.sign(forged.id_token_claims(request.nonce, at_hash="AAAAAAAAAAAAAAAAAAAAAA"))
    refused(forged, provider, request, token, detail="at_hash")


def test_at_hash_of_the_access_token_is_accepted(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    access = secrets.token_urlsafe(32)
    at_hash = base64.urlsafe_b64encode(hashlib.sha256(access.encode()).digest()[:16]).rstrip(b"=").decode()
    token = forged.sign(forged.id_token_claims(request.nonce, at_hash=at_hash))
    assert run(forged, provider, request, token, access_token=access).subject == "forged-sub-1"


def test_unknown_acr_is_refused(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce, acr="urn:unknown:loa")),
            message=oidc.MSG_LEVEL, detail="acr")


def test_missing_acr_counts_as_the_lowest_level(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings(level="eidas3"))
    request = login_request()
    assert run(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce, acr=None))).acr == "eidas1"
    request = login_request(acr_values=("eidas2",))
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce, acr=None)),
            message=oidc.MSG_LEVEL, detail="requested eidas2")


def test_acr_map_translates_upstream_values(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings(
        acr_map={"https://idp.gouv.nc/loa/low": "eidas1", "https://idp.gouv.nc/loa/substantial": "eidas2"}))
    request = login_request(acr_values=("eidas2", "eidas3"))
    assert query(provider.begin_login(request).redirect_url)["acr_values"] == "https://idp.gouv.nc/loa/substantial"
    token = forged.sign(forged.id_token_claims(request.nonce, acr="https://idp.gouv.nc/loa/substantial"))
    identity = run(forged, provider, request, token)
    assert identity.acr == "eidas2"
    assert identity.attributes["acr"] == "https://idp.gouv.nc/loa/substantial"  # raw


def test_auth_time_older_than_max_age_is_refused(forged):
    """B-09: auth_time against max_age."""
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request(max_age=300)
    token = forged.sign(forged.id_token_claims(request.nonce, auth_time=int(time.time()) - 3600))
    refused(forged, provider, request, token, message=oidc.MSG_TOO_OLD, detail="max_age")
    request = login_request(max_age=300)
    token = forged.sign(forged.id_token_claims(request.nonce, auth_time=None))
    refused(forged, provider, request, token, detail="auth_time")


def test_userinfo_sub_mismatch_is_refused(forged):
    """B-10: userinfo about someone else."""
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce)),
            userinfo={"sub": "someone-else", "given_name": "Mallory"}, detail="userinfo sub")


def userinfo_jwt(forged, **overrides):
    claims = {"iss": forged.issuer, "aud": CLIENT_ID, "sub": "forged-sub-1", "given_name": "Jean",
              "family_name": "Kabar", "iat": int(time.time())}
    claims.update(overrides)
    return claims


def test_signed_userinfo_is_accepted(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    identity = run(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce)),
                   userinfo=forged.sign(userinfo_jwt(forged), key=forged.rs_key))
    assert identity.attributes["family_name"] == "Kabar"
    assert "aud" not in identity.attributes


@pytest.mark.parametrize("overrides, key, detail", [
    ({"sub": "someone-else"}, None, "userinfo sub"),
    ({"iss": "https://evil.example"}, None, "userinfo JWT iss"),
    ({"aud": "another-client"}, None, "userinfo JWT aud"),
    ({"aud": None}, None, "userinfo JWT aud"),
    ({}, "attacker", "bad_signature"),
])
def test_signed_userinfo_is_checked_like_an_id_token(forged, overrides, key, detail):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    signing = new_key("EC", kid=forged.es_key.kid) if key == "attacker" else forged.es_key
    body = forged.sign(userinfo_jwt(forged, **overrides), key=signing)
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce)),
            userinfo=body, detail=detail)


def test_userinfo_jwt_mode_refuses_json(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings(userinfo="jwt"))
    request = login_request()
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce)),
            detail="application/jwt")


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_jwks_refetched_once_on_unknown_kid(forged):
    """B-16: a rotated key is found by one re-fetch; more unknown kids wait for the rate limit."""
    clock = FakeClock()
    forged.clock = clock
    provider = OidcProvider.from_settings("f", "F", forged.settings(), clock=clock)

    request = login_request()
    run(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce)))
    assert forged.hits["/jwks"] == 1
    request = login_request()
    run(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce)))
    assert forged.hits["/jwks"] == 1  # cached

    rotated = new_key("EC", kid="es-2")
    forged.published = [rotated, forged.rs_key]
    request = login_request()
    identity = run(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce), key=rotated))
    assert identity.subject == "forged-sub-1"
    assert forged.hits["/jwks"] == 2  # one re-fetch found the new key

    unknown = new_key("EC", kid="es-unknown")
    request = login_request()
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce), key=unknown),
            detail="no single upstream key")
    assert forged.hits["/jwks"] == 2  # rate-limited: no second re-fetch within the interval

    clock.now += oidc.JWKS_REFETCH_INTERVAL + 1
    request = login_request()
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce), key=unknown),
            detail="no single upstream key")
    assert forged.hits["/jwks"] == 3  # once per token, after the interval

    # The old key, no longer published, is no longer trusted.
    request = login_request()
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce), key=forged.es_key),
            detail="no single upstream key")


def test_discovery_endpoint_on_another_host_is_refused(forged):
    """B-06: metadata may not send the token call elsewhere."""
    port = urlsplit(forged.issuer).port
    forged.discovery_overrides["token_endpoint"] = f"http://127.0.0.1:{port}/token"
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    with pytest.raises(UpstreamError) as excinfo:
        provider.begin_login(login_request())
    assert_refused(excinfo, oidc.MSG_UNAVAILABLE, detail="token_endpoint")


def test_static_endpoints_need_no_discovery_and_may_be_elsewhere(forged):
    port = urlsplit(forged.issuer).port
    base = f"http://127.0.0.1:{port}"
    provider = OidcProvider.from_settings("f", "F", forged.settings(
        authorization_endpoint=f"{base}/authorize", token_endpoint=f"{base}/token", jwks_uri=f"{base}/jwks",
        userinfo_endpoint=f"{base}/userinfo"))
    request = login_request()
    step = provider.begin_login(request)
    assert step.redirect_url.startswith(f"{base}/authorize?")
    forged.answer(forged.sign(forged.id_token_claims(request.nonce)))
    identity = provider.complete_login({"code": "c", "state": request.state}, step.provider_state, request)
    assert identity.subject == "forged-sub-1"
    assert "/.well-known/openid-configuration" not in forged.hits
    assert provider.begin_logout(identity.session_data, "s", "http://localhost:8000/bye") is None


def test_token_response_without_id_token_is_refused(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    step = provider.begin_login(request)
    forged.token_response = {"access_token": "at-" + secrets.token_hex(16), "token_type": "Bearer"}
    with pytest.raises(UpstreamError) as excinfo:
        provider.complete_login({"code": "c", "state": request.state, "iss": forged.issuer},
                                step.provider_state, request)
    assert_refused(excinfo, oidc.MSG_INVALID, secrets_=(forged.token_response["access_token"],),
                   detail="no id_token")


def test_token_endpoint_server_error(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    request = login_request()
    forged.token_status = 500
    refused(forged, provider, request, forged.sign(forged.id_token_claims(request.nonce)),
            message=oidc.MSG_UPSTREAM_ERROR, detail="HTTP 500")


def test_logout_without_id_token_names_the_client(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings())
    url = provider.begin_logout({}, "st", "http://localhost:8000/bye")
    assert query(url) == {"client_id": CLIENT_ID, "state": "st", "post_logout_redirect_uri": "http://localhost:8000/bye"}


def test_authorization_request_options(forged):
    provider = OidcProvider.from_settings("f", "F", forged.settings(acr_values=["eidas1"]))
    step = provider.begin_login(login_request(acr_values=("eidas2",), max_age=0, login_hint="jean@example.nc"))
    sent = query(step.redirect_url)
    assert sent["acr_values"] == "eidas1"  # the configured ones win
    assert sent["max_age"] == "0" and sent["login_hint"] == "jean@example.nc"
    assert "prompt" not in sent and "ui_locales" not in sent
    assert sent["scope"] == "openid profile email birth"
    other = provider.begin_login(login_request())
    assert other.provider_state["code_verifier"] != step.provider_state["code_verifier"]


# ======================================================================= settings


def test_settings_defaults():
    provider = OidcProvider.from_settings("fc", "FC", {"issuer": "https://fc.example/api/v2", "client_id": "c",
                                                       "client_secret": "s" * 32})
    s = provider.settings
    assert provider.level == "eidas1" and provider.provider_id == "fc" and provider.name == "FC"
    assert s.token_endpoint_auth_method == "client_secret_post"
    assert s.scopes == ["openid", "profile", "email", "birth"]
    assert s.id_token_signing_alg_values == ["ES256", "RS256"]
    assert s.acr_map == {"eidas1": "eidas1", "eidas2": "eidas2", "eidas3": "eidas3"}
    assert s.userinfo == "auto" and s.clock_skew == 60
    assert OidcProvider.from_settings("fc", "FC", {"issuer": "https://fc.example", "client_id": "c",
                                                   "client_secret": "s" * 32, "scopes": FC_SCOPES}
                                      ).settings.scopes == FC_SCOPES.split()


@pytest.mark.parametrize("raw, key", [
    ({"colour": "blue"}, "colour"),
    ({"issuer": "http://fc.example"}, "issuer"),
    ({"issuer": "https://fc.example/#x"}, "issuer"),
    ({"token_endpoint": "http://fc.example/token"}, "token_endpoint"),
    ({"id_token_signing_alg_values": ["HS256"]}, "id_token_signing_alg_values.0"),
    ({"id_token_signing_alg_values": ["none"]}, "id_token_signing_alg_values.0"),
    ({"id_token_signing_alg_values": []}, "id_token_signing_alg_values"),
    ({"clock_skew": 300}, "clock_skew"),
    ({"level": "eidas4"}, "level"),
    ({"acr_map": {"x": "high"}}, "acr_map.x"),
    ({"scopes": ["profile"]}, "scopes"),
    ({"userinfo": "xml"}, "userinfo"),
    ({"client_secret": "short"}, "client_secret"),
    ({"client_secret": None}, "client_secret"),
    ({"acr_values": ["eidas9"]}, "acr_values.0"),
    ({"token_endpoint_auth_method": "private_key_jwt", "client_secret": None}, "private_key_file"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "client_secret"),
    ({"private_key_file": "key.pem"}, "private_key_file"),
    ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle"),
    ({"client_id": ""}, "client_id"),
])
def test_settings_problems(raw, key):
    base = {"issuer": "https://fc.example", "client_id": "c", "client_secret": "s" * 32}
    data = {**base, **raw}
    problems = validate_settings(data)
    assert key in [k for k, _ in problems], problems
    assert all(message for _, message in problems)
    with pytest.raises(ValidationError):
        OidcProvider.from_settings("p", "P", data)


def test_settings_private_key_files(tmp_path):
    key = ECKey.generate_key("P-256", {"kid": "k1"})
    (tmp_path / "key.pem").write_bytes(key.as_pem(private=True))
    (tmp_path / "public.json").write_text(json.dumps(key.as_dict(private=False)))
    base = {"issuer": "https://fc.example", "client_id": "c", "token_endpoint_auth_method": "private_key_jwt"}
    assert validate_settings({**base, "private_key_file": "key.pem"}, base_dir=tmp_path) == []
    assert validate_settings({**base, "private_key_file": str(tmp_path / "key.pem")}) == []
    problems = validate_settings({**base, "private_key_file": "key.pem", "private_key_alg": "RS256"}, base_dir=tmp_path)
    assert [k for k, _ in problems] == ["private_key_alg"]
    problems = validate_settings({**base, "private_key_file": "public.json"}, base_dir=tmp_path)
    assert [k for k, _ in problems] == ["private_key_file"]
    assert validate_settings({"issuer": "http://localhost:5000", "client_id": "c", "client_secret": "s" * 32}) == []
