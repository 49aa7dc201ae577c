"""A real SAML 2.0 identity provider for the tests: pysaml2 (an implementation independent of
python3-saml) with its own RSA key, served over HTTP on a loopback port by a WSGI thread.

Endpoints (base ``http://localhost:<port>``):

``/metadata``        the IdP metadata (NC Connect fetches it by URL and caches it)
``/sso/redirect``    SingleSignOnService, HTTP-Redirect binding (signature of the AuthnRequest checked)
``/sso/post``        SingleSignOnService, HTTP-POST binding (embedded signature checked)
``/slo``             SingleLogoutService, HTTP-Redirect binding (LogoutRequest from the SP)

There is no login form: the test says who logs in next (``idp.login_as = "jean.kabar"``),
and the SSO endpoint answers with the auto-submitted form that posts a signed
Response to the SP's ACS, as a browser would receive it.  ``idp.logout_request(...)``
builds an IdP-initiated, signed LogoutRequest URL.  pysaml2 needs Debian's ``xmlsec1``
binary (``.ci/run`` installs it).
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.serving import make_server

from tests.saml import forge

USERS: dict[str, dict[str, Any]] = {
    "jean.kabar": {
        "name_id": "agent-0042",
        "givenName": ["Jean", "Pierre"],
        "sn": ["kabar"],
        "mail": ["Jean.Kabar@gouv.nc"],
        "dateNaissance": ["14/07/1985"],
        "sexe": ["M"],
        "communeNaissance": ["Nouméa"],
        "paysNaissance": ["Nouvelle-Calédonie"],
        "authn": forge.PPT,
    },
    "marie.wamytan": {
        "name_id": "agent-0077",
        "givenName": ["marie-claire"],
        "sn": ["Wamytan"],
        "mail": ["marie.wamytan@gouv.nc"],
        "dateNaissance": ["28/02/1990"],
        "sexe": ["F"],
        "communeNaissance": ["Port-Vila"],
        "paysNaissance": ["Vanuatu"],
        "authn": forge.SMARTCARD,
    },
}
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def xmlsec_binary() -> str | None:
    return shutil.which("xmlsec1")


@dataclass
class TestIdp:
    base: str
    workdir: Path
    keys: forge.KeyPair
    login_as: str = "jean.kabar"
    encrypt: bool = False
    sp_metadata: list[bytes] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)  # name_id → session index
    _server: Any = None

    @property
    def entity_id(self) -> str:
        return f"{self.base}/idp"

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/metadata"

    # -- pysaml2 ---------------------------------------------------------
    def server(self):
        """A pysaml2 Server knowing the SP metadata registered so far (rebuilt when it changes)."""
        if self._server is None or self._server[0] != len(self.sp_metadata):
            from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
            from saml2.config import IdPConfig
            from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT
            from saml2.server import Server

            (self.workdir / "idp.key").write_text(self.keys.key_pem)
            (self.workdir / "idp.crt").write_text(self.keys.cert_pem)
            metadata_files = []
            for i, xml in enumerate(self.sp_metadata):
                path = self.workdir / f"sp-{i}.xml"
                path.write_bytes(xml)
                metadata_files.append(str(path))
            config = IdPConfig()
            config.load({
                "entityid": self.entity_id,
                "service": {"idp": {
                    "endpoints": {
                        "single_sign_on_service": [(f"{self.base}/sso/redirect", BINDING_HTTP_REDIRECT),
                                                   (f"{self.base}/sso/post", BINDING_HTTP_POST)],
                        "single_logout_service": [(f"{self.base}/slo", BINDING_HTTP_REDIRECT)],
                    },
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "want_authn_requests_signed": True,
                    "sign_assertion": True,
                    "sign_response": False,
                    "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                           "name_form": NAME_FORMAT_URI}},
                }},
                "key_file": str(self.workdir / "idp.key"),
                "cert_file": str(self.workdir / "idp.crt"),
                "encryption_keypairs": [{"key_file": str(self.workdir / "idp.key"),
                                         "cert_file": str(self.workdir / "idp.crt")}],
                "xmlsec_binary": xmlsec_binary(),
                "metadata": {"local": metadata_files},
                "signing_algorithm": RSA_SHA256,
                "digest_algorithm": SHA256,
                "accepted_time_diff": 60,
            })
            self._server = (len(self.sp_metadata), Server(config=config))
        return self._server[1]

    def metadata(self) -> bytes:
        from saml2.metadata import create_metadata_string

        return create_metadata_string(None, self.server().config, valid=1, sign=False)

    def register_sp(self, metadata: bytes) -> None:
        self.sp_metadata.append(metadata)

    # -- SSO -------------------------------------------------------------
    def answer(self, binding: str, params: dict[str, str]) -> str:
        """The auto-submit form (HTML) carrying the signed Response for ``login_as``."""
        from saml2 import BINDING_HTTP_POST
        from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID

        server = self.server()
        request = server.parse_authn_request(params["SAMLRequest"], binding, relay_state=params.get("RelayState"),
                                             sigalg=params.get("SigAlg"), signature=params.get("Signature"))
        user = dict(USERS[self.login_as])
        name_id = user.pop("name_id")
        context = user.pop("authn")
        resp_args = server.response_args(request.message, [BINDING_HTTP_POST])
        sp_entity = resp_args["sp_entity_id"]
        response = str(server.create_authn_response(
            user, userid=name_id,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, sp_name_qualifier=sp_entity, text=name_id),
            authn={"class_ref": context, "authn_auth": self.entity_id}, sign_assertion=True, sign_response=False,
            # pysaml2's "self-contained" mode renames namespace prefixes after signing, which breaks the
            # exclusive-c14n signature for any verifier; the plain mode encrypts the signed assertion as is.
            encrypt_assertion=self.encrypt, encrypt_assertion_self_contained=False,
            encrypt_cert_assertion=self._sp_cert(sp_entity) if self.encrypt else None,
            sign_alg=RSA_SHA256, digest_alg=SHA256, **resp_args))
        index = re.search(r'SessionIndex="([^"]+)"', response)
        self.sessions[name_id] = index.group(1) if index else None
        self.last_response = response
        form = server.apply_binding(BINDING_HTTP_POST, response, resp_args["destination"],
                                    params.get("RelayState", ""), response=True)
        return form["data"]

    def _sp_cert(self, sp_entity: str) -> str:
        certs = self.server().metadata.certs(sp_entity, "spsso", use="encryption")
        return certs[0][1]

    # -- SLO -------------------------------------------------------------
    def logout_request(self, sp_entity: str, sp_slo: str, name_id: str, *, session_index: str | None = None,
                       sign: bool = True) -> str:
        """URL of an IdP-initiated LogoutRequest (HTTP-Redirect), signed with the IdP's key."""
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID

        server = self.server()
        _, request = server.create_logout_request(
            sp_slo, sp_entity, name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, sp_name_qualifier=sp_entity,
                                              text=name_id),
            session_indexes=[session_index or self.sessions.get(name_id, "_s-1")], sign=False)
        info = server.apply_binding(BINDING_HTTP_REDIRECT, str(request), sp_slo, "idp-relay", sign=sign,
                                    sigalg=RSA_SHA256 if sign else None)
        return dict(info["headers"])["Location"]

    def slo(self, params: dict[str, str]) -> str:
        """The SP-initiated LogoutRequest arrives: verify it, answer with a signed LogoutResponse URL."""
        from saml2 import BINDING_HTTP_REDIRECT

        server = self.server()
        request = server.parse_logout_request(params["SAMLRequest"], BINDING_HTTP_REDIRECT,
                                              relay_state=params.get("RelayState"), sigalg=params.get("SigAlg"),
                                              signature=params.get("Signature"))
        if "Signature" not in params:
            raise ValueError("unsigned LogoutRequest")
        self.last_logout_request = request.message
        response = server.create_logout_response(request.message, [BINDING_HTTP_REDIRECT], sign=False)
        _, destination = server.pick_binding("single_logout_service", [BINDING_HTTP_REDIRECT], "spsso",
                                             entity_id=request.message.issuer.text)
        info = server.apply_binding(BINDING_HTTP_REDIRECT, str(response), destination, params.get("RelayState", ""),
                                    response=True, sign=True, sigalg=RSA_SHA256)
        return dict(info["headers"])["Location"]

    # -- WSGI ------------------------------------------------------------
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        params = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        try:
            if path == "/metadata":
                return _reply(start_response, "200 OK", self.metadata(), "application/samlmetadata+xml")
            if path == "/sso/redirect":
                from saml2 import BINDING_HTTP_REDIRECT

                return _reply(start_response, "200 OK", self.answer(BINDING_HTTP_REDIRECT, params).encode(),
                              "text/html; charset=utf-8")
            if path == "/sso/post":
                from saml2 import BINDING_HTTP_POST

                size = int(environ.get("CONTENT_LENGTH") or 0)
                form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(size).decode()).items()}
                return _reply(start_response, "200 OK", self.answer(BINDING_HTTP_POST, form).encode(),
                              "text/html; charset=utf-8")
            if path == "/slo":
                start_response("303 See Other", [("Location", self.slo(params))])
                return [b""]
        except Exception as exc:  # the test sees the IdP's refusal as a 400 with its reason
            return _reply(start_response, "400 Bad Request", f"{type(exc).__name__}: {exc}".encode(), "text/plain")
        return _reply(start_response, "404 Not Found", b"not found", "text/plain")


