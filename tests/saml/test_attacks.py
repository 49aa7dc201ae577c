"""What an attacker can send to the SAML assertion consumer service, and how each is refused.

Checklist group C.  Every case starts a real transaction at the broker (so a correct
answer would be accepted, see the first test), breaks one thing in the IdP's answer,
and expects: HTTP 400, a French page without redirect, nothing signed in, and an
audit log line that names the cause.
"""

from __future__ import annotations

import copy
import logging
import socket
import threading

import pytest
from lxml import etree

from tests.conftest import require_servers
from tests.saml import forge
from tests.saml.conftest import ACS, ISSUER, PID, make_sp, text

SAML = f"{{{forge.SAML}}}"
DS = f"{{{forge.DS}}}"
SAMLP = f"{{{forge.SAMLP}}}"


@pytest.fixture(scope="module", params=["sqlite", "server"])
def shared_sp(request, tmp_path_factory):
    """One broker per backend for the whole module: every case uses its own transaction."""
    if request.param == "server":
        require_servers()
    made = make_sp(tmp_path_factory.mktemp("saml-attacks"), request.param)
    yield made
    made.broker.engine.dispose()


@pytest.fixture
def sp(shared_sp):
    shared_sp.client.delete_cookie("__Host-ncc_session")
    shared_sp.client.delete_cookie("__Secure-ncc_upstream_tx", path=f"/callback/{PID}")
    return shared_sp


def refused(response, caplog, reason: str | tuple[str, ...]) -> None:
    reasons = (reason,) if isinstance(reason, str) else reason
    body = text(response)
    assert response.status_code == 400, body[:500]
    assert "Location" not in response.headers
    assert 'lang="fr"' in body and ("Connexion impossible" in body or "Réponse inattendue" in body), body[:800]
    assert "Traceback" not in body
    audit = [r.getMessage() for r in caplog.records if r.name == "nc_connect.audit"]
    assert any("refused" in line and any(r.lower() in line.lower() for r in reasons) for line in audit), (reason, audit)


def signed_root(sp, rid, **changes) -> etree._Element:
    root = forge.response(sp.spec(rid, **changes))
    forge.sign(forge.assertion_of(root), sp.idp_keys)
    return root


# --------------------------------------------------------------------------- the baseline


def test_a_correct_answer_signs_the_citizen_in_and_the_cookie_is_consumed(sp, caplog):
    caplog.set_level(logging.INFO)
    rid, relay = sp.start()
    posted = sp.post(sp.signed(sp.spec(rid)), relay)
    assert posted.status_code == 303 and posted.headers["Location"] == f"/callback/{PID}"
    done = sp.client.get(posted.headers["Location"])
    assert done.status_code == 303 and done.headers["Location"] == "/"
    assert any("login success" in r.getMessage() and f"source={PID}" in r.getMessage() for r in caplog.records)
    deleted = [c for c in done.headers.getlist("Set-Cookie") if c.startswith("__Secure-ncc_upstream_tx=;")]
    assert deleted and "Max-Age=0" in deleted[0]


def test_an_encrypted_assertion_is_decrypted_and_accepted(sp):
    rid, relay = sp.start()
    root = signed_root(sp, rid)
    forge.encrypt_assertion(root, sp.sp_keys.cert_pem)
    assert b"EncryptedAssertion" in etree.tostring(root)
    assert sp.login(forge.encode(root), relay).headers["Location"] == "/"


# --------------------------------------------------------------------------- signatures (C-02, C-03, C-04, C-06)


def test_unsigned_assertion(sp, caplog):
    rid, relay = sp.start()
    refused(sp.post(forge.encode(forge.response(sp.spec(rid))), relay), caplog, "not signed")


def test_only_the_response_signed_is_not_enough(sp, caplog):
    rid, relay = sp.start()
    root = forge.response(sp.spec(rid))
    forge.sign(root, sp.idp_keys)
    refused(sp.post(forge.encode(root), relay), caplog, "assertion of the response is not signed")


def test_signature_by_another_key_with_its_certificate_in_keyinfo(sp, caplog):
    rid, relay = sp.start()
    root = forge.response(sp.spec(rid, name_id="admin"))
    forge.sign(forge.assertion_of(root), forge.keypair("attacker"), keyinfo=True)
    refused(sp.post(forge.encode(root), relay), caplog, "signature validation failed")


def test_signature_broken_by_a_changed_value(sp, caplog):
    rid, relay = sp.start()
    root = signed_root(sp, rid)
    root.find(f".//{SAML}NameID").text = "admin"
    refused(sp.post(forge.encode(root), relay), caplog, "signature validation failed")


