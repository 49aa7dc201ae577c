"""Hand-built SAML messages for attack tests, signed and encrypted with python-xmlsec directly.

Independent of python3-saml (the code under test): a test builds a correct Response
for a live transaction, then breaks exactly one thing (a signature by another key,
a wrapped copy of the assertion, a comment in the NameID, a SHA-1 digest…).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import zlib
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
SMARTCARD = "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
OMIT = "(omit)"


@dataclass(frozen=True)
class KeyPair:
    key_pem: str
    cert_pem: str

    @property
    def cert_b64(self) -> str:
        return "".join(self.cert_pem.strip().splitlines()[1:-1])


_KEYS: dict[tuple[str, int], KeyPair] = {}


def keypair(name: str, days: int = 365) -> KeyPair:
    """An RSA-2048 key and a self-signed certificate (cached per name: key generation is slow)."""
    if (name, days) not in _KEYS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.timezone.utc)
        start = now - dt.timedelta(days=2) if days > 0 else now - dt.timedelta(days=30)
        end = now + dt.timedelta(days=days) if days > 0 else now - dt.timedelta(days=1)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
                .sign(key, hashes.SHA256()))
        _KEYS[(name, days)] = KeyPair(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode(),
            cert.public_bytes(serialization.Encoding.PEM).decode())
    return _KEYS[(name, days)]


def idp_metadata(entity_id: str, cert: KeyPair, sso: str, slo: str | None = None, *,
                 valid_until: str | None = None) -> bytes:
    until = f' validUntil="{valid_until}"' if valid_until else ""
    slo_xml = f'<md:SingleLogoutService Binding="{REDIRECT}" Location="{slo}"/>' if slo else ""
    return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" entityID="{entity_id}"{until}>
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert.cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    {slo_xml}
    <md:NameIDFormat>{PERSISTENT}</md:NameIDFormat>
    <md:SingleSignOnService Binding="{REDIRECT}" Location="{sso}"/>
    <md:SingleSignOnService Binding="{POST}" Location="{sso}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>""".encode()


def instant(offset: int = 0) -> str:
    moment = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _el(parent, ns: str, tag: str, text: str | None = None, **attrs) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{tag}", {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = text
    return element


@dataclass
class Spec:
    """Everything a correct response says; a test changes one field."""

    idp: str
    acs: str
    audience: str
    in_response_to: str | None
    name_id: str = "agent-0042"
    name_id_format: str = PERSISTENT
    destination: str | None = None  # defaults to acs; OMIT leaves the attribute out
    recipient: str | None = None  # defaults to acs
    issuer: str | None = None  # defaults to idp
    not_on_or_after: int = 300
    issued: int = 0
    authn_context: str = PPT
    session_index: str = "_sess-1"
    attributes: dict[str, list[str]] = field(default_factory=lambda: {
        "urn:oid:2.5.4.42": ["Jean", "Pierre"], "urn:oid:2.5.4.4": ["Kabar"], "dateNaissance": ["14/07/1985"],
        "sexe": ["M"], "communeNaissance": ["Nouméa"], "paysNaissance": ["France"],
        "urn:oid:0.9.2342.19200300.100.1.3": ["jean.kabar@gouv.nc"],
    })
    response_id: str = field(default_factory=lambda: "_r" + secrets.token_hex(16))
    assertion_id: str = field(default_factory=lambda: "_a" + secrets.token_hex(16))


