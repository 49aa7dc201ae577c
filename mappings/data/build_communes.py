"""Regenerate ``communes-nc.json``: the 33 communes of New Caledonia, their INSEE COG codes and postal codes.

Source: the npm package ``@etalab/decoupage-administratif`` (code under the MIT
licence; its data, from INSEE's Code officiel géographique and La Poste's postal
code base, under the Licence Ouverte / Open Licence of Etalab).
Run from the repository root::

    cd /tmp && npm install @etalab/decoupage-administratif
    .venv/bin/python mappings/data/build_communes.py /tmp/node_modules/@etalab/decoupage-administratif
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("communes-nc.json")
NC_COLLECTIVITE = "988"


def build(package_dir: Path) -> dict:
    version = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))["version"]
    communes = json.loads((package_dir / "data" / "communes.json").read_text(encoding="utf-8"))
    nc = sorted(
        (c for c in communes
         if c.get("type") == "commune-actuelle"
         and NC_COLLECTIVITE in (c.get("departement"), c.get("collectiviteOutremer"), c.get("region"))),
        key=lambda c: c["code"],
    )
    if len(nc) != 33:
        raise SystemExit(f"expected the 33 communes of New Caledonia, found {len(nc)}")
    return {
        "source": f"npm @etalab/decoupage-administratif {version} (data/communes.json)",
        "licence": "data: Licence Ouverte / Open Licence (Etalab), from INSEE (COG) and La Poste (postal codes); package code: MIT",
        "communes": [{"code": c["code"], "name": c["nom"], "postal_codes": sorted(c.get("codesPostaux", []))} for c in nc],
    }


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    data = build(Path(argv[1]))
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(data['communes'])} communes to {OUT}")


if __name__ == "__main__":
    main(sys.argv)
