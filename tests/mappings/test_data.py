"""The shipped reference data: complete, unambiguous, and consistent with the pivot schema."""

from __future__ import annotations

import json

from mappings import geo
from mappings.pivot import COMMUNE_CODE, COUNTRY_CODE


def test_the_33_communes_of_new_caledonia():
    data = json.loads((geo.DATA_DIR / "communes-nc.json").read_text(encoding="utf-8"))
    communes = data["communes"]
    assert len(communes) == 33
    assert [c["code"] for c in communes] == [f"988{n:02d}" for n in range(1, 34)]
    assert all(c["postal_codes"] for c in communes)
    assert "decoupage-administratif" in data["source"] and "Licence Ouverte" in data["licence"]


def test_every_commune_is_found_by_name_code_and_postal_code():
    data = json.loads((geo.DATA_DIR / "communes-nc.json").read_text(encoding="utf-8"))["communes"]
    assert len(geo.communes().by_name) == 33  # no two names fold to the same key
    for c in data:
        assert geo.commune_code(c["name"]) == c["code"]
        assert geo.commune_code(c["name"].upper()) == c["code"]
        assert geo.commune_code(c["code"], ("insee",)) == c["code"]
        for postal in c["postal_codes"]:
            assert geo.commune_code(postal, ("postal",)) == c["code"]


def test_countries_are_well_formed_and_codes_unambiguous():
    data = json.loads((geo.DATA_DIR / "countries.json").read_text(encoding="utf-8"))
    entries = data["countries"]
    assert len({e["cog"] for e in entries}) > 230
    isos = [e["iso2"] for e in entries if e["iso2"]] + [e["iso3"] for e in entries if e["iso3"]]
    assert len(isos) == len(set(isos))
    for e in entries:
        assert COUNTRY_CODE.fullmatch(e["cog"])
        assert e["iso2"] is None or len(e["iso2"]) == 2
        assert e["iso3"] is None or len(e["iso3"]) == 3
    assert "Licence Ouverte" in data["licence"] and "MIT" in data["licence"]


def test_no_country_name_designates_two_codes():
    entries = json.loads((geo.DATA_DIR / "countries.json").read_text(encoding="utf-8"))["countries"]
    seen: dict[str, str] = {}
    for e in entries:
        for name in (e["name"], *e["aliases"]):
            key = geo.fold(name)
            assert seen.setdefault(key, e["cog"]) == e["cog"], name


def test_codes_and_names_agree():
    """A 2- or 3-letter name (UK, USA) never designates another country than the same ISO code."""
    table = geo.countries()
    for name, cog in table.by_name.items():
        if name.replace(" ", "") in table.by_code:
            assert table.by_code[name.replace(" ", "")] == cog, name


def test_every_current_country_resolves_by_iso_codes_and_names():
    entries = json.loads((geo.DATA_DIR / "countries.json").read_text(encoding="utf-8"))["countries"]
    for e in entries:
        if e["iso2"]:
            assert geo.country_code(e["iso2"]) == e["cog"]
            assert geo.country_code(e["iso3"].lower()) == e["cog"]
        assert geo.country_code(e["name"]) == e["cog"]


def test_french_territories_are_france():
    for code in ("FR", "FRA", "NC", "NCL", "PF", "PYF", "WF", "WLF", "RE", "GP", "MQ", "GF", "YT", "PM", "BL", "MF", "TF"):
        assert geo.country_code(code) == "99100", code


def test_fold():
    assert geo.fold("  L'Île-des-Pins ") == "L ILE DES PINS"
    assert geo.fold("Œuf") == "OEUF"
    assert COMMUNE_CODE.fullmatch("2A004") and not COMMUNE_CODE.fullmatch("2C004")