def response(spec: Spec) -> etree._Element:
    """An unsigned Response carrying one Assertion, following the SAML Web Browser SSO profile."""
    nsmap = {"samlp": SAMLP, "saml": SAML}
    root = etree.Element(f"{{{SAMLP}}}Response", nsmap=nsmap)
    for k, v in {"ID": spec.response_id, "Version": "2.0", "IssueInstant": instant(spec.issued),
                 "Destination": spec.acs if spec.destination is None else spec.destination,
                 "InResponseTo": spec.in_response_to}.items():
        if v is not None and v != OMIT:
            root.set(k, v)
    _el(root, SAML, "Issuer", spec.issuer or spec.idp)
    status = _el(root, SAMLP, "Status")
    _el(status, SAMLP, "StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:Success")
    assertion = _el(root, SAML, "Assertion", ID=spec.assertion_id, Version="2.0", IssueInstant=instant(spec.issued))
    _el(assertion, SAML, "Issuer", spec.issuer or spec.idp)
    subject = _el(assertion, SAML, "Subject")
    _el(subject, SAML, "NameID", spec.name_id, Format=spec.name_id_format)
    confirmation = _el(subject, SAML, "SubjectConfirmation", Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
    _el(confirmation, SAML, "SubjectConfirmationData", InResponseTo=spec.in_response_to,
        NotOnOrAfter=instant(spec.issued + spec.not_on_or_after),
        Recipient=spec.acs if spec.recipient is None else spec.recipient)
    conditions = _el(assertion, SAML, "Conditions", NotBefore=instant(spec.issued - 30),
                     NotOnOrAfter=instant(spec.issued + spec.not_on_or_after))
    if spec.audience:
        _el(_el(conditions, SAML, "AudienceRestriction"), SAML, "Audience", spec.audience)
    statement = _el(assertion, SAML, "AuthnStatement", AuthnInstant=instant(spec.issued - 5),
                    SessionIndex=spec.session_index)
    _el(_el(statement, SAML, "AuthnContext"), SAML, "AuthnContextClassRef", spec.authn_context)
    if spec.attributes:
        attributes = _el(assertion, SAML, "AttributeStatement")
        for name, values in spec.attributes.items():
            attribute = _el(attributes, SAML, "Attribute", Name=name,
                            NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri")
            for value in values:
                _el(attribute, SAML, "AttributeValue", value)
    return root


SHA256 = (xmlsec.Transform.RSA_SHA256, xmlsec.Transform.SHA256)
SHA1 = (xmlsec.Transform.RSA_SHA1, xmlsec.Transform.SHA1)


def sign(element: etree._Element, keys: KeyPair, algorithms=SHA256, *, keyinfo: bool = True) -> etree._Element:
    """An enveloped, exclusive-c14n signature over ``element``, placed after its Issuer."""
    root = element.getroottree().getroot()
    xmlsec.tree.add_ids(root, ["ID"])
    signature = xmlsec.template.create(element, xmlsec.Transform.EXCL_C14N, algorithms[0], ns="ds")
    element.insert(1, signature)
    reference = xmlsec.template.add_reference(signature, algorithms[1], uri="#" + element.get("ID"))
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    if keyinfo:
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    key = xmlsec.Key.from_memory(keys.key_pem.encode(), xmlsec.KeyFormat.PEM)
    key.load_cert_from_memory(keys.cert_pem.encode(), xmlsec.KeyFormat.PEM)
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    ctx.sign(signature)
    return element


def assertion_of(root: etree._Element) -> etree._Element:
    return root.find(f"{{{SAML}}}Assertion")


def encrypt_assertion(root: etree._Element, sp_cert_pem: str) -> etree._Element:
    """Replace the (signed) Assertion by an EncryptedAssertion for the SP's certificate."""
    assertion = assertion_of(root)
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(sp_cert_pem.encode(), xmlsec.KeyFormat.CERT_PEM, None))
    template = xmlsec.template.encrypted_data_create(root, xmlsec.Transform.AES128, type=xmlsec.EncryptionType.ELEMENT,
                                                     ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.Transform.RSA_OAEP)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    ctx = xmlsec.EncryptionContext(manager)
    ctx.key = xmlsec.Key.generate(xmlsec.KeyData.AES, 128, xmlsec.KeyDataType.SESSION)
    wrapper = etree.Element(f"{{{SAML}}}EncryptedAssertion")
    assertion.addprevious(wrapper)
    wrapper.append(assertion)
    encrypted = ctx.encrypt_xml(template, assertion)
    assert encrypted.getparent() is wrapper
    return root


def encode(root: etree._Element | bytes) -> str:
    data = root if isinstance(root, bytes) else etree.tostring(root)
    return base64.b64encode(data).decode()


def authn_request_of(location: str) -> tuple[etree._Element, dict[str, str]]:
    """The AuthnRequest (HTTP-Redirect binding) and the query parameters of a redirect to the IdP."""
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    xml = zlib.decompress(base64.b64decode(params["SAMLRequest"]), -15)
    return etree.fromstring(xml), params