def _reply(start_response, status: str, body: bytes, content_type: str):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def form_of(page: str) -> tuple[str, dict[str, str]]:
    """The action and fields of the auto-submitted SAML form in ``page`` (what a browser would post)."""
    for form in re.findall(r"<form\b.*?</form>", page, flags=re.S):
        fields = {html.unescape(n): html.unescape(v)
                  for n, v in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form)}
        if "SAMLRequest" in fields or "SAMLResponse" in fields:
            return html.unescape(re.search(r'<form[^>]*action="([^"]+)"', form).group(1)), fields
    raise AssertionError("no SAML form in the page: " + page[:300])


@pytest.fixture
def saml_idp():
    """A running pysaml2 IdP with a fresh key; skipped by hand (failed under CI) without xmlsec1."""
    import os

    if xmlsec_binary() is None:
        message = "pysaml2 needs the xmlsec1 binary (apt-get install xmlsec1; .ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    workdir = Path(tempfile.mkdtemp(prefix="ncc-idp-"))
    server = make_server("127.0.0.1", 0, lambda e, s: idp(e, s), threaded=True)
    idp = TestIdp(base=f"http://localhost:{server.server_port}", workdir=workdir, keys=forge.keypair("pysaml2-idp"))
    thread = threading.Thread(target=server.serve_forever, name="saml-test-idp", daemon=True)
    thread.start()
    yield idp
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()
    shutil.rmtree(workdir, ignore_errors=True)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}
