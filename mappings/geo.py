"""Communes of New Caledonia and COG country codes, from the JSON files in ``mappings/data/``.

The files are small and read once, on first use.  Names are compared after
:func:`fold`: accents, case, hyphens, apostrophes and spacing do not matter, so
"Noumea", "NOUMÉA" and " nouméa " are the same commune.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mappings.pivot import COMMUNE_CODE

DATA_DIR = Path(__file__).with_name("data")
NC_PREFIX = "988"
_ARTICLE = re.compile(r"^(LE|LA|LES|L) ")
_LIGATURES = str.maketrans({"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "ß": "ss"})


def fold(text: str) -> str:
    """Upper case, no accents, runs of anything but letters and digits turned into one space."""
    text = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    text = "".join(c for c in text if not unicodedata.combining(c)).upper()
    return re.sub(r"[^A-Z0-9]+", " ", text).strip()


def _commune_key(name: str) -> str:
    """Commune names also match without their article: "Mont Dore" is "Le Mont-Dore"."""
    return _ARTICLE.sub("", fold(name))


@dataclass(frozen=True)
class Communes:
    by_name: dict[str, str]
    by_insee: dict[str, str]  # code → name
    by_postal: dict[str, str]  # postal code → code


@dataclass(frozen=True)
class Countries:
    by_code: dict[str, str]  # COG, ISO alpha-2 or alpha-3 code → COG code
    by_name: dict[str, str]  # folded name → COG code


@cache
def communes() -> Communes:
    data = json.loads((DATA_DIR / "communes-nc.json").read_text(encoding="utf-8"))["communes"]
    by_name, by_insee, by_postal = {}, {}, {}
    for c in data:
        by_name[_commune_key(c["name"])] = c["code"]
        by_insee[c["code"]] = c["name"]
        for postal in c["postal_codes"]:
            by_postal[postal] = c["code"]
    return Communes(by_name, by_insee, by_postal)


@cache
def countries() -> Countries:
    data = json.loads((DATA_DIR / "countries.json").read_text(encoding="utf-8"))["countries"]
    by_code: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for e in data:
        by_code[e["cog"]] = e["cog"]
        for iso in (e["iso2"], e["iso3"]):
            if iso:
                by_code[iso] = e["cog"]
        for name in (e["name"], *e["aliases"]):
            by_name.setdefault(fold(name), e["cog"])
    return Countries(by_code, by_name)


def commune_code(value: str, kinds: tuple[str, ...] = ("insee", "postal")) -> str:
    """The COG code of a commune given by name (New Caledonia), INSEE code or NC postal code.

    Postal and INSEE codes of New Caledonia overlap (98818 is Nouméa's INSEE code and
    Kouaoua's postal code), so a 5-digit value is read as each kind of ``kinds`` in turn.
    An INSEE code outside New Caledonia is accepted when well formed: the shipped data
    only lists NC communes.  Raises ValueError.
    """
    text = value.strip()
    if re.fullmatch(r"\d{5}|2[ABab]\d{3}", text):
        code = text.upper()
        nc = communes()
        for kind in kinds:
            if kind == "insee" and (code in nc.by_insee or (not code.startswith(NC_PREFIX) and COMMUNE_CODE.fullmatch(code))):
                return code
            if kind == "postal" and code in nc.by_postal:
                return nc.by_postal[code]
        raise ValueError(f"{code} is no known {' or '.join(kinds)} code of a commune")
    found = communes().by_name.get(_commune_key(text))
    if found is None:
        raise ValueError(f"unknown commune {text!r} (names are known for New Caledonia's communes; elsewhere send the INSEE code)")
    return found


def country_code(value: str) -> str:
    """The COG code 99XXX of a country given by COG code, ISO alpha-2/alpha-3 code, or French or
    English name.  France and its territories (New Caledonia included) are 99100.  Raises ValueError."""
    text = value.strip()
    table = countries()
    code = table.by_code.get(text.upper())
    if code is None:
        code = table.by_name.get(fold(text))
    if code is None:
        raise ValueError(f"unknown country {text!r}")
    return code
