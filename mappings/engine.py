"""The mapping engine: an identity source's raw attributes → the pivot identity.

A mapping file (YAML, one per provider) is keyed by pivot claim::

    birthdate:
      from: [date_naissance, urn:oid:1.3.6.1.4.1.xxx.birthDate]   # first present, non-empty wins
      transform: [trim, {date: {formats: ["%d/%m/%Y"]}}]           # closed set, see transforms.py
      default: "..."                                               # used as is when no source is present
      required: true

Applying a mapping never raises for bad data: every claim ends in ``pivot`` or,
with the reason, in ``errors`` (failed transform, invalid value, missing required
claim); ``trace`` says for every pivot claim which rule produced it or why it is
absent.

After all claims, one consistency rule (FranceConnect's convention): when
``birthcountry`` is not France (99100), ``birthplace`` is ``""`` — whatever the
source sent for it, and even if that failed to map, since a foreign town has no
COG commune code.  People born in New Caledonia are born in France (99100) in a
988xx commune.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mappings.loader import ClaimRule, MappingError, load_rules
from mappings.pivot import FRANCE, PIVOT_CLAIMS, check_claim
from mappings.transforms import TransformFailed, Value, single

__all__ = ["Mapping", "MappingError", "MappingResult", "load_mapping"]

log = logging.getLogger(__name__)
_MISSING = object()


@dataclass
class MappingResult:
    pivot: dict[str, str] = field(default_factory=dict)
    trace: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def lookup(attributes: Any, name: str) -> Any:
    """``attributes[name]``, else the dotted path ``address.locality``.

    An exact key always wins, so SAML names full of dots (``urn:oid:2.5.4.42``) work;
    along a path the longest key present at each level is taken."""
    return _walk(attributes, name.split("."))


def _walk(obj: Any, parts: list[str]) -> Any:
    if not parts:
        return obj
    if not isinstance(obj, MappingABC):
        return _MISSING
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in obj:
            found = _walk(obj[key], parts[i:])
            if found is not _MISSING:
                return found
    return _MISSING


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (str, int, float, bool)):
        text = str(value)
        return text if text.strip() else None
    raise TransformFailed(f"unsupported value of type {type(value).__name__}")


def normalise(value: Any) -> Value | None:
    """A string, a list of strings, or None when absent or empty (None, "", "  ", [])."""
    if isinstance(value, (list, tuple)):
        values = [v for v in (_scalar(x) for x in value) if v is not None]
        return values or None
    return _scalar(value)


class Mapping:
    """The validated rules of one mapping file; build with :func:`load_mapping`."""

    def __init__(self, rules: dict[str, ClaimRule], source: str = "") -> None:
        self.rules = rules
        self.source = source

    def apply(self, attributes: MappingABC[str, Any]) -> MappingResult:
        result = MappingResult()
        for claim in PIVOT_CLAIMS:
            rule = self.rules.get(claim)
            if rule is None:
                result.trace[claim] = "not mapped"
                continue
            try:
                _apply_rule(rule, attributes, result)
            except Exception:  # one error boundary: bad data never escapes as an exception
                log.exception("mapping %s: unexpected failure on claim %s", self.source, claim)
                result.errors[claim] = "unexpected error while mapping this claim"
                result.trace[claim] = f"failed: {result.errors[claim]}"
        _born_abroad(result)
        result.pivot = {c: result.pivot[c] for c in PIVOT_CLAIMS if c in result.pivot}
        return result


def _apply_rule(rule: ClaimRule, attributes: Any, result: MappingResult) -> None:
    claim = rule.claim
    for source in rule.sources:
        try:
            raw = lookup(attributes, source)
            value = None if raw is _MISSING else normalise(raw)
        except TransformFailed as exc:
            return _fail(result, claim, f"{claim} ← {source}", str(exc))
        if value is None:
            continue
        label = f"{claim} ← {source}" + (f" | {', '.join(s.name for s in rule.steps)}" if rule.steps else "")
        for step in rule.steps:
            try:
                value = step.transform(value, step.options)
            except TransformFailed as exc:
                return _fail(result, claim, label, f"{step.name}: {exc}")
        try:
            final = single(value).strip()
        except TransformFailed as exc:
            return _fail(result, claim, label, f"{exc} (add a transform such as join_given_names)")
        why = check_claim(claim, final)
        if why:
            return _fail(result, claim, label, f"{final!r} {why}")
        result.pivot[claim] = final
        result.trace[claim] = label
        return None
    tried = ", ".join(rule.sources)
    if rule.default is not None:
        result.pivot[claim] = rule.default
        result.trace[claim] = f"{claim} ← default {rule.default!r}" + (f" (none of {tried} present)" if tried else "")
    elif rule.required:
        result.errors[claim] = f"required claim missing: none of {tried} present"
        result.trace[claim] = f"missing (required): none of {tried} present"
    else:
        result.trace[claim] = f"missing: none of {tried} present"
    return None


def _fail(result: MappingResult, claim: str, label: str, message: str) -> None:
    result.errors[claim] = message
    result.trace[claim] = f"failed: {label} → {message}"


def _born_abroad(result: MappingResult) -> None:
    country = result.pivot.get("birthcountry")
    if country and country != FRANCE:
        result.pivot["birthplace"] = ""
        result.errors.pop("birthplace", None)
        result.trace["birthplace"] = f'birthplace = "" (born abroad: birthcountry {country} ≠ {FRANCE})'


def load_mapping(path: str | Path) -> Mapping:
    """Parse and validate a whole mapping file; raises MappingError(file, line, message)."""
    return Mapping(load_rules(path), source=str(path))
