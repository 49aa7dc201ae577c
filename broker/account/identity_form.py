"""The declared pivot identity on the sign-up form: fields, choices and checks.

Birthplace is one of New Caledonia's 33 communes, or "born elsewhere" with a country
(COG code 99XXX); born elsewhere in France, the citizen may give the commune's INSEE
code.  Values are stored as the pivot identity expects (OpenID Connect and
FranceConnect claims): ``gender`` male/female, ``birthdate`` YYYY-MM-DD, ``birthplace``
and ``birthcountry`` COG codes (``birthplace`` empty when born abroad).
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import cache

from flask_babel import gettext, lazy_gettext

from mappings.geo import DATA_DIR, commune_code, communes, fold

ELSEWHERE = "ailleurs"
FRANCE = "99100"
GENDERS = {"female": lazy_gettext("Féminin"), "male": lazy_gettext("Masculin")}
NAME = re.compile(r"^[^\W\d_]+(?:[ '’-][^\W\d_]+)*$")


def commune_choices() -> list[tuple[str, str]]:
    return sorted(communes().by_insee.items(), key=lambda kv: fold(kv[1]))


@cache
def country_choices() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(current countries, former countries) as (COG code, name); France first, its territories left out."""
    data = json.loads((DATA_DIR / "countries.json").read_text(encoding="utf-8"))["countries"]
    current = [(e["cog"], e["name"]) for e in data if e["iso2"] and e["cog"] != FRANCE]
    former = [(e["cog"], e["name"].title()) for e in data if not e["iso2"]]
    current.sort(key=lambda kv: fold(kv[1]))
    former.sort(key=lambda kv: fold(kv[1]))
    return [(FRANCE, "France")] + current, former


def _known_countries() -> set[str]:
    current, former = country_choices()
    return {code for code, _ in current + former}


def parse(form) -> tuple[dict[str, str], dict[str, str]]:
    """(pivot identity, errors by field) from the submitted form."""
    pivot: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key, missing in (("given_name", gettext("Indiquez vos prénoms.")),
                         ("family_name", gettext("Indiquez votre nom de naissance."))):
        value = " ".join(form.get(key, "").split())[:200]
        if not value:
            errors[key] = missing
        elif not NAME.match(value):
            errors[key] = gettext("Utilisez uniquement des lettres, des espaces, des tirets et des apostrophes.")
        pivot[key] = value
    raw = form.get("birthdate", "").strip()
    try:
        born = date.fromisoformat(raw)
        if not date(1900, 1, 1) <= born <= date.today():
            raise ValueError
        pivot["birthdate"] = born.isoformat()
    except ValueError:
        errors["birthdate"] = gettext("Indiquez une date de naissance valide, au format AAAA-MM-JJ "
                                      "(par exemple 1985-07-14).")
        pivot["birthdate"] = raw[:10]
    gender = form.get("gender", "")
    if gender not in GENDERS:
        errors["gender"] = gettext("Choisissez votre sexe tel qu'il figure à l'état civil.")
    pivot["gender"] = gender if gender in GENDERS else ""
    place = form.get("birthplace", "")
    if place in communes().by_insee:
        pivot["birthplace"], pivot["birthcountry"] = place, FRANCE
    elif place == ELSEWHERE:
        country = form.get("birthcountry", "")
        pivot["birthcountry"] = country if country in _known_countries() else ""
        pivot["birthplace"] = ""
        if not pivot["birthcountry"]:
            errors["birthcountry"] = gettext("Choisissez votre pays de naissance.")
        code = form.get("birthplace_code", "").strip()
        if code and country == FRANCE:
            try:
                pivot["birthplace"] = commune_code(code, kinds=("insee",))
            except ValueError:
                errors["birthplace_code"] = gettext("Indiquez le code INSEE à 5 caractères de votre commune de "
                                                    "naissance (par exemple 75056).")
    else:
        errors["birthplace"] = gettext("Choisissez votre commune de naissance, ou « Hors de Nouvelle-Calédonie ».")
        pivot["birthplace"] = pivot["birthcountry"] = ""
    return pivot, errors


@cache
def _country_names() -> dict[str, str]:
    """COG code → the name of its first entry in INSEE's order (99101 is Danemark, not Îles Féroé)."""
    data = json.loads((DATA_DIR / "countries.json").read_text(encoding="utf-8"))["countries"]
    names: dict[str, str] = {FRANCE: "France"}
    for e in data:
        names.setdefault(e["cog"], e["name"] if e["iso2"] else e["name"].title())
    return names


def country_name(code: str | None) -> str:
    return _country_names().get(code or "", code or "")
