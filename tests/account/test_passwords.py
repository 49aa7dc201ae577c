"""The password policy itself (checklist D-01..D-03), without HTTP: length first, any printable
Unicode, no composition rules, common and context passwords refused, a strength estimate."""

from __future__ import annotations

import pytest

from broker.passwords import MAX_LENGTH, MIN_LENGTH, check, common_passwords, effective_length

CONTEXT = {"email": "jean.pierre.kabar@example.nc", "names": ["Jean Pierre", "Kabar"], "services": ["Service Alpha"]}


def test_length_is_counted_after_collapsing_spaces():
    assert effective_length("a  b   c") == 5
    assert not check("ab  cd  ef  g").ok  # 13 typed, 10 once collapsed
    assert check("la mer est calme ce matin").ok


@pytest.mark.parametrize("length,ok", [(MIN_LENGTH - 1, False), (MIN_LENGTH, True), (64, True),
                                       (MAX_LENGTH, True), (MAX_LENGTH + 1, False)])
def test_length_limits(length, ok):
    base = "Gx7#pQ2m!vR9kW4z" * 10
    assert check(base[:length]).ok is ok, length


def test_no_composition_rules_any_printable_unicode():
    assert check("cinq petits mots tout simples").ok  # lower case letters and spaces only
    assert check("🐢🌺☀️🌊🐠🥥🍍🌴🏝️⛵").ok  # emoji only
    assert check("Ματαιότης ματαιοτήτων").ok  # any script
    assert check("pâté de campagne à Païta").ok


@pytest.mark.parametrize("password", ["ligne\nsuivante 123", "tabulation\tici 12", "nul\x00caractère 12"])
def test_control_characters_are_refused(password):
    verdict = check(password)
    assert not verdict.ok and "non imprimable" in verdict.message


def test_the_common_list_holds_the_top_passwords():
    common = common_passwords()
    assert len(common) > 40_000  # well beyond the top 3,000 (D-03)
    assert {"123456", "password", "azerty", "qwerty123456", "1qaz2wsx3edc"} <= common


@pytest.mark.parametrize("password", ["qwerty123456", "1qaz2wsx3edc", "QWERTY123456", "Azerty123456!",
                                      "iloveyou1234", "password1234", "123456789012"])
def test_breached_and_common_passwords_are_refused(password):
    verdict = check(password)
    assert not verdict.ok and verdict.score <= 2


@pytest.mark.parametrize("password", ["Kabar1985Kabar", "jean.pierre.kabar1985", "JeanPierre2024!",
                                      "NC Connect 2026!", "ncconnect123456", "Service Alpha 2024",
                                      "Nouvelle-Calédonie 2024", "Nouméa Nouméa 98800"])
def test_context_words_are_refused(password):
    verdict = check(password, **CONTEXT)
    assert not verdict.ok and "trop prévisible" in verdict.message, verdict


def test_context_words_inside_a_long_phrase_are_fine():
    assert check("la famille Kabar pêche le picot à Lifou", **CONTEXT).ok


@pytest.mark.parametrize("password", ["azertyuiopqsdf", "aaaaaaaaaaaaaaaa", "abcdefghijklmnop",
                                      "jetaimejetaime", "motdepassemotdepasse"])
def test_guessable_passwords_are_refused_by_the_estimate(password):
    assert not check(password).ok


def test_the_password_is_not_modified():
    """Verified as typed: the policy never hands back a changed password (nothing to trim or fold)."""
    verdict = check("  Deux espaces devant et derrière  ")
    assert verdict.ok
