"""Hardened XML handling for SAML messages, before python3-saml sees them.

python3-saml already parses without DTDs and checks signatures, but it leaves some
doors to its caller (checklist C-05 … C-08); this module closes them on the raw
message, so a refusal happens before any signature or identity logic runs:

* :func:`parse_strict`: no DTD, no entity, no network, no huge tree; a ``DOCTYPE``
  anywhere is refused (C-07, XXE and entity expansion);
* :func:`screen_message`: no XML comment or processing instruction anywhere (C-08:
  ``victim@gouv.nc<!---->.evil.nc`` is refused, never truncated), unique ``ID``
  attributes, exactly one Assertion (plain or encrypted) and it is a direct child of
  the Response (XSW copies in Extensions, Advice, ds:Object are refused, C-05), and
  every ``ds:Signature`` checked by :func:`check_signature`;
* :func:`check_signature`: a signature sits directly in the Response or the Assertion,
  has one ``ds:Reference`` to its parent's ID, only the enveloped-signature and
  exclusive canonicalisation transforms (no XPath/XSLT, C-06), and SHA-2 algorithms
  only (C-03).
"""

from __future__ import annotations

import base64
import binascii

from lxml import etree

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}
RESPONSE = f"{{{NS['samlp']}}}Response"
LOGOUT_REQUEST = f"{{{NS['samlp']}}}LogoutRequest"
LOGOUT_RESPONSE = f"{{{NS['samlp']}}}LogoutResponse"
ASSERTION = f"{{{NS['saml']}}}Assertion"
ENCRYPTED_ASSERTION = f"{{{NS['saml']}}}EncryptedAssertion"
SIGNATURE = f"{{{NS['ds']}}}Signature"

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ALLOWED_TRANSFORMS = frozenset({ENVELOPED, EXC_C14N})
ALLOWED_SIGNATURE_METHODS = frozenset({
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
})
ALLOWED_DIGESTS = frozenset({
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
})
MAX_MESSAGE_BYTES = 200_000  # decoded; a real Response is a few kilobytes
ID_ATTRIBUTES = ("ID", "Id", "id", "AssertionID")


class XmlRefused(Exception):
    """The message is refused; the text is for the logs only."""


def b64decode_strict(value: str) -> bytes:
    """Base64 as the HTTP-POST binding sends it (line breaks tolerated, nothing else)."""
    if len(value) > MAX_MESSAGE_BYTES * 4 // 3 + 1000:
        raise XmlRefused("message too large")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise XmlRefused("message is not valid base64") from None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=False, remove_pis=False, remove_blank_text=False)