def test_deprecated_sha1_signature(sp, caplog):
    rid, relay = sp.start()
    root = forge.response(sp.spec(rid))
    forge.sign(forge.assertion_of(root), sp.idp_keys, forge.SHA1)
    refused(sp.post(forge.encode(root), relay), caplog, "deprecated")


@pytest.mark.parametrize("algorithm", ["http://www.w3.org/TR/1999/REC-xpath-19991116",
                                       "http://www.w3.org/TR/1999/REC-xslt-19991116",
                                       "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"])
def test_xpath_xslt_and_other_transforms(sp, caplog, algorithm):
    rid, relay = sp.start()
    root = signed_root(sp, rid)
    root.find(f".//{DS}Transform").set("Algorithm", algorithm)
    refused(sp.post(forge.encode(root), relay), caplog, "transforms")


# --------------------------------------------------------------------------- XML signature wrapping (C-05)


def _evil(assertion: etree._Element, *, keep_signature: bool, new_id: str = "_evil") -> etree._Element:
    evil = copy.deepcopy(assertion)
    evil.set("ID", new_id)
    evil.find(f"{SAML}Subject/{SAML}NameID").text = "admin@gouv.nc"
    if not keep_signature:
        evil.remove(evil.find(f"{DS}Signature"))
    return evil


def _object(signature: etree._Element) -> etree._Element:
    return etree.SubElement(signature, f"{DS}Object")


def _evil_response(sp, rid) -> tuple[etree._Element, etree._Element]:
    """A Response signed as a whole, and a copy naming someone else that keeps its signature."""
    original = forge.response(sp.spec(rid))
    forge.sign(original, sp.idp_keys)
    evil = copy.deepcopy(original)
    evil.set("ID", "_evil-response")
    evil.find(f"{SAML}Assertion/{SAML}Subject/{SAML}NameID").text = "admin@gouv.nc"
    return original, evil


def _planted(sp, rid, *, keep_signature: bool):
    """A signed assertion with an evil copy placed before it: (response, original, evil).  With
    ``keep_signature`` the copy takes the signature and the original loses its own."""
    root = signed_root(sp, rid)
    original = forge.assertion_of(root)
    evil = _evil(original, keep_signature=keep_signature)
    original.addprevious(evil)
    if keep_signature:
        original.remove(original.find(f"{DS}Signature"))
    return root, original, evil


def xsw1(sp, rid):
    """Response-level signature; the signed original moves into ds:Object, an evil Response takes its place."""
    original, evil = _evil_response(sp, rid)
    signature = evil.find(f"{DS}Signature")
    for child in list(signature):
        if child.tag != f"{DS}SignedInfo" and child.tag != f"{DS}SignatureValue":
            signature.remove(child)
    original.remove(original.find(f"{DS}Signature"))
    _object(signature).append(original)
    return evil


def xsw2(sp, rid):
    """Like XSW1, with the signed original as a detached sibling before the evil content."""
    original, evil = _evil_response(sp, rid)
    evil.find(f"{DS}Signature").addnext(copy.deepcopy(original))
    return evil


def xsw3(sp, rid):
    """An unsigned evil assertion placed before the signed one."""
    return _planted(sp, rid, keep_signature=False)[0]


def xsw4(sp, rid):
    """The signed assertion wrapped inside an evil one."""
    root, original, evil = _planted(sp, rid, keep_signature=False)
    evil.append(original)
    return root


def xsw5(sp, rid):
    """An evil copy keeps the signature (pointing to the original ID); the original is moved to the end."""
    root, original, _ = _planted(sp, rid, keep_signature=True)
    root.append(original)
    return root


def xsw6(sp, rid):
    """An evil copy keeps the signature; the original sits in that signature's ds:Object."""
    root, original, evil = _planted(sp, rid, keep_signature=True)
    _object(evil.find(f"{DS}Signature")).append(original)
    return root


def xsw7(sp, rid):
    """The signed original hidden in samlp:Extensions, an unsigned evil assertion in its place."""
    root, original, _ = _planted(sp, rid, keep_signature=False)
    extensions = etree.Element(f"{SAMLP}Extensions")
    root.find(f"{SAML}Issuer").addnext(extensions)
    extensions.append(original)
    return root


def xsw8(sp, rid):
    """An evil copy with the signature, the original (without its signature) inside ds:Object."""
    root, original, evil = _planted(sp, rid, keep_signature=True)
    _object(evil.find(f"{DS}Signature")).append(original)
    evil.set("ID", original.get("ID") + "-x")
    return root


