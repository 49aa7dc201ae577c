"""The closed set of named transforms a mapping file may use (no eval, no templates).

A value is a string or, for multi-valued attributes (SAML attributes, FranceConnect's
``given_name_array``), a list of strings.  Each transform has a *shape*:

* ``each``: applied to a string, or to every string of a list (trim, title…);
* ``one``: needs one value; a one-element list is unwrapped, a longer one fails (date…);
* ``list``: takes a list or a string and returns a string (join_given_names…).

A transform that cannot apply raises :class:`TransformFailed`; the engine turns it
into a per-claim error.  Options (``date``'s ``formats``, ``commune_cog``'s ``codes``)
are checked once, when the mapping file is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from mappings import geo

Value = str | list[str]


class TransformFailed(ValueError):
    """The value cannot be transformed (bad data, not a bad mapping file)."""


@dataclass(frozen=True)
class Transform:
    name: str
    func: Callable[..., str]
    shape: str  # "each" | "one" | "list"
    # option name → (checker returning the normalised option or raising ValueError, default)
    options: dict[str, tuple[Callable[[Any], Any], Any]] = field(default_factory=dict)

    def check_option(self, name: str, value: Any) -> Any:
        if name not in self.options:
            known = ", ".join(self.options) or "none"
            raise ValueError(f"transform {self.name!r} has no option {name!r} (options: {known})")
        return self.options[name][0](value)

    def defaults(self) -> dict[str, Any]:
        return {name: default for name, (_, default) in self.options.items()}

    def __call__(self, value: Value, options: dict[str, Any]) -> Value:
        if self.shape == "each":
            return [self.func(v) for v in value] if isinstance(value, list) else self.func(value)
        if self.shape == "one":
            return self.func(single(value), **options)
        return self.func(value)


def single(value: Value) -> str:
    """The one value of ``value``; a multi-valued attribute cannot feed a one-value transform."""
    if isinstance(value, str):
        return value
    if len(value) == 1:
        return value[0]
    raise TransformFailed(f"expected one value, got {len(value)}")


# -- text ---------------------------------------------------------------------------

def collapse_spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


_PARTICLES = {"de", "du", "des"}
_ELIDED = re.compile(r"^(\w)(['’])(.+)$")


def _cap(segment: str) -> str:
    return segment[:1].upper() + segment[1:]


def _title_part(part: str) -> str:
    """'d'artagnan' → "D'Artagnan", but "fa'aoso" → "Fa'aoso": after an apostrophe a capital
    follows only an elided one-letter word (d', l', n', o'), not a glottal stop in a
    Wallisian or Polynesian name."""
    m = _ELIDED.match(part)
    return _cap(m.group(1)) + m.group(2) + _cap(m.group(3)) if m else _cap(part)


def title(text: str) -> str:
    """French-aware capitalisation of names: "JEAN-PIERRE de la fontaine" → "Jean-Pierre de La Fontaine".

    Each word and each hyphenated part is capitalised; the particles de, du, des and d'
    stay lower case after the first word ("Valéry Giscard d'Estaing")."""
    words = []
    for i, word in enumerate(text.lower().split(" ")):
        if i > 0 and word in _PARTICLES:
            words.append(word)
        elif i > 0 and _ELIDED.match(word) and word[0] == "d":
            words.append(word[:2] + _cap(word[2:]))
        else:
            words.append("-".join(_title_part(p) for p in word.split("-")))
    return " ".join(words)


def join_given_names(value: Value) -> str:
    """["Jean", "Pierre"] or "Jean, Pierre" → "Jean Pierre"."""
    parts = value if isinstance(value, list) else [value.replace(",", " ")]
    joined = " ".join(c for c in (collapse_spaces(p) for p in parts) if c)
    if not joined:
        raise TransformFailed("no given name")
    return joined


def first_given_name(value: Value) -> str:
    """The first given name: the first element of a list, else the first word of a string."""
    if isinstance(value, list):
        names = [c for c in (collapse_spaces(v) for v in value) if c]
    else:
        names = [w for w in re.split(r"[\s,]+", value) if w]
    if not names:
        raise TransformFailed("no given name")
    return names[0]


# -- dates --------------------------------------------------------------------------

_SAMPLE = date(1980, 12, 25)


def check_formats(value: Any) -> tuple[str, ...]:
    """Each format has %Y, %m and %d exactly once (and no other directive), and round-trips."""
    formats = [value] if isinstance(value, str) else value
    if not isinstance(formats, list) or not formats or not all(isinstance(f, str) for f in formats):
        raise ValueError("formats must be a non-empty list of strptime formats, e.g. ['%d/%m/%Y']")
    for fmt in formats:
        directives = sorted(re.findall(r"%(.)", fmt.replace("%%", "")))
        ok = directives == ["Y", "d", "m"]
        if ok:
            try:
                ok = datetime.strptime(_SAMPLE.strftime(fmt), fmt).date() == _SAMPLE
            except ValueError:
                ok = False
        if not ok:
            raise ValueError(f"bad date format {fmt!r}: use %Y, %m and %d exactly once each, e.g. '%d/%m/%Y'")
    return tuple(formats)


def _pad(text: str) -> str:
    return re.sub(r"(?<!\d)(\d)(?!\d)", r"0\1", text)


def to_date(text: str, formats: tuple[str, ...], today: Callable[[], date] = date.today) -> str:
    """A birth date in one of ``formats`` → YYYY-MM-DD.

    Impossible dates (31/02), dates in the future or before 1850 are refused, and so
    is an input that only parses by guessing ("1980111": 1 Nov or 11 Jan?): the
    parsed date written back in the same format must give the input again, single
    digits allowed ("5/1/1980")."""
    text = text.strip()
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if parsed.strftime(fmt) not in (text, _pad(text)):
            continue
        if not date(1850, 1, 1) <= parsed <= today():
            raise TransformFailed(f"{text!r} is not a possible birth date")
        return parsed.isoformat()
    raise TransformFailed(f"{text!r} is not a date in format {' or '.join(formats)}")


# -- codes --------------------------------------------------------------------------

_GENDERS = {
    "male": {"M", "H", "MALE", "HOMME", "MASCULIN", "MAN", "1"},
    "female": {"F", "FEMALE", "FEMME", "FEMININ", "WOMAN", "2"},
}


def gender(text: str) -> str:
    """M/H/male/homme/masculin/1 → male; F/female/femme/féminin/2 → female (any case, accents)."""
    key = geo.fold(text)
    for pivot, spellings in _GENDERS.items():
        if key in spellings:
            return pivot
    raise TransformFailed(f"unknown gender {text.strip()!r}")


CODE_KINDS = ("insee", "postal")


def check_codes(value: Any) -> tuple[str, ...]:
    kinds = [value] if isinstance(value, str) else value
    if not isinstance(kinds, list) or not kinds or any(k not in CODE_KINDS for k in kinds):
        raise ValueError(f"codes must be a non-empty list of {', '.join(CODE_KINDS)}")
    return tuple(kinds)


def commune_cog(text: str, codes: tuple[str, ...]) -> str:
    try:
        return geo.commune_code(text, codes)
    except ValueError as exc:
        raise TransformFailed(str(exc)) from None


def country_cog(text: str) -> str:
    try:
        return geo.country_code(text)
    except ValueError as exc:
        raise TransformFailed(str(exc)) from None


TRANSFORMS: dict[str, Transform] = {t.name: t for t in (
    Transform("trim", str.strip, "each"),
    Transform("upper", str.upper, "each"),
    Transform("lower", str.lower, "each"),
    Transform("title", title, "each"),
    Transform("collapse_spaces", collapse_spaces, "each"),
    Transform("join_given_names", join_given_names, "list"),
    Transform("first_given_name", first_given_name, "list"),
    Transform("date", lambda text, formats: to_date(text, formats), "one",
              {"formats": (check_formats, ("%Y-%m-%d",))}),
    Transform("gender", gender, "one"),
    Transform("commune_cog", commune_cog, "one", {"codes": (check_codes, CODE_KINDS)}),
    Transform("country_cog", country_cog, "one"),
)}