def parse_strict(data: bytes) -> etree._Element:
    """Parse ``data`` refusing any DTD, entity declaration or reference (C-07)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise XmlRefused("message too large")
    lowered = data.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        raise XmlRefused("DOCTYPE or ENTITY declaration in the message")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise XmlRefused(f"malformed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XmlRefused("DOCTYPE in the message")
    for _ in root.iter(etree.Entity):
        raise XmlRefused("entity reference in the message")
    return root


def _no_comments(root: etree._Element) -> None:
    """C-08: comments inside signed text let a prefix pass for the whole value; refuse them all."""
    for node in root.iter(etree.Comment, etree.ProcessingInstruction):
        kind = "comment" if isinstance(node, etree._Comment) else "processing instruction"
        raise XmlRefused(f"XML {kind} inside <{etree.QName(node.getparent()).localname}>")


def _unique_ids(root: etree._Element) -> None:
    seen: set[str] = set()
    for element in root.iter(etree.Element):
        for name in ID_ATTRIBUTES:
            value = element.get(name)
            if value is None:
                continue
            if value in seen:
                raise XmlRefused(f"duplicate ID {value[:60]!r}")
            seen.add(value)


def _algorithm(parent: etree._Element, path: str) -> str:
    nodes = parent.findall(path, NS)
    if len(nodes) != 1:
        raise XmlRefused(f"signature has {len(nodes)} {path.rsplit(':', 1)[-1]} elements")
    return nodes[0].get("Algorithm", "")


def check_signature(signature: etree._Element, allowed_parents: frozenset[str]) -> None:
    """One enveloped signature over its parent, exclusive c14n, SHA-2 only (C-03, C-05, C-06)."""
    parent = signature.getparent()
    if parent is None or parent.tag not in allowed_parents:
        where = etree.QName(parent).localname if parent is not None else "root"
        raise XmlRefused(f"signature inside <{where}>, which may not be signed")
    parent_id = parent.get("ID")
    if not parent_id:
        raise XmlRefused("signed element without ID")
    signed_info = signature.findall("ds:SignedInfo", NS)
    if len(signed_info) != 1:
        raise XmlRefused("signature without exactly one SignedInfo")
    signed_info = signed_info[0]
    if _algorithm(signed_info, "ds:CanonicalizationMethod") != EXC_C14N:
        raise XmlRefused("canonicalisation other than exclusive c14n")
    method = _algorithm(signed_info, "ds:SignatureMethod")
    if method not in ALLOWED_SIGNATURE_METHODS:
        raise XmlRefused(f"signature algorithm {method[:80]!r} refused (deprecated or unknown)")
    references = signed_info.findall("ds:Reference", NS)
    if len(references) != 1:
        raise XmlRefused(f"signature with {len(references)} references")
    reference = references[0]
    if reference.get("URI") != "#" + parent_id:
        raise XmlRefused("signature reference does not point to the signed element")
    transforms = reference.findall("ds:Transforms/ds:Transform", NS)
    algorithms = [t.get("Algorithm", "") for t in transforms]
    if ENVELOPED not in algorithms or any(a not in ALLOWED_TRANSFORMS for a in algorithms):
        raise XmlRefused(f"transforms {algorithms!r} refused (only enveloped-signature and exclusive c14n)")
    if any(len(t) for t in transforms if t.get("Algorithm") == ENVELOPED):
        raise XmlRefused("enveloped-signature transform with parameters")
    digest = _algorithm(reference, "ds:DigestMethod")
    if digest not in ALLOWED_DIGESTS:
        raise XmlRefused(f"digest algorithm {digest[:80]!r} refused (deprecated or unknown)")
    if signature.findall("ds:Object", NS):
        raise XmlRefused("ds:Object inside a signature")


def screen_message(root: etree._Element, expected_root: str) -> None:
    """Structure every SAML message must have before anything else reads it."""
    if root.tag != expected_root:
        raise XmlRefused(f"root element is <{etree.QName(root).localname}>, expected <{etree.QName(expected_root).localname}>")
    if root.get("Version") != "2.0":
        raise XmlRefused("not a SAML 2.0 message")
    _no_comments(root)
    _unique_ids(root)
    allowed = frozenset({RESPONSE, ASSERTION}) if expected_root == RESPONSE else frozenset({expected_root})
    for signature in root.iter(SIGNATURE):
        check_signature(signature, allowed)


def screen_response(root: etree._Element) -> None:
    """A Response carries exactly one Assertion (plain or encrypted), as a direct child (C-05)."""
    screen_message(root, RESPONSE)
    assertions = list(root.iter(ASSERTION, ENCRYPTED_ASSERTION))
    if len(assertions) != 1:
        raise XmlRefused(f"{len(assertions)} assertions in the response, exactly one expected")
    if assertions[0].getparent() is not root:
        raise XmlRefused("the assertion is not a direct child of the response")


def screen_decrypted(root: etree._Element) -> etree._Element:
    """After decryption: the same rules on the now visible Assertion; returns it."""
    _no_comments(root)
    _unique_ids(root)
    assertions = list(root.iter(ASSERTION))
    if len(assertions) != 1 or assertions[0].getparent() is not root:
        raise XmlRefused("the decrypted response does not hold exactly one assertion as a direct child")
    for signature in root.iter(SIGNATURE):
        check_signature(signature, frozenset({RESPONSE, ASSERTION}))
    return assertions[0]


def text_of(element: etree._Element | None) -> str | None:
    """The full text content (comments were refused earlier, so nothing can hide a suffix)."""
    if element is None:
        return None
    return "".join(element.itertext())
