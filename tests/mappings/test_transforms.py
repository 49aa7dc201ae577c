"""Every transform of the closed set, on good and bad data."""

from __future__ import annotations

from datetime import date

import pytest

from mappings.transforms import (
    TRANSFORMS,
    TransformFailed,
    check_codes,
    check_formats,
    to_date,
)


def run(name: str, value, **options):
    transform = TRANSFORMS[name]
    return transform(value, {**transform.defaults(), **options})


def test_the_set_is_closed_and_complete():
    assert set(TRANSFORMS) == {
        "trim", "upper", "lower", "title", "collapse_spaces", "join_given_names", "first_given_name",
        "date", "gender", "commune_cog", "country_cog",
    }


@pytest.mark.parametrize("name, value, expected", [
    ("trim", "  Jean \u00a0", "Jean"),
    ("trim", [" a ", "b "], ["a", "b"]),
    ("upper", "Nouméa", "NOUMÉA"),
    ("lower", "J.Dupont@Example.NC", "j.dupont@example.nc"),
    ("collapse_spaces", "  Jean \t  Pierre\n", "Jean Pierre"),
    ("collapse_spaces", ["a  b", " c"], ["a b", "c"]),
])
def test_text_transforms(name, value, expected):
    assert run(name, value) == expected


@pytest.mark.parametrize("value, expected", [
    ("jean-pierre", "Jean-Pierre"),
    ("JEAN PIERRE", "Jean Pierre"),
    ("élodie", "Élodie"),
    ("MARIE-ÈVE", "Marie-Ève"),
    ("charles de gaulle", "Charles de Gaulle"),
    ("DE GAULLE", "De Gaulle"),
    ("jean de la fontaine", "Jean de La Fontaine"),
    ("valéry giscard d'estaing", "Valéry Giscard d'Estaing"),
    ("d'artagnan", "D'Artagnan"),
    ("n'diaye", "N'Diaye"),
    ("o’neil", "O’Neil"),
    ("FA'AOSO", "Fa'aoso"),  # a glottal stop, not an elision
    ("kaala-gomen", "Kaala-Gomen"),
])
def test_title_is_french_aware(value, expected):
    assert run("title", value) == expected


def test_title_applies_to_each_value_of_a_list():
    assert run("title", ["JEAN", "marie-claire"]) == ["Jean", "Marie-Claire"]


@pytest.mark.parametrize("value, expected", [
    (["Jean", "Pierre", "Marie"], "Jean Pierre Marie"),
    ([" Jean ", "", "Pierre  Paul"], "Jean Pierre Paul"),
    ("Jean  Pierre", "Jean Pierre"),
    ("Jean, Pierre,Marie", "Jean Pierre Marie"),
])
def test_join_given_names(value, expected):
    assert run("join_given_names", value) == expected


@pytest.mark.parametrize("value, expected", [
    (["Jean", "Pierre"], "Jean"),
    (["", " Marie-Claire "], "Marie-Claire"),
    ("Jean Pierre Marie", "Jean"),
    ("Marie-Claire, Anne", "Marie-Claire"),
])
def test_first_given_name(value, expected):
    assert run("first_given_name", value) == expected


@pytest.mark.parametrize("name", ["join_given_names", "first_given_name"])
def test_given_names_transforms_refuse_nothing(name):
    with pytest.raises(TransformFailed):
        run(name, [" ", ""])


FORMATS = ("%d/%m/%Y", "%Y%m%d", "%Y-%m-%d")


@pytest.mark.parametrize("value, expected", [
    ("25/12/1980", "1980-12-25"),
    ("19801225", "1980-12-25"),
    ("1980-12-25", "1980-12-25"),
    (" 5/1/1980 ", "1980-01-05"),
    (["29/02/2000"], "2000-02-29"),
])
def test_date_formats(value, expected):
    assert run("date", value, formats=FORMATS) == expected


@pytest.mark.parametrize("value", [
    "31/02/1980",   # impossible
    "29/02/1981",   # not a leap year
    "1980-13-01",
    "25-12-1980",   # no such format
    "1980111",      # 1 Nov or 11 Jan: not guessed
    "01/01/2999",   # in the future
    "01/01/1700",
    "yesterday",
])
def test_date_refuses_impossible_or_ambiguous_dates(value):
    with pytest.raises(TransformFailed):
        run("date", value, formats=FORMATS)


def test_date_defaults_to_iso_and_refuses_several_values():
    assert run("date", "1980-12-25") == "1980-12-25"
    with pytest.raises(TransformFailed, match="expected one value, got 2"):
        run("date", ["1980-12-25", "1981-01-01"])


def test_date_checks_against_today():
    with pytest.raises(TransformFailed):
        to_date("2020-01-02", ("%Y-%m-%d",), today=lambda: date(2020, 1, 1))


