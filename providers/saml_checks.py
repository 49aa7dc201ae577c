"""The checks NC Connect adds to python3-saml's own, each a small named function.

python3-saml (strict mode) checks the signature with the configured certificates, the
issuer, the status, the schema and, loosely, the rest.  Where it is loose (an
optional attribute it only checks when present, a prefix or substring comparison,
a fixed 300 s drift) the functions below are exact, and run *after* its validation
on the one signed Assertion (:mod:`providers.saml_xml` made sure there is only one).
Each raises :class:`CheckFailed` with a detail for the logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from providers.saml_xml import NS, text_of

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
ENTITY_FORMAT = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"


class CheckFailed(Exception):
    """A check refused the message; the text is for the logs only."""


@dataclass(frozen=True)
class Expected:
    """What this broker expects of a response, from its configuration and the transaction."""

    acs_url: str
    sp_entity_id: str
    idp_entity_id: str
    request_id: str | None  # None: an unsolicited (IdP-initiated) response is being considered
    now: float
    skew: int
    max_age: int  # seconds an assertion may have been issued before it arrives


def saml_time(value: str | None, what: str) -> float:
    if not value:
        raise CheckFailed(f"{what} is missing")
    try:
        return float(OneLogin_Saml2_Utils.parse_SAML_to_time(value))
    except (ValueError, TypeError):
        raise CheckFailed(f"{what} is not a valid time") from None


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def check_destination(response: etree._Element, exp: Expected) -> None:
    """C-13: Destination present and exactly our ACS URL (the library accepts a prefix, or none)."""
    destination = response.get("Destination")
    if destination != exp.acs_url:
        raise CheckFailed(f"Destination {_short(destination)} is not {exp.acs_url!r}")


def check_in_response_to(response: etree._Element, exp: Expected, allow_unsolicited: bool) -> None:
    """C-10: InResponseTo equals the ID this browser's transaction sent; unsolicited only when allowed."""
    in_response_to = response.get("InResponseTo")
    if exp.request_id is None:
        if in_response_to is not None:
            raise CheckFailed(f"InResponseTo {_short(in_response_to)} but no request is pending in this browser")
        if not allow_unsolicited:
            raise CheckFailed("unsolicited response (no InResponseTo) and IdP-initiated login is not allowed")
        return
    if in_response_to != exp.request_id:
        raise CheckFailed(f"InResponseTo {_short(in_response_to)} is not the request this browser sent")


def check_issuers(response: etree._Element, assertion: etree._Element, exp: Expected) -> None:
    """C-15: the Assertion's Issuer (required) and the Response's (optional) are the configured IdP."""
    issuers = assertion.findall("saml:Issuer", NS)
    if len(issuers) != 1 or text_of(issuers[0]) != exp.idp_entity_id:
        raise CheckFailed(f"assertion Issuer {_short([text_of(i) for i in issuers])} is not {exp.idp_entity_id!r}")
    for issuer in response.findall("saml:Issuer", NS):
        if text_of(issuer) != exp.idp_entity_id:
            raise CheckFailed(f"response Issuer {_short(text_of(issuer))} is not {exp.idp_entity_id!r}")
    for issuer in issuers + response.findall("saml:Issuer", NS):
        if issuer.get("Format") not in (None, ENTITY_FORMAT):
            raise CheckFailed("Issuer with a Format other than entity")


def check_issue_instant(response: etree._Element, assertion: etree._Element, exp: Expected) -> None:
    """Neither the Response nor the Assertion was issued in the future or too long ago."""
    for element, what in ((response, "Response"), (assertion, "Assertion")):
        instant = saml_time(element.get("IssueInstant"), f"{what} IssueInstant")
        if instant > exp.now + exp.skew:
            raise CheckFailed(f"{what} issued {int(instant - exp.now)} s in the future")
        if exp.now - instant > exp.max_age + exp.skew:
            raise CheckFailed(f"{what} issued {int(exp.now - instant)} s ago (at most {exp.max_age} s)")


def check_conditions(assertion: etree._Element, exp: Expected) -> float:
    """C-12, C-15: one Conditions, its time window with our skew, and an AudienceRestriction naming us.

    Every AudienceRestriction must name our entityID (each one is a condition the
    assertion places on its use, SAML Core §2.5.1.4).  Returns NotOnOrAfter (or 0).
    """
    conditions = assertion.findall("saml:Conditions", NS)
    if len(conditions) != 1:
        raise CheckFailed(f"{len(conditions)} Conditions elements, exactly one expected")
    conditions = conditions[0]
    not_on_or_after = 0.0
    if conditions.get("NotBefore") is not None:
        if saml_time(conditions.get("NotBefore"), "Conditions NotBefore") > exp.now + exp.skew:
            raise CheckFailed("assertion not yet valid (Conditions NotBefore)")
    if conditions.get("NotOnOrAfter") is not None:
        not_on_or_after = saml_time(conditions.get("NotOnOrAfter"), "Conditions NotOnOrAfter")
        if not_on_or_after + exp.skew <= exp.now:
            raise CheckFailed(f"assertion expired {int(exp.now - not_on_or_after)} s ago (Conditions NotOnOrAfter)")
    restrictions = conditions.findall("saml:AudienceRestriction", NS)
    if not restrictions:
        raise CheckFailed("assertion without AudienceRestriction")
    for restriction in restrictions:
        audiences = [text_of(a) for a in restriction.findall("saml:Audience", NS)]
        if exp.sp_entity_id not in audiences:
            raise CheckFailed(f"Audience {_short(audiences)} does not name {exp.sp_entity_id!r}")
    return not_on_or_after


