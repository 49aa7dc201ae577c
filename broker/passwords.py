"""The password policy of local accounts (checklist D-01..D-03), following ANSSI and NIST SP 800-63B.

Length first, no composition rules: 12 to 128 characters once runs of spaces are
collapsed, any printable Unicode (spaces and emoji included), checked against

* a list of the passwords most found in breaches (``data/common-passwords.txt``),
* context words: the broker's name, the téléservices', New Caledonia's communes and
  the citizen's own names and email address,
* a strength estimate (zxcvbn, taught French words and names as well as English),
  which must reach :data:`MIN_SCORE`.

The password is never changed: it is hashed and verified exactly as typed, with no
truncation, trimming or case folding.  Nothing here logs it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Iterable

from flask_babel import gettext, lazy_gettext

DATA = Path(__file__).with_name("data")
MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_SCORE = 3  # zxcvbn: "safely unguessable" (about 10^8 guesses and more)
# zxcvbn's matching grows fast with length; beyond this the estimate reads the beginning only
# (a password whose first 72 characters are strong is strong).
ESTIMATE_LENGTH = 72
BROKER_WORDS = ("NC Connect", "ncconnect", "sésame numérique", "sesame", "Nouvelle-Calédonie", "Calédonie",
                "Kanaky", "Caillou", "gouv.nc", "service public", "mot de passe")
_SPACES = re.compile(r" {2,}")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    score: int  # 0..4, for the strength meter
    message: str = ""  # for the citizen, in the page's language; empty when ok

    @property
    def label(self) -> str:
        """The strength meter's word for the score."""
        return str(STRENGTH_LABELS[self.score])


STRENGTH_LABELS = (lazy_gettext("Très faible"), lazy_gettext("Faible"), lazy_gettext("Insuffisant"),
                   lazy_gettext("Correct"), lazy_gettext("Robuste"))


def effective_length(password: str) -> int:
    """Length in characters once runs of spaces are collapsed (ASVS 6.2.1)."""
    return len(_SPACES.sub(" ", password))


def fold(text: str) -> str:
    """Lower case, no accents, letters and digits only: how context words are compared."""
    text = unicodedata.normalize("NFKD", text)
    return re.sub(r"[\W_]+", "", "".join(c for c in text if not unicodedata.combining(c)).lower())


@cache
def common_passwords() -> frozenset[str]:
    return frozenset(_read_list("common-passwords.txt"))


def _read_list(name: str) -> list[str]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("# ")]


@cache
def _zxcvbn():
    """zxcvbn with the breach list and French words added to its English dictionaries (loaded once)."""
    import json

    import zxcvbn
    from zxcvbn import adjacency_graphs, matching

    # scored like the keypad (fewer starting keys than qwerty): a stricter estimate, never a laxer one
    azerty = json.loads((DATA / "azerty.json").read_text(encoding="utf-8"))["azerty"]
    adjacency_graphs.ADJACENCY_GRAPHS["azerty"] = matching.GRAPHS["azerty"] = azerty
    matching.add_frequency_lists({
        "common_passwords": _read_list("common-passwords.txt"),
        "french": _read_list("french-words.txt"),
    })
    return zxcvbn.zxcvbn


@cache
def _place_words() -> tuple[str, ...]:
    from mappings.geo import communes

    return tuple(communes().by_insee.values())


def context_words(*, email: str = "", names: Iterable[str] = (), services: Iterable[str] = ()) -> list[str]:
    """The words a password must not be built on: the broker, the services, places, the citizen."""
    words = [*BROKER_WORDS, *services, *_place_words(), *names]
    if email:
        local, _, domain = email.partition("@")
        words += [local, *re.split(r"[._+-]", local), domain.split(".")[0]]
    out = []
    for word in words:
        for part in [word, *re.split(r"[\s'’-]+", word)]:
            folded = fold(part)
            if len(folded) >= 3 and folded not in out:
                out.append(folded)
    return sorted(out, key=len, reverse=True)


def built_on_context(password: str, words: list[str]) -> bool:
    """True when the password is little more than context words with digits or repeated characters."""
    folded = fold(password)
    found = [w for w in words if w in folded]
    if not found:
        return False
    for word in found:
        folded = folded.replace(word, "")
    rest = re.sub(r"(.)\1+", r"\1", re.sub(r"\d+", "", folded))
    return len(rest) < 6


def check(password: str, *, email: str = "", names: Iterable[str] = (), services: Iterable[str] = ()) -> Verdict:
    length = effective_length(password)
    if length < MIN_LENGTH:
        return Verdict(False, 0, gettext("Le mot de passe doit contenir au moins %(min)d caractères "
                                         "(il en contient %(length)d).", min=MIN_LENGTH, length=length))
    if length > MAX_LENGTH or len(password) > 2 * MAX_LENGTH:
        return Verdict(False, 0, gettext("Le mot de passe doit contenir au plus %(max)d caractères.", max=MAX_LENGTH))
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") for c in password):
        return Verdict(False, 0, gettext("Le mot de passe contient un caractère invisible ou non imprimable "
                                         "(retour à la ligne, tabulation…)."))
    lowered = password.lower()
    core = re.sub(r"^[\W\d_]+|[\W\d_]+$", "", lowered)  # "Azerty123456!" is "azerty" with a common suffix
    if {lowered, lowered.replace(" ", ""), core} & common_passwords():
        return Verdict(False, 0, gettext("Ce mot de passe fait partie des plus courants : il serait deviné "
                                         "parmi les premiers. Choisissez-en un autre."))
    words = context_words(email=email, names=names, services=services)
    if built_on_context(password, words):
        return Verdict(False, 0, gettext("Ce mot de passe est construit sur un mot trop prévisible ici (votre nom, "
                                         "votre adresse électronique, un lieu de Nouvelle-Calédonie, le nom du "
                                         "service) : il serait facile à deviner."))
    result = _zxcvbn()(password[:ESTIMATE_LENGTH], user_inputs=words, max_length=ESTIMATE_LENGTH)
    score = int(result["score"])
    if score < MIN_SCORE:
        return Verdict(False, score, gettext("Ce mot de passe est trop facile à deviner. Allongez-le, par exemple "
                                             "avec une phrase de quatre ou cinq mots sans lien entre eux."))
    return Verdict(True, score)
