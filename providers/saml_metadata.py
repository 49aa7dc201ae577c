"""IdP metadata (SAML Metadata 2.0) and the certificates and keys around it.

The metadata gives the IdP's entityID, its endpoints and its signing certificates:
the only certificates a response may be signed with (checklist C-04: never a
certificate read from the message, never a fingerprint).  It comes from a file, or
from a URL fetched over verified TLS and reused until the earliest of its
``validUntil``, its ``cacheDuration`` and the provider's ``metadata_refresh``; when a
refresh fails the last copy is kept while it is still valid.  Metadata past its
``validUntil`` is refused.

python3-saml's own metadata parser is not used: it would trust an encryption-only
certificate for signatures when it is the only one, and it builds XPath from strings.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from providers.saml_xml import NS, XmlRefused, parse_strict, text_of

log = logging.getLogger("nc_connect.providers.saml")

SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
ENTITY_DESCRIPTOR = f"{{{NS['md']}}}EntityDescriptor"
ENTITIES_DESCRIPTOR = f"{{{NS['md']}}}EntitiesDescriptor"
MIN_RSA_BITS = 2048


class MetadataError(Exception):
    """The metadata cannot be used; the text says why (for check-config and the logs)."""


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    sso: dict[str, str]  # binding → Location
    slo_url: str | None  # HTTP-Redirect SingleLogoutService Location
    slo_response_url: str | None  # its ResponseLocation, else its Location
    signing_certs: tuple[str, ...]  # base64 DER, as python3-saml's x509certMulti wants them
    expires_at: float | None  # validUntil, as a timestamp


def _parse_time(value: str) -> float:
    return float(OneLogin_Saml2_Utils.parse_SAML_to_time(value))


def _duration(value: str, now: float) -> float:
    return float(OneLogin_Saml2_Utils.parse_duration(value, now)) - now


def parse_idp_metadata(data: bytes, entity_id: str | None = None, now: float | None = None) -> tuple[IdpMetadata, float | None]:
    """The IdP of ``entity_id`` (or the only IdP) in ``data``, and the cacheDuration in seconds if any."""
    now = time.time() if now is None else now
    try:
        root = parse_strict(data)
    except XmlRefused as exc:
        raise MetadataError(f"metadata is not acceptable XML: {exc}") from None
    if root.tag == ENTITY_DESCRIPTOR:
        candidates = [root]
    elif root.tag == ENTITIES_DESCRIPTOR:
        candidates = list(root.iter(ENTITY_DESCRIPTOR))
    else:
        raise MetadataError("metadata root is neither EntityDescriptor nor EntitiesDescriptor")
    idps = [e for e in candidates if _idp_descriptor(e) is not None]
    if entity_id:
        idps = [e for e in idps if e.get("entityID") == entity_id]
    if len(idps) != 1:
        what = f"an IdP with entityID {entity_id!r}" if entity_id else "exactly one IdP (set idp_entity_id)"
        raise MetadataError(f"metadata holds {len(idps)} matching IdP(s), expected {what}")
    entity = idps[0]
    expires = None
    cache = None
    for node in (root, entity):
        if node.get("validUntil"):
            until = _parse_time(node.get("validUntil"))
            expires = until if expires is None else min(expires, until)
        if node.get("cacheDuration"):
            seconds = _duration(node.get("cacheDuration"), now)
            cache = seconds if cache is None else min(cache, seconds)
    if expires is not None and expires <= now:
        raise MetadataError("metadata has expired (validUntil is in the past)")
    descriptor = _idp_descriptor(entity)
    sso = {}
    for node in descriptor.findall("md:SingleSignOnService", NS):
        if node.get("Binding") in (BINDING_REDIRECT, BINDING_POST) and node.get("Location"):
            sso.setdefault(node.get("Binding"), node.get("Location"))
    if not sso:
        raise MetadataError("the IdP has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding")
    slo_url = slo_response = None
    for node in descriptor.findall("md:SingleLogoutService", NS):
        if node.get("Binding") == BINDING_REDIRECT and node.get("Location"):
            slo_url = node.get("Location")
            slo_response = node.get("ResponseLocation") or slo_url
            break
    certs = []
    for key_descriptor in descriptor.findall("md:KeyDescriptor", NS):
        if key_descriptor.get("use", "signing") != "signing":
            continue  # an encryption-only key never verifies a signature
        for cert in key_descriptor.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS):
            certs.append("".join((text_of(cert) or "").split()))
    if not certs:
        raise MetadataError("the IdP publishes no signing certificate")
    for cert in certs:
        problem = certificate_problem(cert, now)
        if problem:
            raise MetadataError(f"IdP signing certificate {problem}")
    return IdpMetadata(entity_id=entity.get("entityID", ""), sso=sso, slo_url=slo_url, slo_response_url=slo_response,
                       signing_certs=tuple(certs), expires_at=expires), cache


def _idp_descriptor(entity):
    for descriptor in entity.findall("md:IDPSSODescriptor", NS):
        if SAML2_PROTOCOL in descriptor.get("protocolSupportEnumeration", "").split():
            return descriptor
    return None


# --------------------------------------------------------------------------- certificates and keys


def load_certificate(text: str) -> x509.Certificate:
    """A PEM certificate, or the bare base64 DER that metadata carries."""
    text = text.strip()
    if "-----BEGIN" in text:
        return x509.load_pem_x509_certificate(text.encode())
    import base64

    return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))


def certificate_problem(text: str, now: float | None = None) -> str | None:
    """None when the certificate reads and is valid now; otherwise why not."""
    try:
        cert = load_certificate(text)
    except (ValueError, TypeError) as exc:
        return f"cannot be read: {exc}"
    moment = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    if cert.not_valid_after_utc <= moment:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    if cert.not_valid_before_utc > moment:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
    return None


def read_pem(value: str, base_dir: Path | None) -> str:
    """A PEM given inline (an environment variable may hold it) or the path of a PEM file."""
    if value.lstrip().startswith("-----BEGIN"):
        return value.strip()
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path.read_text(encoding="ascii").strip()


def check_sp_keypair(cert_pem: str, key_pem: str, now: float | None = None) -> list[tuple[str, str]]:
    """Problems with the SP certificate and private key: readable, RSA ≥ 2048, valid, matching."""
    problems: list[tuple[str, str]] = []
    problem = certificate_problem(cert_pem, now)
    if problem:
        problems.append(("sp_certificate", problem))
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        return problems + [("sp_private_key", f"cannot be read (an unencrypted PEM private key is expected): {exc}")]
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
        problems.append(("sp_private_key", f"must be an RSA key of at least {MIN_RSA_BITS} bits"))
    elif not problem:
        public = load_certificate(cert_pem).public_key()
        if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != key.public_key().public_numbers():
            problems.append(("sp_private_key", "does not match sp_certificate"))
    return problems


# --------------------------------------------------------------------------- the cached source


class MetadataSource:
    """The IdP metadata of one provider: a file read once, or a URL with a cache."""

    def __init__(self, *, file: Path | None, url: str | None, entity_id: str | None, max_age: float,
                 timeout: float, verify: str | bool = True, http: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.file, self.url, self.entity_id = file, url, entity_id
        self.max_age, self.timeout, self.verify = max_age, timeout, verify
        self.http = http or requests.Session()
        self.clock = clock
        self._lock = threading.Lock()
        self._current: IdpMetadata | None = None
        self._refresh_at = 0.0

    def get(self) -> IdpMetadata:
        now = self.clock()
        with self._lock:
            current = self._current
            if current is not None and now < self._refresh_at and (current.expires_at is None or now < current.expires_at):
                return current
            try:
                metadata, cache = parse_idp_metadata(self._read(), self.entity_id, now)
            except MetadataError as exc:
                if current is not None and (current.expires_at is None or now < current.expires_at) and self.url:
                    log.warning("IdP metadata refresh from %s failed, keeping the previous copy: %s", self.url, exc)
                    self._refresh_at = now + min(300.0, self.max_age)
                    return current
                raise
            self._current = metadata
            if self.file is not None:
                self._refresh_at = float("inf")
            else:
                self._refresh_at = now + min(self.max_age, cache if cache is not None else self.max_age)
            return metadata

    def _read(self) -> bytes:
        if self.file is not None:
            try:
                return self.file.read_bytes()
            except OSError as exc:
                raise MetadataError(f"cannot read {self.file}: {exc}") from None
        try:
            response = self.http.get(self.url, timeout=self.timeout, verify=self.verify, allow_redirects=False,
                                     headers={"Accept": "application/samlmetadata+xml, application/xml, text/xml"})
        except requests.RequestException as exc:
            raise MetadataError(f"cannot fetch {self.url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise MetadataError(f"fetching {self.url} answered HTTP {response.status_code}")
        return response.content