def check_subject_confirmation(assertion: etree._Element, exp: Expected) -> float:
    """C-14: one bearer SubjectConfirmation, Recipient exactly our ACS URL, a NotOnOrAfter still ahead.

    Its InResponseTo, when the response answers a request, must be that request.
    Returns the NotOnOrAfter.
    """
    subjects = assertion.findall("saml:Subject", NS)
    if len(subjects) != 1:
        raise CheckFailed("assertion without exactly one Subject")
    confirmations = subjects[0].findall("saml:SubjectConfirmation", NS)
    if len(confirmations) != 1 or confirmations[0].get("Method") != BEARER:
        raise CheckFailed("exactly one bearer SubjectConfirmation expected")
    data = confirmations[0].findall("saml:SubjectConfirmationData", NS)
    if len(data) != 1:
        raise CheckFailed("SubjectConfirmation without exactly one SubjectConfirmationData")
    data = data[0]
    if data.get("Recipient") != exp.acs_url:
        raise CheckFailed(f"Recipient {_short(data.get('Recipient'))} is not {exp.acs_url!r}")
    not_on_or_after = saml_time(data.get("NotOnOrAfter"), "SubjectConfirmationData NotOnOrAfter")
    if not_on_or_after + exp.skew <= exp.now:
        raise CheckFailed(f"subject confirmation expired {int(exp.now - not_on_or_after)} s ago")
    if data.get("NotBefore") is not None:
        raise CheckFailed("bearer SubjectConfirmationData must not carry NotBefore (SAML Profiles §4.1.4.2)")
    in_response_to = data.get("InResponseTo")
    if exp.request_id is not None and in_response_to != exp.request_id:
        raise CheckFailed(f"SubjectConfirmationData InResponseTo {_short(in_response_to)} is not the request sent")
    if exp.request_id is None and in_response_to is not None:
        raise CheckFailed("SubjectConfirmationData InResponseTo in an unsolicited response")
    return not_on_or_after


@dataclass(frozen=True)
class Authn:
    class_ref: str
    instant: float
    session_index: str | None


def check_authn_statement(assertion: etree._Element, exp: Expected) -> Authn:
    """One AuthnStatement with an AuthnContextClassRef, an AuthnInstant and, if any, a live session."""
    statements = assertion.findall("saml:AuthnStatement", NS)
    if len(statements) != 1:
        raise CheckFailed(f"{len(statements)} AuthnStatement elements, exactly one expected")
    statement = statements[0]
    refs = statement.findall("saml:AuthnContext/saml:AuthnContextClassRef", NS)
    if len(refs) != 1 or not text_of(refs[0]):
        raise CheckFailed("AuthnStatement without exactly one AuthnContextClassRef")
    instant = saml_time(statement.get("AuthnInstant"), "AuthnInstant")
    if instant > exp.now + exp.skew:
        raise CheckFailed("AuthnInstant in the future")
    if statement.get("SessionNotOnOrAfter") is not None:
        if saml_time(statement.get("SessionNotOnOrAfter"), "SessionNotOnOrAfter") + exp.skew <= exp.now:
            raise CheckFailed("the IdP session has ended (SessionNotOnOrAfter)")
    return Authn(class_ref=text_of(refs[0]).strip(), instant=instant, session_index=statement.get("SessionIndex"))


@dataclass(frozen=True)
class NameId:
    value: str
    format: str
    name_qualifier: str | None
    sp_name_qualifier: str | None


def check_name_id(name_id: etree._Element | None, expected_format: str, exp: Expected) -> NameId:
    """C-19: a NameID of the configured format, read whole (C-08), qualifiers consistent with us."""
    if name_id is None:
        raise CheckFailed("assertion without NameID")
    value = text_of(name_id)
    if not value or value != value.strip():
        raise CheckFailed("empty NameID, or NameID with surrounding blanks")
    name_format = name_id.get("Format") or UNSPECIFIED
    if expected_format != UNSPECIFIED and name_format != expected_format:
        raise CheckFailed(f"NameID format {_short(name_format)} is not {expected_format!r}")
    if name_id.get("NameQualifier") not in (None, exp.idp_entity_id):
        raise CheckFailed("NameID NameQualifier is not the IdP")
    if name_id.get("SPNameQualifier") not in (None, exp.sp_entity_id):
        raise CheckFailed("NameID SPNameQualifier is not this SP")
    return NameId(value=value, format=name_format, name_qualifier=name_id.get("NameQualifier"),
                  sp_name_qualifier=name_id.get("SPNameQualifier"))


def attributes_of(assertion: etree._Element) -> dict[str, list[str]]:
    """AttributeStatement values by Name, and by FriendlyName when it does not clash with a Name."""
    by_name: dict[str, list[str]] = {}
    friendly: dict[str, list[str]] = {}
    for attribute in assertion.findall("saml:AttributeStatement/saml:Attribute", NS):
        values = [v.strip() for v in (text_of(node) for node in attribute.findall("saml:AttributeValue", NS))
                  if v and v.strip()]
        name = attribute.get("Name")
        if not name:
            continue
        if name in by_name:
            raise CheckFailed(f"attribute {_short(name)} sent twice")
        by_name[name] = values
        if attribute.get("FriendlyName"):
            friendly.setdefault(attribute.get("FriendlyName"), values)
    for key, values in friendly.items():
        by_name.setdefault(key, values)
    return by_name
