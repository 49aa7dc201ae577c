"""Copy the State design system (DSFR) files the citizen pages use into broker/static/dsfr/.

From frontend/node_modules/@gouvfr/dsfr/dist (installed by ``npm ci`` at the version pinned in
frontend/package-lock.json): the compiled stylesheet, every font and icon it refers to, and
nothing else (no JavaScript: every page works without it).  A VERSION file records the DSFR
version copied, which the broker checks at start-up (broker/ui.py).  Idempotent; standard
library only, so it runs before the virtual environment exists.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "frontend" / "node_modules" / "@gouvfr" / "dsfr" / "dist"
TARGET = ROOT / "broker" / "static" / "dsfr"
STYLESHEETS = ["dsfr.min.css"]  # the FranceConnect button (component/connect) is part of it
URL = re.compile(r"url\(\s*['\"]?(?!data:)([^'\")]+)['\"]?\s*\)")


def referenced(css: str) -> set[str]:
    return {m.group(1).split("?")[0].split("#")[0] for m in URL.finditer(css)}


def main() -> int:
    package = DIST.parent / "package.json"
    if not package.is_file():
        print(f"copy_dsfr: {DIST} is missing; run `cd frontend && npm ci --ignore-scripts` first", file=sys.stderr)
        return 1
    version = json.loads(package.read_text())["version"]
    if TARGET.exists():
        shutil.rmtree(TARGET)
    TARGET.mkdir(parents=True)
    files = set(STYLESHEETS)
    for name in STYLESHEETS:
        files |= referenced((DIST / name).read_text(encoding="utf-8"))
    missing = []
    for name in sorted(files):
        source = (DIST / name).resolve()
        if DIST.resolve() not in source.parents or not source.is_file():
            missing.append(name)
            continue
        (TARGET / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, TARGET / name)
    if missing:
        print(f"copy_dsfr: files referenced by the DSFR stylesheet are missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    (TARGET / "LICENSE.md").write_text((DIST.parent / "LICENSE.md").read_text(encoding="utf-8"), encoding="utf-8")
    (TARGET / "VERSION").write_text(version + "\n")
    print(f"copy_dsfr: DSFR {version}: {len(files)} files in {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