@pytest.mark.parametrize("fmt", ["%d/%m", "%d/%m/%y", "%d/%m/%Y %H", "%Y-%m-%d-%d", "plain", ""])
def test_bad_date_formats_are_refused(fmt):
    with pytest.raises(ValueError, match="bad date format"):
        check_formats([fmt])


def test_date_formats_option_shape():
    assert check_formats("%d/%m/%Y") == ("%d/%m/%Y",)
    for bad in ([], None, 3, [1]):
        with pytest.raises(ValueError):
            check_formats(bad)


@pytest.mark.parametrize("value, expected", [
    ("M", "male"), ("m", "male"), ("H", "male"), ("male", "male"), ("Homme", "male"),
    ("MASCULIN", "male"), ("1", "male"),
    ("F", "female"), ("female", "female"), ("femme", "female"), ("Féminin", "female"),
    ("FEMININ", "female"), ("2", "female"), ([" f "], "female"),
])
def test_gender(value, expected):
    assert run("gender", value) == expected


@pytest.mark.parametrize("value", ["X", "unspecified", "0", "9", "autre"])
def test_unknown_gender_fails(value):
    with pytest.raises(TransformFailed, match="unknown gender"):
        run("gender", value)


@pytest.mark.parametrize("value, expected", [
    ("Nouméa", "98818"), ("Noumea", "98818"), ("NOUMÉA", "98818"), (" nouméa ", "98818"),
    ("Mont Dore", "98817"), ("Le Mont-Dore", "98817"), ("MONT-DORE", "98817"),
    ("Ile des Pins", "98809"), ("L'Île-des-Pins", "98809"),
    ("Houailou", "98808"), ("PAÏTA", "98821"), ("La Foa", "98813"), ("Kaala Gomen", "98810"),
    ("98800", "98818"),   # Nouméa's postal code
    ("98818", "98818"),   # Nouméa's INSEE code (and Kouaoua's postal code: INSEE first by default)
    ("98859", "98811"),   # Koné's postal code
    ("75056", "75056"),   # another French commune's INSEE code, accepted as is
    ("2a004", "2A004"),
])
def test_commune_cog(value, expected):
    assert run("commune_cog", value) == expected


def test_commune_cog_codes_option_decides_overlapping_codes():
    assert run("commune_cog", "98818", codes=("postal",)) == "98833"   # Kouaoua
    assert run("commune_cog", "98818", codes=("insee",)) == "98818"    # Nouméa
    with pytest.raises(TransformFailed):
        run("commune_cog", "98800", codes=("insee",))
    with pytest.raises(TransformFailed):
        run("commune_cog", "75056", codes=("postal",))


@pytest.mark.parametrize("value", ["Port-Vila", "Paris", "98899", "12", "Nouméa-sur-Mer"])
def test_unknown_commune_fails(value):
    with pytest.raises(TransformFailed):
        run("commune_cog", value)


def test_commune_codes_option_shape():
    assert check_codes("postal") == ("postal",)
    for bad in ([], ["zip"], None):
        with pytest.raises(ValueError):
            check_codes(bad)


@pytest.mark.parametrize("value, expected", [
    ("France", "99100"), ("FR", "99100"), ("FRA", "99100"), ("fra", "99100"), ("99100", "99100"),
    ("Nouvelle-Calédonie", "99100"), ("nouvelle caledonie", "99100"), ("NC", "99100"), ("NCL", "99100"),
    ("New Caledonia", "99100"), ("Polynésie française", "99100"), ("WF", "99100"),
    ("Vanuatu", "99514"), ("VU", "99514"), ("VUT", "99514"),
    ("Australie", "99501"), ("Australia", "99501"), ("AUS", "99501"),
    ("Nouvelle-Zélande", "99502"), ("New Zealand", "99502"), ("NZ", "99502"),
    ("Fidji", "99508"), ("Fiji", "99508"), ("Wallis-et-Futuna", "99100"),
    ("Royaume-Uni", "99132"), ("United Kingdom", "99132"), ("GB", "99132"), ("Jersey", "99132"),
    ("États-Unis", "99404"), ("USA", "99404"), ("United States", "99404"),
    ("Allemagne", "99109"), ("Germany", "99109"), ("DEU", "99109"),
    ("Viet Nam", "99243"), ("Vietnam", "99243"), ("Japon", "99217"),
    ("Congo", "99324"), ("République démocratique du Congo", "99312"),
    ("Corée du Sud", "99239"), ("KR", "99239"),
    ("Tchécoslovaquie", "99115"),   # former countries keep their code
])
def test_country_cog(value, expected):
    assert run("country_cog", value) == expected


@pytest.mark.parametrize("value", ["Atlantide", "ZZ", "99999", "XYZ"])
def test_unknown_country_fails(value):
    with pytest.raises(TransformFailed, match="unknown country"):
        run("country_cog", value)