def advice(sp, rid):
    """A copy of the signed assertion in the evil assertion's Advice."""
    root, original, evil = _planted(sp, rid, keep_signature=False)
    evil.find(f"{SAML}Conditions").addnext(etree.Element(f"{SAML}Advice"))
    evil.find(f"{SAML}Advice").append(original)
    return root


def duplicate_id(sp, rid):
    """An evil assertion reusing the signed assertion's ID, placed first."""
    root = signed_root(sp, rid)
    original = forge.assertion_of(root)
    original.addprevious(_evil(original, keep_signature=False, new_id=original.get("ID")))
    return root


@pytest.mark.parametrize("variant", [xsw1, xsw2, xsw3, xsw4, xsw5, xsw6, xsw7, xsw8, advice, duplicate_id],
                         ids=lambda f: f.__name__)
def test_xml_signature_wrapping(sp, caplog, variant):
    caplog.set_level(logging.INFO)
    rid, relay = sp.start()
    refused(sp.post(forge.encode(variant(sp, rid)), relay), caplog, "refused")
    assert not any("login success" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- identity text (C-08) and parsing (C-07)


def test_comment_injected_in_the_signed_name_id(sp, caplog):
    rid, relay = sp.start()
    root = signed_root(sp, rid, name_id="victim@gouv.nc.evil.nc")
    name_id = root.find(f".//{SAML}NameID")
    name_id.text = "victim@gouv.nc"
    comment = etree.Comment("")
    comment.tail = ".evil.nc"
    name_id.append(comment)
    assert b"victim@gouv.nc<!---->.evil.nc" in etree.tostring(root)
    refused(sp.post(forge.encode(root), relay), caplog, "comment")


class _Listener:
    """A TCP listener that records whether anything connected (an XXE fetch would)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.stop = True
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.mark.parametrize("payload", ["external", "billion_laughs", "parameter"])
def test_doctype_and_entities_are_refused_without_any_request(sp, caplog, payload):
    rid, relay = sp.start()
    listener = _Listener()
    try:
        xml = etree.tostring(signed_root(sp, rid)).decode()
        doctypes = {
            "external": f'<!DOCTYPE r [<!ENTITY xxe SYSTEM "http://127.0.0.1:{listener.port}/x">]>',
            "billion_laughs": '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                              '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
            "parameter": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:{listener.port}/p"> %p;]>',
        }
        entity = {"external": "&xxe;", "billion_laughs": "&c;", "parameter": ""}[payload]
        xml = doctypes[payload] + xml.replace("agent-0042", "agent-0042" + entity)
        refused(sp.post(forge.encode(xml.encode()), relay), caplog, "doctype")
    finally:
        listener.close()
    assert listener.connections == 0


# --------------------------------------------------------------------------- conditions and addressing


@pytest.mark.parametrize("changes,reason", [
    ({"audience": "https://another-sp.example/saml"}, "audience"),
    ({"audience": ""}, "audiencerestriction"),
    ({"issued": -1000}, "expired"),
    ({"issued": -420, "not_on_or_after": 600}, "issued"),
    ({"issued": 600}, "refused"),
    ({"issuer": "https://evil.example/idp"}, "issuer"),
    ({"destination": ACS + "/../../evil"}, "destination"),
    ({"destination": ACS + "x"}, "destination"),
    ({"destination": ""}, "destination"),
    ({"destination": forge.OMIT}, "destination"),
    ({"recipient": ACS + "x"}, "recipient"),
    ({"recipient": "https://evil.example" + ACS.removeprefix(ISSUER)}, ("recipient", "subjectconfirmation")),
    ({"name_id_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"}, "format"),
    ({"authn_context": "urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos"}, "context"),
], ids=["wrong-audience", "no-audience", "expired", "too-old", "future", "wrong-issuer", "destination-prefix",
        "destination-suffix", "destination-empty", "destination-absent", "recipient-substring", "recipient-other-host", "transient-nameid",
        "unknown-context"])
def test_conditions_and_addressing(sp, caplog, changes, reason):
    rid, relay = sp.start()
    refused(sp.post(sp.signed(sp.spec(rid, **changes)), relay), caplog, reason)


def test_destination_is_compared_with_the_configured_url_not_the_host_header(sp, caplog):
    """C-16: a Host or X-Forwarded-Host chosen by the attacker does not move the expected ACS URL."""
    rid, relay = sp.start()
    cookie = sp.client.get_cookie("__Secure-ncc_upstream_tx", path=f"/callback/{PID}")
    sp.client.set_cookie("__Secure-ncc_upstream_tx", cookie.value, domain="evil.example", path=f"/callback/{PID}")
    evil_acs = f"https://evil.example/callback/{PID}"
    response = sp.signed(sp.spec(rid, destination=evil_acs, recipient=evil_acs))
    refused(sp.post(response, relay, headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example",
                                              "X-Forwarded-Proto": "https"}), caplog, ("destination", "received at"))


def test_a_context_that_was_not_requested_is_refused(sp, caplog):
    """C-18: eidas2 was asked for, so only the smart card context was requested; a password is refused."""
    from tests.conftest import Flow

    flow = Flow(sp.client)
    started = flow.authorize(acr_values="eidas2", idp_hint=PID)
    assert started.status_code == 303
    to_idp = sp.client.get(started.headers["Location"])
    request, params = forge.authn_request_of(to_idp.headers["Location"])
    requested = [e.text for e in request.iter(f"{SAML}AuthnContextClassRef")]
    assert requested == [forge.SMARTCARD]
    refused(sp.post(sp.signed(sp.spec(request.get("ID"))), params["RelayState"]), caplog, "context")


# --------------------------------------------------------------------------- transactions (C-10, C-11, C-17)


def test_in_response_to_of_another_request(sp, caplog):
    first_id, _ = sp.start()
    _, relay = sp.start()  # the browser's live transaction is now the second one
    refused(sp.post(sp.signed(sp.spec(first_id)), relay), caplog, "inresponseto")


def test_a_response_without_in_response_to_is_refused_while_a_request_is_pending(sp, caplog):
    _, relay = sp.start()
    refused(sp.post(sp.signed(sp.spec(None)), relay), caplog, "inresponseto")


def test_unsolicited_response_is_refused_when_idp_initiated_login_is_not_allowed(sp, caplog):
    refused(sp.post(sp.signed(sp.spec(None)), ""), caplog, "no transaction")


def test_replayed_response_is_refused(sp, caplog):
    rid, relay = sp.start()
    response = sp.signed(sp.spec(rid))
    assert sp.post(response, relay).status_code == 303
    refused(sp.post(response, relay), caplog, "no transaction")  # the transaction and its cookie are single-use


def test_relay_state_pointing_to_an_external_url_never_redirects(sp, caplog):
    rid, _ = sp.start()
    refused(sp.post(sp.signed(sp.spec(rid)), "https://attacker.example/"), caplog, "relaystate")


def test_the_verified_response_only_finishes_in_the_session_that_started_it(sp, caplog):
    """The POST comes back without the Lax session cookie; the GET that finishes must be in the same session."""
    rid, relay = sp.start()
    posted = sp.post(sp.signed(sp.spec(rid)), relay)
    assert posted.status_code == 303
    sp.client.delete_cookie("__Host-ncc_session")  # another browser session holding the parked result
    refused(sp.client.get(posted.headers["Location"]), caplog, "another browser session")


def test_a_post_without_the_transaction_cookie_is_refused(sp, caplog):
    rid, relay = sp.start()
    sp.client.delete_cookie("__Secure-ncc_upstream_tx", path=f"/callback/{PID}")
    refused(sp.post(sp.signed(sp.spec(rid)), relay), caplog, "no transaction")


def test_replayed_assertion_in_idp_initiated_mode_is_refused_by_its_id(tmp_path, backend, caplog):
    """C-11: with IdP-initiated login allowed there is no transaction to consume; the Assertion ID is single-use."""
    sp = make_sp(tmp_path, backend, extra="allow_idp_initiated: true\n")
    try:
        response = sp.signed(sp.spec(None))
        assert sp.login(response, "").headers["Location"] == "/"
        sp.client.delete_cookie("__Host-ncc_session")
        refused(sp.post(response, ""), caplog, "replayed")
        # even when allowed, an unsolicited response must not claim to answer a request
        refused(sp.post(sp.signed(sp.spec("_some-request")), ""), caplog, "inresponseto")
    finally:
        sp.broker.engine.dispose()


def test_refusals_are_logged_on_the_audit_logger_and_the_upstream_logger(sp, caplog):
    caplog.set_level(logging.INFO)
    rid, relay = sp.start()
    sp.post(forge.encode(forge.response(sp.spec(rid))), relay)
    names = {r.name for r in caplog.records if "refused" in r.getMessage() or "failed" in r.getMessage()}
    assert {"nc_connect.audit", "nc_connect.upstream"} <= names
