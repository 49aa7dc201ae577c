"""The ``saml`` identity source: an administration's SAML 2.0 IdP, through python3-saml.

NC Connect is a SAML service provider here, one per provider file: its own entityID
(``<issuer>/saml/<id>/metadata`` by default), key and certificate, its signed
metadata at that URL, its ACS at the broker's ``/callback/<id>`` (HTTP-POST) and its
single logout service at ``/saml/<id>/slo`` (HTTP-Redirect).

python3-saml runs with ``strict: true`` and ``debug: false`` always (C-01: there is no
setting to change that), signed AuthnRequests and logout messages, SHA-256, deprecated
algorithms refused, assertions required signed by the certificates of the IdP metadata
only.  A response goes through, in this order (each step refuses with an
:class:`UpstreamError` whose ``detail`` names the cause):

=====================  ==========================================================
screen                 base64, hardened parse (no DOCTYPE/entities), no comment or
                       processing instruction, unique IDs, exactly one Assertion,
                       signature structure and algorithms (:mod:`providers.saml_xml`)
library                python3-saml ``is_valid(request_data, request_id)``: schema,
                       status, signatures with the configured certificates, issuer…
                       (``request_data`` is built from the configured public URL,
                       never from ``Host`` or ``X-Forwarded-*``, C-16)
decrypted              the same screening on a decrypted assertion
exact checks           Destination, InResponseTo, issuers, IssueInstant, Conditions
                       and Audience, bearer SubjectConfirmation (Recipient,
                       NotOnOrAfter), AuthnStatement, NameID (:mod:`providers.saml_checks`)
level                  AuthnContextClassRef → eIDAS level through ``authn_context_map``;
                       a context not requested is refused (C-18)
=====================  ==========================================================

The provider stores nothing: the AuthnRequest ID goes back to the broker in
``provider_state`` (C-10), and the Assertion ID with its NotOnOrAfter goes back in
``UpstreamIdentity.replay_id`` / ``replay_until`` so that the broker refuses it a
second time (C-11).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Literal, Mapping
from urllib.parse import parse_qsl, urlsplit

import requests
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from providers.base import (LEVELS, LoginRequest, LoginStep, LogoutMessage, N_, UpstreamError, UpstreamIdentity,
                            level_rank)
from providers.saml_checks import (CheckFailed, Expected, attributes_of, check_authn_statement,
                                   check_conditions, check_destination, check_in_response_to, check_issue_instant,
                                   check_issuers, check_name_id, check_subject_confirmation, saml_time)
from providers.saml_metadata import (BINDING_POST, BINDING_REDIRECT, IdpMetadata, MetadataError, MetadataSource,
                                     check_sp_keypair, parse_idp_metadata, read_pem)
from providers.saml_xml import (LOGOUT_REQUEST, LOGOUT_RESPONSE, NS, XmlRefused, b64decode_strict,
                                parse_strict, screen_decrypted, screen_message, screen_response, text_of)

log = logging.getLogger("nc_connect.providers.saml")

Level = Literal["eidas1", "eidas2", "eidas3"]
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
# RFC 8176 methods for the usual SAML authentication context classes.
AMR_OF_CONTEXT = {
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Password": ("pwd",),
    PASSWORD_PROTECTED: ("pwd",),
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken": ("otp",),
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard": ("sc",),
    "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI": ("sc", "pin"),
    "urn:oasis:names:tc:SAML:2.0:ac:classes:X509": ("swk",),
}

MSG_INVALID = N_("La réponse du fournisseur d'identité n'a pas pu être vérifiée. Veuillez recommencer la connexion.")
MSG_UNAVAILABLE = N_("Le fournisseur d'identité est momentanément indisponible. Veuillez réessayer plus tard.")
MSG_REFUSED = N_("Le fournisseur d'identité a refusé ou annulé la connexion.")
MSG_LEVEL = N_("Le niveau de sécurité de la connexion auprès du fournisseur d'identité est insuffisant pour ce service.")
MSG_TOO_OLD = N_("Votre authentification auprès du fournisseur d'identité est trop ancienne. Veuillez vous reconnecter.")
MSG_LOGOUT = N_("Le message de déconnexion du fournisseur d'identité n'a pas pu être vérifié.")


# --------------------------------------------------------------------------- settings


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"{value!r} must use https (http is only allowed on localhost)")
    if parts.fragment or "@" in parts.netloc:
        raise ValueError(f"{value!r} must not contain a fragment or user information")
    return value


class SamlSettings(BaseModel):
    """The kind-specific keys of a ``type: saml`` provider file (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idp_metadata_file: str | None = None
    idp_metadata_url: str | None = None
    idp_entity_id: str | None = None
    sp_entity_id: str | None = None
    sp_certificate: str = Field(min_length=1)
    sp_private_key: str = Field(min_length=1)
    name_id_format: str = PERSISTENT
    authn_context_map: dict[str, Level] = Field({PASSWORD_PROTECTED: "eidas1"}, min_length=1)
    level: Level = "eidas1"
    request_binding: Literal["redirect", "post"] = "redirect"
    want_response_signed: bool = False
    want_assertions_encrypted: bool = False
    allow_idp_initiated: bool = False
    clock_skew: int = Field(60, ge=0, le=180)
    max_assertion_age: int = Field(300, ge=30, le=900)
    metadata_refresh: int = Field(86400, ge=300, le=7 * 86400)
    timeout: float = Field(10, gt=0, le=60)
    ca_bundle: str | None = None

    @field_validator("idp_metadata_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)

    @field_validator("name_id_format")
    @classmethod
    def _format(cls, v: str) -> str:
        if not v.startswith("urn:oasis:names:tc:SAML:"):
            raise ValueError("must be a SAML NameID format URN")
        if v.endswith(":transient"):
            raise ValueError("a transient NameID changes at every login and cannot identify a citizen")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "SamlSettings":
        if bool(self.idp_metadata_file) == bool(self.idp_metadata_url):
            raise ValueError("set exactly one of idp_metadata_file and idp_metadata_url")
        return self


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p


def _problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "type"
        out.append((key, "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")))
    return out


def validate_settings(raw: Mapping[str, Any], base_dir: Path | None = None) -> list[tuple[str, str]]:
    """Every (key, message) problem of a provider file's SAML keys, for check-config and start-up.

    Reads the metadata file (not a URL: the IdP may be unreachable from where the
    configuration is checked), the SP key and certificate, and checks validity dates.
    """
    try:
        settings = SamlSettings.model_validate(dict(raw))
    except ValidationError as exc:
        return _problems_of(exc)
    problems: list[tuple[str, str]] = []
    if settings.idp_metadata_file:
        try:
            data = _resolve(settings.idp_metadata_file, base_dir).read_bytes()
            metadata, _ = parse_idp_metadata(data, settings.idp_entity_id)
        except OSError as exc:
            problems.append(("idp_metadata_file", f"cannot be read: {exc.strerror or exc}"))
        except MetadataError as exc:
            problems.append(("idp_metadata_file", str(exc)))
        else:
            problems += _binding_problem(settings, metadata)
    pems = {}
    for key in ("sp_certificate", "sp_private_key"):
        try:
            pems[key] = read_pem(getattr(settings, key), base_dir)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append((key, f"cannot be read: {getattr(exc, 'strerror', None) or exc}"))
    if len(pems) == 2:
        problems += check_sp_keypair(pems["sp_certificate"], pems["sp_private_key"])
    for ref in settings.authn_context_map:
        if not ref.strip() or ref != ref.strip():
            problems.append(("authn_context_map", f"{ref!r} is not a class reference"))
    if settings.ca_bundle and not _resolve(settings.ca_bundle, base_dir).is_file():
        problems.append(("ca_bundle", "file not found"))
    return problems


def _binding_problem(settings: SamlSettings, metadata: IdpMetadata) -> list[tuple[str, str]]:
    binding = BINDING_POST if settings.request_binding == "post" else BINDING_REDIRECT
    if binding not in metadata.sso:
        return [("request_binding", f"the IdP has no SingleSignOnService for HTTP-{settings.request_binding.title()}")]
    return []


# --------------------------------------------------------------------------- provider


def _invalid(detail: str) -> UpstreamError:
    return UpstreamError(MSG_INVALID, detail)


class SamlProvider:
    """A redirect-style source backed by one SAML 2.0 IdP."""

    # The IdP answers by a cross-site POST to the callback: the broker binds the transaction
    # with a separate SameSite=None cookie, the session cookie staying Lax (E-08).
    answers_by_post = True

    def __init__(self, provider_id: str, name: str, settings: SamlSettings, *, public_url: str,
                 base_dir: Path | None = None, clock: Callable[[], float] = time.time,
                 http: requests.Session | None = None) -> None:
        self.provider_id = provider_id
        self.name = name
        self.settings = settings
        self.level = settings.level
        self.clock = clock
        base = public_url.rstrip("/")
        self.acs_url = f"{base}/callback/{provider_id}"
        self.slo_url = f"{base}/saml/{provider_id}/slo"
        self.metadata_url = f"{base}/saml/{provider_id}/metadata"
        self.sp_entity_id = settings.sp_entity_id or self.metadata_url
        self.allows_unsolicited = settings.allow_idp_initiated
        self._cert = read_pem(settings.sp_certificate, base_dir)
        self._key = read_pem(settings.sp_private_key, base_dir)
        verify: str | bool = str(_resolve(settings.ca_bundle, base_dir)) if settings.ca_bundle else True
        self.metadata = MetadataSource(
            file=_resolve(settings.idp_metadata_file, base_dir) if settings.idp_metadata_file else None,
            url=settings.idp_metadata_url, entity_id=settings.idp_entity_id, max_age=settings.metadata_refresh,
            timeout=settings.timeout, verify=verify, http=http, clock=clock)

    @classmethod
    def from_settings(cls, provider_id: str, name: str, raw: Mapping[str, Any], *, public_url: str,
                      base_dir: Path | None = None, **kwargs: Any) -> "SamlProvider":
        problems = validate_settings(raw, base_dir)
        if problems:
            raise ValueError("; ".join(f"{k}: {m}" for k, m in problems))
        return cls(provider_id, name, SamlSettings.model_validate(dict(raw)), public_url=public_url,
                   base_dir=base_dir, **kwargs)

    # ----------------------------------------------------------------- python3-saml plumbing

    def idp(self) -> IdpMetadata:
        try:
            return self.metadata.get()
        except MetadataError as exc:
            raise UpstreamError(MSG_UNAVAILABLE, f"IdP metadata unusable: {exc}") from None

    def onelogin_settings(self, idp: IdpMetadata, contexts: list[str] | None = None, *,
                          messages_signed: bool | None = None) -> OneLogin_Saml2_Settings:
        """python3-saml settings built from the configuration only; strict, never debug (C-01)."""
        s = self.settings
        binding = BINDING_POST if s.request_binding == "post" else BINDING_REDIRECT
        return OneLogin_Saml2_Settings({
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": self.sp_entity_id,
                "assertionConsumerService": {"url": self.acs_url, "binding": BINDING_POST},
                "singleLogoutService": {"url": self.slo_url, "binding": BINDING_REDIRECT},
                "NameIDFormat": s.name_id_format,
                "x509cert": self._cert,
                "privateKey": self._key,
            },
            "idp": {
                "entityId": idp.entity_id,
                "singleSignOnService": {"url": idp.sso.get(binding) or next(iter(idp.sso.values())),
                                        "binding": binding},
                "singleLogoutService": {"url": idp.slo_url or "", "responseUrl": idp.slo_response_url or "",
                                        "binding": BINDING_REDIRECT},
                # Only the metadata's signing certificates; never certFingerprint, never KeyInfo (C-04).
                "x509certMulti": {"signing": list(idp.signing_certs)},
            },
            "security": {
                "nameIdEncrypted": False,
                "authnRequestsSigned": True,
                "logoutRequestSigned": True,
                "logoutResponseSigned": True,
                "signMetadata": True,
                "wantMessagesSigned": s.want_response_signed if messages_signed is None else messages_signed,
                "wantAssertionsSigned": True,
                "wantAssertionsEncrypted": s.want_assertions_encrypted,
                "wantNameId": True,
                "wantNameIdEncrypted": False,
                "wantAttributeStatement": False,
                "allowRepeatAttributeName": False,
                "requestedAuthnContext": contexts or False,
                "requestedAuthnContextComparison": "exact",
                "failOnAuthnContextMismatch": True,
                "signatureAlgorithm": C.RSA_SHA256,
                "digestAlgorithm": C.SHA256,
                "rejectDeprecatedAlgorithm": True,
                "allowSingleLabelDomains": True,  # http://localhost in development; URLs are checked by NC Connect
            },
        })

    def _request_data(self, url: str, *, post: Mapping[str, str] | None = None, get: Mapping[str, str] | None = None,
                      query_string: str = "") -> dict[str, Any]:
        """What python3-saml compares Destination and Recipient with: our configured URL (C-16)."""
        parts = urlsplit(url)
        return {"https": "on" if parts.scheme == "https" else "off", "http_host": parts.netloc,
                "script_name": parts.path, "post_data": dict(post or {}), "get_data": dict(get or {}),
                "query_string": query_string, "validate_signature_from_qs": bool(query_string)}

    def requested_contexts(self, acr_values: tuple[str, ...]) -> list[str]:
        """Class references asked of the IdP: those whose level (capped at ``level``) meets the lowest requested."""
        wanted = min((level_rank(v) for v in acr_values if level_rank(v)), default=0)
        cap = level_rank(self.level)
        contexts = [ref for ref, level in self.settings.authn_context_map.items() if min(level_rank(level), cap) >= wanted]
        if not contexts:
            raise UpstreamError(MSG_LEVEL, f"no authentication context of this IdP reaches {' '.join(acr_values)}")
        return contexts

    def form_action_origins(self) -> set[str]:
        """Origins the broker's pages post or redirect to after a form (CSP form-action, E-02)."""
        try:
            idp = self.metadata.get()
        except MetadataError as exc:
            log.warning("saml %s: metadata unavailable at start-up (%s); CSP form-action uses the metadata URL",
                        self.provider_id, exc)
            urls = [self.settings.idp_metadata_url or ""]
        else:
            urls = [*idp.sso.values(), idp.slo_url or "", idp.slo_response_url or ""]
        return {f"{p.scheme}://{p.netloc}" for p in map(urlsplit, urls) if p.scheme and p.netloc}

    # ----------------------------------------------------------------- metadata

    def sp_metadata(self) -> tuple[bytes, str]:
        """This SP's metadata, signed with its key (SHA-256), for the IdP's administrators."""
        settings = self.onelogin_settings(self.idp(), list(self.settings.authn_context_map))
        xml = settings.get_sp_metadata()
        return (xml if isinstance(xml, bytes) else xml.encode()), "application/samlmetadata+xml"

    # ----------------------------------------------------------------- login

    def begin_login(self, request: LoginRequest) -> LoginStep:
        """A signed AuthnRequest; RelayState is the broker's opaque state only (C-17)."""
        if request.callback_url != self.acs_url:
            raise UpstreamError(MSG_UNAVAILABLE, f"callback URL {request.callback_url!r} is not the ACS {self.acs_url!r}")
        idp = self.idp()
        contexts = self.requested_contexts(request.acr_values)
        settings = self.onelogin_settings(idp, contexts)
        if self.settings.request_binding == "post" and BINDING_POST in idp.sso:
            authn = OneLogin_Saml2_Authn_Request(settings, force_authn=request.force_login)
            signed = OneLogin_Saml2_Utils.add_sign(authn.get_xml(), self._key, self._cert, False, C.RSA_SHA256,
                                                   C.SHA256)
            encoded = OneLogin_Saml2_Utils.b64encode(signed)
            return LoginStep(post_url=idp.sso[BINDING_POST],
                             post_fields={"SAMLRequest": encoded, "RelayState": request.state},
                             provider_state={"request_id": authn.get_id(), "idp": idp.entity_id,
                                             "contexts": contexts})
        auth = OneLogin_Saml2_Auth(self._request_data(self.acs_url), settings)
        url = auth.login(return_to=request.state, force_authn=request.force_login)
        return LoginStep(redirect_url=url, provider_state={"request_id": auth.get_last_request_id(),
                                                           "idp": idp.entity_id, "contexts": contexts})

    def complete_login(self, params: Mapping[str, str], provider_state: Mapping[str, Any],
                       request: LoginRequest) -> UpstreamIdentity:
        idp = self.idp()
        request_id = provider_state.get("request_id")
        if request_id is not None and provider_state.get("idp") != idp.entity_id:
            raise _invalid("transaction was started with another IdP")
        encoded = params.get("SAMLResponse")
        if not encoded:
            raise _invalid("callback without SAMLResponse")
        try:
            raw = b64decode_strict(encoded)
            screen_response(parse_strict(raw))
        except XmlRefused as exc:
            raise _invalid(f"response refused before validation: {exc}") from None
        contexts = list(provider_state.get("contexts") or []) or None
        settings = self.onelogin_settings(idp, contexts)
        try:
            response = OneLogin_Saml2_Response(settings, encoded)
            if response.encrypted:  # re-parsed: python3-saml's element class hides comments from iter()
                screen_decrypted(parse_strict(etree.tostring(response.decrypted_document)))
            elif self.settings.want_assertions_encrypted:
                raise XmlRefused("the assertion is not encrypted")
            response.is_valid(self._request_data(self.acs_url, post=params), request_id, raise_exceptions=True)
        except XmlRefused as exc:
            raise _invalid(f"response refused: {exc}") from None
        except Exception as exc:  # python3-saml and xmlsec raise several error types; all mean "invalid"
            return self._library_refusal(exc)
        document = response.get_xml_document()
        assertion = document.find("saml:Assertion", NS)
        return self._identity(document, assertion, request_id, contexts, request, idp)

    def _library_refusal(self, exc: Exception) -> UpstreamIdentity:
        text = str(exc)
        if "status code of the Response was not Success" in text:
            raise UpstreamError(MSG_REFUSED, f"IdP answered: {text[:200]}")
        raise _invalid(f"python3-saml: {type(exc).__name__}: {text[:300]}")

    def _identity(self, document, assertion, request_id: str | None, contexts: list[str] | None,
                  request: LoginRequest, idp: IdpMetadata) -> UpstreamIdentity:
        s = self.settings
        now = self.clock()
        exp = Expected(acs_url=self.acs_url, sp_entity_id=self.sp_entity_id, idp_entity_id=idp.entity_id,
                       request_id=request_id, now=now, skew=s.clock_skew, max_age=s.max_assertion_age)
        try:
            check_destination(document, exp)
            check_in_response_to(document, exp, s.allow_idp_initiated)
            check_issuers(document, assertion, exp)
            check_issue_instant(document, assertion, exp)
            conditions_end = check_conditions(assertion, exp)
            confirmation_end = check_subject_confirmation(assertion, exp)
            authn = check_authn_statement(assertion, exp)
            name_id = check_name_id(assertion.find("saml:Subject/saml:NameID", NS), s.name_id_format, exp)
            attributes = attributes_of(assertion)
        except CheckFailed as exc:
            raise _invalid(str(exc)) from None
        acr = self._level(authn.class_ref, contexts, request)
        if request.max_age is not None and now - authn.instant > request.max_age + s.clock_skew:
            raise UpstreamError(MSG_TOO_OLD, f"AuthnInstant {int(now - authn.instant)} s ago, max_age {request.max_age}")
        assertion_id = assertion.get("ID")
        return UpstreamIdentity(
            provider_id=self.provider_id,
            subject=name_id.value,
            acr=acr,
            amr=AMR_OF_CONTEXT.get(authn.class_ref, ()),
            auth_time=int(authn.instant),
            attributes=attributes,
            issuer=idp.entity_id,
            session_data={"name_id": name_id.value, "name_id_format": name_id.format,
                          "name_qualifier": name_id.name_qualifier, "sp_name_qualifier": name_id.sp_name_qualifier,
                          "session_index": authn.session_index, "idp": idp.entity_id},
            replay_id=f"{idp.entity_id}|{assertion_id}",
            replay_until=int(max(conditions_end, confirmation_end) + s.clock_skew + 1),
        )

    def _level(self, class_ref: str, contexts: list[str] | None, request: LoginRequest) -> str:
        """C-18: a known context, one that was requested, mapped and capped, at least what was asked."""
        mapped = self.settings.authn_context_map.get(class_ref)
        if mapped is None:
            raise UpstreamError(MSG_LEVEL, f"AuthnContextClassRef {class_ref[:120]!r} is not in authn_context_map")
        if contexts and class_ref not in contexts:
            raise UpstreamError(MSG_LEVEL, f"AuthnContextClassRef {class_ref[:120]!r} was not requested")
        if level_rank(mapped) > level_rank(self.level):
            mapped = self.level
        wanted = [level_rank(v) for v in request.acr_values if level_rank(v)]
        if wanted and level_rank(mapped) < min(wanted):
            raise UpstreamError(MSG_LEVEL, f"reached {mapped} ({class_ref}), requested {' '.join(request.acr_values)}")
        return mapped if mapped in LEVELS else LEVELS[0]

    # ----------------------------------------------------------------- logout

    @staticmethod
    def logout_request_id(state: str) -> str:
        """The LogoutRequest ID derives from the broker's logout ``state``: the answer's
        InResponseTo can be checked without the provider keeping anything."""
        return "_" + hashlib.sha256(b"nc-connect-slo:" + state.encode()).hexdigest()

    def begin_logout(self, session_data: Mapping[str, Any], state: str, return_url: str) -> str | None:
        """SP-initiated single logout: a signed LogoutRequest (HTTP-Redirect), RelayState = ``state``.

        The IdP answers at ``/saml/<id>/slo``, which continues to ``return_url``'s
        ``/logout/return?state=…`` once the LogoutResponse is verified.
        """
        if not session_data.get("name_id"):
            return None
        try:
            idp = self.idp()
        except UpstreamError as exc:
            log.warning("saml %s: no single logout, %s", self.provider_id, exc.detail)
            return None
        if not idp.slo_url:
            return None
        settings = self.onelogin_settings(idp)
        request_id = self.logout_request_id(state)

        class _Request(OneLogin_Saml2_Logout_Request):
            def _generate_request_id(self) -> str:
                return request_id

        logout = _Request(settings, name_id=session_data["name_id"], session_index=session_data.get("session_index"),
                          nq=session_data.get("name_qualifier"), name_id_format=session_data.get("name_id_format"),
                          spnq=session_data.get("sp_name_qualifier"))
        auth = OneLogin_Saml2_Auth(self._request_data(self.slo_url), settings)
        parameters = {"SAMLRequest": logout.get_request(), "RelayState": state}
        auth.add_request_signature(parameters, C.RSA_SHA256)
        return auth.redirect_to(idp.slo_url, parameters)

    def handle_logout_message(self, query_string: str) -> LogoutMessage:
        """A LogoutRequest or LogoutResponse from the IdP at our SLO endpoint (HTTP-Redirect binding).

        Both must carry a valid signature by the IdP's metadata certificates (C-19),
        checked on the raw query string.
        """
        params = dict(parse_qsl(query_string, keep_blank_values=True))
        idp = self.idp()
        settings = self.onelogin_settings(idp, messages_signed=True)
        request_data = self._request_data(self.slo_url, get=params, query_string=query_string)
        auth = OneLogin_Saml2_Auth(request_data, settings)
        kind = "SAMLRequest" if "SAMLRequest" in params else "SAMLResponse" if "SAMLResponse" in params else None
        if kind is None:
            raise UpstreamError(MSG_LOGOUT, "SLO endpoint called without SAMLRequest or SAMLResponse")
        try:
            xml = OneLogin_Saml2_Utils.decode_base64_and_inflate(params[kind])
            root = parse_strict(xml if isinstance(xml, bytes) else xml.encode())
            screen_message(root, LOGOUT_REQUEST if kind == "SAMLRequest" else LOGOUT_RESPONSE)
        except XmlRefused as exc:
            raise UpstreamError(MSG_LOGOUT, f"logout message refused: {exc}") from None
        except Exception as exc:  # zlib / base64 errors
            raise UpstreamError(MSG_LOGOUT, f"logout message unreadable: {type(exc).__name__}") from None
        if root.get("Destination") != self.slo_url:
            raise UpstreamError(MSG_LOGOUT, f"logout message Destination {root.get('Destination')!r} is not {self.slo_url!r}")
        issuer = root.find("saml:Issuer", NS)
        if issuer is None or text_of(issuer) != idp.entity_id:
            raise UpstreamError(MSG_LOGOUT, "logout message Issuer missing or not the IdP")
        try:
            instant = saml_time(root.get("IssueInstant"), "IssueInstant")
        except CheckFailed as exc:
            raise UpstreamError(MSG_LOGOUT, str(exc)) from None
        now = self.clock()
        if abs(now - instant) > self.settings.max_assertion_age + self.settings.clock_skew:
            raise UpstreamError(MSG_LOGOUT, f"logout message issued {int(now - instant)} s from now")
        if kind == "SAMLResponse":
            return self._logout_response(auth, params, root)
        return self._logout_request(auth, params, root, settings, idp, request_data)

    def _logout_response(self, auth: OneLogin_Saml2_Auth, params: Mapping[str, str], root) -> LogoutMessage:
        relay_state = params.get("RelayState", "")
        if not relay_state or root.get("InResponseTo") != self.logout_request_id(relay_state):
            raise UpstreamError(MSG_LOGOUT, "LogoutResponse InResponseTo does not match the LogoutRequest sent")
        auth.process_slo(keep_local_session=True, request_id=self.logout_request_id(relay_state))
        errors = auth.get_errors()
        if errors and errors != ["logout_not_success"]:
            raise UpstreamError(MSG_LOGOUT, f"LogoutResponse refused: {errors} {auth.get_last_error_reason() or ''}")
        return LogoutMessage(kind="response", relay_state=relay_state, success=not errors)

    def _logout_request(self, auth: OneLogin_Saml2_Auth, params: Mapping[str, str], root, settings,
                        idp: IdpMetadata, request_data: dict[str, Any]) -> LogoutMessage:
        if not auth.validate_request_signature(params):
            raise UpstreamError(MSG_LOGOUT, f"LogoutRequest signature refused: {auth.get_last_error_reason()}")
        request = OneLogin_Saml2_Logout_Request(settings, params["SAMLRequest"])
        if not request.is_valid(request_data):
            raise UpstreamError(MSG_LOGOUT, f"LogoutRequest refused: {request.get_error()}")
        name_id = root.find("saml:NameID", NS)
        if name_id is None or not text_of(name_id):
            raise UpstreamError(MSG_LOGOUT, "LogoutRequest without a plain NameID")
        not_on_or_after = root.get("NotOnOrAfter")
        if not_on_or_after and saml_time(not_on_or_after, "NotOnOrAfter") + self.settings.clock_skew <= self.clock():
            raise UpstreamError(MSG_LOGOUT, "LogoutRequest expired")
        indexes = tuple(text_of(n) or "" for n in root.findall("samlp:SessionIndex", NS))
        builder = OneLogin_Saml2_Logout_Response(settings)
        builder.build(root.get("ID"))
        answer = {"SAMLResponse": builder.get_response()}
        if "RelayState" in params:
            answer["RelayState"] = params["RelayState"]
        auth.add_response_signature(answer, C.RSA_SHA256)
        return LogoutMessage(kind="request", subject=text_of(name_id), session_indexes=indexes,
                             message_id=f"{idp.entity_id}|{root.get('ID')}",
                             redirect_url=auth.redirect_to(idp.slo_response_url or idp.slo_url or "", answer))

    def session_key(self, session_data: Mapping[str, Any]) -> str | None:
        """What IdP-initiated logout finds a session by: the NameID (hashed; the broker stores no NameID)."""
        name_id = session_data.get("name_id")
        return hashlib.sha256(f"{session_data.get('idp')}|{name_id}".encode()).hexdigest() if name_id else None

    def logout_key(self, message: LogoutMessage) -> str:
        idp = self.idp()
        return hashlib.sha256(f"{idp.entity_id}|{message.subject}".encode()).hexdigest()
