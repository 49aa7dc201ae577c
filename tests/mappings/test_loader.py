"""Broken mapping files are refused with the file and the line of the offending key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mappings.engine import Mapping, MappingError, load_mapping

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(textwrap.dedent(body).lstrip("\n"), encoding="utf-8")
    return path


def error_of(tmp_path: Path, body: str) -> MappingError:
    path = write(tmp_path, body)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    err = caught.value
    assert err.file == str(path)
    assert str(err) == f"{path}:{err.line}: {err.message}"
    return err


@pytest.mark.parametrize("name", ["local.yaml", "franceconnect.yaml", "saml-example.yaml"])
def test_each_shipped_mapping_file_loads(name):
    mapping = load_mapping(SHIPPED / name)
    assert isinstance(mapping, Mapping)
    assert {"given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"} <= set(mapping.rules)


def test_every_yaml_file_under_mappings_loads():
    files = sorted(SHIPPED.glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        load_mapping(path)


def test_unknown_transform_names_its_line(tmp_path):
    err = error_of(tmp_path, """
        given_name:
          from: [prenoms]
          transform:
            - trim
            - shout
        family_name: {from: [nom]}
    """)
    assert err.line == 5
    assert "unknown transform 'shout'" in err.message and "join_given_names" in err.message


def test_unknown_transform_in_flow_list(tmp_path):
    err = error_of(tmp_path, """
        family_name: {from: [nom]}
        given_name: {from: [prenoms], transform: [trim, capitalise]}
    """)
    assert err.line == 2 and "capitalise" in err.message


def test_unknown_pivot_claim(tmp_path):
    err = error_of(tmp_path, """
        given_name: {from: [prenoms]}

        shoe_size: {from: [pointure]}
    """)
    assert err.line == 3
    assert "unknown pivot claim 'shoe_size'" in err.message and "birthcountry" in err.message


def test_unknown_rule_key(tmp_path):
    err = error_of(tmp_path, """
        given_name:
          from: [prenoms]
          template: "{{ prenoms }}"
    """)
    assert err.line == 3 and "unknown key 'template'" in err.message


def test_bad_yaml(tmp_path):
    err = error_of(tmp_path, """
        given_name:
          from: [prenoms
        family_name: {from: [nom]}
    """)
    assert err.line in (3, 4)
    assert err.message.startswith("invalid YAML")


def test_tab_indentation_is_bad_yaml(tmp_path):
    err = error_of(tmp_path, "given_name:\n\tfrom: [prenoms]\n")
    assert err.line == 2 and "invalid YAML" in err.message


def test_bad_date_format(tmp_path):
    err = error_of(tmp_path, """
        given_name: {from: [prenoms]}
        birthdate:
          from: [naissance]
          transform:
            - date:
                formats: ["%d/%m/%Y", "%d/%m"]
    """)
    assert err.line == 6 and "bad date format '%d/%m'" in err.message


def test_unknown_transform_option(tmp_path):
    err = error_of(tmp_path, """
        birthdate:
          from: [naissance]
          transform: [{date: {formats: ["%d/%m/%Y"], lenient: true}}]
    """)
    assert err.line == 3 and "no option 'lenient'" in err.message


def test_bad_commune_codes_option(tmp_path):
    err = error_of(tmp_path, """
        birthplace:
          from: [commune]
          transform:
            - commune_cog: {codes: [zip]}
    """)
    assert err.line == 4 and "codes" in err.message


def test_duplicate_claim(tmp_path):
    err = error_of(tmp_path, """
        given_name: {from: [a]}
        family_name: {from: [b]}
        given_name: {from: [c]}
    """)
    assert err.line == 3 and "duplicate key 'given_name'" in err.message


@pytest.mark.parametrize("body, line, words", [
    ("given_name: {from: []}\n", 1, "must not be empty"),
    ("given_name: {from: [a, 3]}\n", 1, "non-empty string"),
    ("given_name: {transform: [trim]}\n", 1, "needs 'from'"),
    ("given_name: prenoms\n", 1, "expected a rule"),
    ("given_name:\n  from: [a]\n  required: yes please\n", 3, "true or false"),
    ("birthcountry:\n  from: [pays]\n  default: 99100\n", 3, "quoted string"),
    ("birthcountry:\n  from: [pays]\n  default: 'France'\n", 3, "COG country code"),
    ("gender:\n  from: [sexe]\n  default: 'M'\n", 3, "male or female"),
    ("- given_name\n", 1, "maps pivot claims"),
    ("", 1, "empty mapping file"),
    ("given_name:\n  from: [a]\n  transform: [{date: {formats: [x]}, trim: null}]\n", 3, "transform"),
])
def test_other_mistakes(tmp_path, body, line, words):
    err = error_of(tmp_path, body)
    assert err.line == line
    assert words in err.message


def test_defaults_and_options_are_kept(tmp_path):
    path = write(tmp_path, """
        birthcountry:
          from: [pays]
          transform: [country_cog]
          default: '99100'
          required: true
        birthplace:
          from: [commune]
          transform: [{commune_cog: {codes: [postal]}}]
    """)
    rules = load_mapping(path).rules
    assert rules["birthcountry"].default == "99100" and rules["birthcountry"].required
    assert rules["birthplace"].steps[0].options == {"codes": ("postal",)}


def test_missing_file(tmp_path):
    with pytest.raises(MappingError, match="no such mapping file"):
        load_mapping(tmp_path / "nope.yaml")


def test_mapping_error_is_not_a_broker_error():
    """Dependencies point from broker to mappings, never back."""
    assert MappingError.__mro__[1] is Exception
    err = MappingError("mappings/x.yaml", 7, "unknown transform 'shout'")
    assert (err.file, err.line, err.message) == ("mappings/x.yaml", 7, "unknown transform 'shout'")
    assert str(err) == "mappings/x.yaml:7: unknown transform 'shout'"
