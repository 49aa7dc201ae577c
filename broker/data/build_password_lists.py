"""Regenerate the password policy's word lists from the zxcvbn-ts language packages.

* ``common-passwords.txt``: the passwords most found in breaches, most frequent first
  (``@zxcvbn-ts/language-common``, ``passwords.json``), refused outright at sign-up and
  password change, and ranked for the strength estimate.
* ``french-words.txt``: common French words (OpenSubtitles), first names and last names
  (``@zxcvbn-ts/language-fr``), so that the strength estimate knows French as well as English.
* ``azerty.json``: the French keyboard's adjacency graph (``@zxcvbn-ts/language-common``,
  ``adjacencyGraphs.json``), so that "azertyuiop"-like walks are recognised like "qwertyuiop".

Run from the repository root::

    cd /tmp && npm pack @zxcvbn-ts/language-common@4.1.3 @zxcvbn-ts/language-fr@4.1.2
    for f in zxcvbn-ts-language-*.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
    .venv/bin/python broker/data/build_password_lists.py /tmp/zxcvbn-ts-language-common-4.1.3/package \\
        /tmp/zxcvbn-ts-language-fr-4.1.2/package
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent


def _load(package: Path, name: str) -> list[str]:
    return json.loads((package / "src" / f"{name}.json").read_text(encoding="utf-8"))


def _version(package: Path) -> str:
    meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
    return f"npm {meta['name']} {meta['version']}"


def _write(path: Path, header: list[str], words: list[str]) -> None:
    seen: set[str] = set()
    unique = [w for w in (w.strip().lower() for w in words) if w and "\n" not in w and not (w in seen or seen.add(w))]
    path.write_text("".join(f"# {line}\n" for line in header) + "\n".join(unique) + "\n", encoding="utf-8")
    print(f"{path.name}: {len(unique)} entries")


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise SystemExit(__doc__)
    common, french = Path(argv[1]), Path(argv[2])
    _write(HERE / "common-passwords.txt",
           [f"source: {_version(common)} (src/passwords.json), most frequent first", "licence: MIT (zxcvbn-ts)"],
           _load(common, "passwords"))
    graph = _load(common, "adjacencyGraphs")["azerty"]  # type: ignore[call-overload]
    (HERE / "azerty.json").write_text(json.dumps({"source": f"{_version(common)} (src/adjacencyGraphs.json)",
                                                  "licence": "MIT (zxcvbn-ts)", "azerty": graph},
                                                 ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    # the package's "firstnames" file holds last names and "lastnames" first names; both are names
    _write(HERE / "french-words.txt",
           [f"source: {_version(french)} (src/commonWords.json, firstnames.json, lastnames.json)",
            "licence: MIT (zxcvbn-ts); commonWords from OpenSubtitles 2024 via OPUS, ODC-BY (attribution)"],
           _load(french, "commonWords") + _load(french, "lastnames") + _load(french, "firstnames"))


if __name__ == "__main__":
    main(sys.argv)
