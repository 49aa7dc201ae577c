"""Applying mappings: the shipped files on realistic samples, and the engine's rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mappings.engine import MappingResult, load_mapping, lookup

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"


def mapping(tmp_path: Path, body: str):
    path = tmp_path / "m.yaml"
    path.write_text(textwrap.dedent(body).lstrip("\n"), encoding="utf-8")
    return load_mapping(path)


FC_USERINFO = {
    "sub": "b6048e95bb134ec5b1d1e1fa69f287172e91722b9354d637a1bcf2ebb0fd2ef5v1",
    "given_name": "Angela Claire  Louise",
    "given_name_array": ["Angela", "Claire", "Louise"],
    "family_name": "DUBOIS",
    "birthdate": "1962-08-24",
    "gender": "female",
    "birthplace": "75107",
    "birthcountry": "99100",
    "email": " Wossewodda-3728@yopmail.com",
    "preferred_username": "",
}


def test_franceconnect_sample_gives_the_pivot_identity():
    result = load_mapping(SHIPPED / "franceconnect.yaml").apply(FC_USERINFO)
    assert result.ok, result.errors
    assert result.pivot == {
        "given_name": "Angela Claire Louise",
        "family_name": "DUBOIS",
        "birthdate": "1962-08-24",
        "gender": "female",
        "birthplace": "75107",
        "birthcountry": "99100",
        "email": "wossewodda-3728@yopmail.com",
    }
    assert result.trace["given_name"] == "given_name ← given_name | join_given_names, collapse_spaces"
    assert result.trace["preferred_username"] == "missing: none of preferred_username present"


def test_franceconnect_given_name_array_when_given_name_is_absent():
    sample = {**FC_USERINFO, "given_name": None}
    result = load_mapping(SHIPPED / "franceconnect.yaml").apply(sample)
    assert result.pivot["given_name"] == "Angela Claire Louise"
    assert result.trace["given_name"].startswith("given_name ← given_name_array |")


def test_franceconnect_person_born_in_new_caledonia():
    sample = {**FC_USERINFO, "birthplace": "98818", "birthcountry": "99100"}
    result = load_mapping(SHIPPED / "franceconnect.yaml").apply(sample)
    assert (result.pivot["birthplace"], result.pivot["birthcountry"]) == ("98818", "99100")


def test_franceconnect_person_born_abroad_has_an_empty_birthplace():
    sample = {**FC_USERINFO, "birthplace": "", "birthcountry": "99514"}
    result = load_mapping(SHIPPED / "franceconnect.yaml").apply(sample)
    assert result.ok, result.errors
    assert (result.pivot["birthplace"], result.pivot["birthcountry"]) == ("", "99514")
    assert "born abroad" in result.trace["birthplace"]


def test_franceconnect_missing_required_claims():
    result = load_mapping(SHIPPED / "franceconnect.yaml").apply({"email": "a@b.nc", "gender": "unspecified"})
    assert not result.ok
    assert result.errors["family_name"] == "required claim missing: none of family_name present"
    assert result.errors["given_name"] == "required claim missing: none of given_name, given_name_array present"
    assert "unknown gender" in result.errors["gender"]
    assert result.pivot == {"email": "a@b.nc"}


SAML = {
    "urn:oid:2.5.4.42": ["MARIE-CLAIRE", "anne"],
    "urn:oid:2.5.4.4": ["  Wamytan "],
    "urn:oid:0.9.2342.19200300.100.1.3": ["Marie.Wamytan@Gouv.NC"],
    "dateNaissance": "25/12/1980",
    "sexe": "F",
    "communeNaissance": "Nouméa",
    "paysNaissance": "France",
}


def test_saml_sample_born_in_noumea():
    result = load_mapping(SHIPPED / "saml-example.yaml").apply(SAML)
    assert result.ok, result.errors
    assert result.pivot == {
        "given_name": "Marie-Claire Anne",
        "family_name": "WAMYTAN",
        "birthdate": "1980-12-25",
        "gender": "female",
        "birthplace": "98818",
        "birthcountry": "99100",
        "email": "marie.wamytan@gouv.nc",
    }
    assert result.trace["birthplace"] == "birthplace ← communeNaissance | collapse_spaces, commune_cog"
    assert result.trace["email"] == "email ← urn:oid:0.9.2342.19200300.100.1.3 | trim, lower"


def test_saml_sample_born_in_vanuatu():
    sample = {**SAML, "communeNaissance": "Port-Vila", "paysNaissance": "Vanuatu"}
    result = load_mapping(SHIPPED / "saml-example.yaml").apply(sample)
    assert result.ok, result.errors  # Port-Vila is no commune, but nobody asks for one
    assert result.pivot["birthcountry"] == "99514"
    assert result.pivot["birthplace"] == ""
    assert result.trace["birthplace"] == 'birthplace = "" (born abroad: birthcountry 99514 ≠ 99100)'


def test_saml_sample_with_schac_attributes_and_country_code():
    sample = {k: v for k, v in SAML.items() if k not in ("dateNaissance", "sexe", "paysNaissance")}
    sample |= {"urn:oid:1.3.6.1.4.1.25178.1.2.3": "19801225", "urn:oid:1.3.6.1.4.1.25178.1.2.2": "2",
               "paysNaissance": "NCL", "communeNaissance": "98800"}
    result = load_mapping(SHIPPED / "saml-example.yaml").apply(sample)
    assert result.ok, result.errors
    assert (result.pivot["birthdate"], result.pivot["gender"]) == ("1980-12-25", "female")
    assert (result.pivot["birthplace"], result.pivot["birthcountry"]) == ("98818", "99100")


def test_saml_bad_data_gives_errors_not_exceptions():
    sample = {**SAML, "dateNaissance": "31/02/1980", "sexe": "?", "communeNaissance": "Atlantis"}
    result = load_mapping(SHIPPED / "saml-example.yaml").apply(sample)
    assert set(result.errors) == {"birthdate", "gender", "birthplace"}
    assert "'31/02/1980' is not a date" in result.errors["birthdate"]
    assert result.trace["birthdate"].startswith("failed: birthdate ← dateNaissance | trim, date → date:")
    assert "birthdate" not in result.pivot and result.pivot["given_name"] == "Marie-Claire Anne"


def test_local_mapping_passes_declared_attributes_through():
    attributes = {"given_name": "Jean", "family_name": "Dupont", "birthdate": "1980-12-25", "gender": "male",
                  "birthcountry": "99134", "email": "jean@example.nc", "email_verified": True}
    result = load_mapping(SHIPPED / "local.yaml").apply(attributes)
    assert result.ok
    assert result.pivot == {"given_name": "Jean", "family_name": "Dupont", "birthdate": "1980-12-25",
                            "gender": "male", "birthplace": "", "birthcountry": "99134", "email": "jean@example.nc"}


def test_first_present_non_empty_source_wins(tmp_path):
    m = mapping(tmp_path, """
        family_name: {from: [nom_usage, nom, sn]}
    """)
    result = m.apply({"nom_usage": "   ", "nom": ["", None], "sn": "Kasarhérou"})
    assert result.pivot == {"family_name": "Kasarhérou"}
    assert result.trace["family_name"] == "family_name ← sn"


def test_dotted_paths_and_names_with_dots(tmp_path):
    m = mapping(tmp_path, """
        birthplace: {from: [birth.place.code, "urn:oid:2.5.4.7"], transform: [commune_cog]}
        given_name: {from: ["urn:oid:2.5.4.42"]}
    """)
    result = m.apply({"birth": {"place": {"code": "98817"}}, "urn:oid:2.5.4.42": "Jean"})
    assert result.pivot == {"given_name": "Jean", "birthplace": "98817"}
    result = m.apply({"birth": {"place": "x"}, "urn:oid:2.5.4.7": "Voh"})
    assert result.pivot == {"birthplace": "98831"}


def test_lookup():
    attrs = {"address": {"locality": "Koné"}, "a.b": {"c": 1}, "urn:oid:2.5.4.4": "X"}
    assert lookup(attrs, "address.locality") == "Koné"
    assert lookup(attrs, "a.b.c") == 1
    assert lookup(attrs, "urn:oid:2.5.4.4") == "X"
    missing = lookup(attrs, "nope")
    assert missing is not None
    assert lookup(attrs, "address.country") is missing
    assert lookup(attrs, "address.locality.x") is missing


def test_default_is_used_when_no_source_is_present(tmp_path):
    m = mapping(tmp_path, """
        birthcountry: {from: [pays], transform: [country_cog], default: '99100'}
    """)
    result = m.apply({})
    assert result.pivot == {"birthcountry": "99100"}
    assert result.trace["birthcountry"] == "birthcountry ← default '99100' (none of pays present)"
    assert m.apply({"pays": "Japon"}).pivot == {"birthplace": "", "birthcountry": "99217"}


def test_required_claim_missing(tmp_path):
    m = mapping(tmp_path, """
        email: {from: [mail, courriel], required: true}
    """)
    result = m.apply({"mail": ""})
    assert not result.ok
    assert result.errors == {"email": "required claim missing: none of mail, courriel present"}
    assert result.trace["email"] == "missing (required): none of mail, courriel present"
    assert result.trace["given_name"] == "not mapped"
    assert set(result.trace) == {"given_name", "family_name", "birthdate", "gender", "birthplace",
                                 "birthcountry", "email", "preferred_username"}


def test_values_are_checked_against_the_pivot_schema(tmp_path):
    m = mapping(tmp_path, """
        gender: {from: [sexe]}
        birthdate: {from: [naissance]}
        birthplace: {from: [commune]}
        email: {from: [mail]}
    """)
    result = m.apply({"sexe": "M", "naissance": "25/12/1980", "commune": "Nouméa", "mail": "not-an-address"})
    assert result.errors == {
        "gender": "'M' must be male or female",
        "birthdate": "'25/12/1980' must be YYYY-MM-DD",
        "birthplace": "'Nouméa' must be a 5-character INSEE COG commune code, or \"\" for people born abroad",
        "email": "'not-an-address' is not an e-mail address",
    }
    assert result.pivot == {}


def test_several_values_left_for_a_single_claim_is_an_error(tmp_path):
    m = mapping(tmp_path, """
        given_name: {from: [prenoms], transform: [title]}
    """)
    result = m.apply({"prenoms": ["jean", "pierre"]})
    assert "expected one value, got 2" in result.errors["given_name"]
    assert m.apply({"prenoms": ["jean"]}).pivot == {"given_name": "Jean"}


@pytest.mark.parametrize("bad", [{"x": 1}, [["a"]], object()])
def test_unsupported_values_are_errors(tmp_path, bad):
    m = mapping(tmp_path, """
        family_name: {from: [nom]}
    """)
    result = m.apply({"nom": bad})
    assert "unsupported value" in result.errors["family_name"]


def test_numbers_are_read_as_text(tmp_path):
    m = mapping(tmp_path, """
        gender: {from: [sexe], transform: [gender]}
        birthplace: {from: [commune], transform: [commune_cog]}
    """)
    assert m.apply({"sexe": 2, "commune": 98818}).pivot == {"gender": "female", "birthplace": "98818"}


def test_born_abroad_rule_overrides_birthplace_even_when_unmapped(tmp_path):
    m = mapping(tmp_path, """
        birthcountry: {from: [pays], transform: [country_cog]}
    """)
    result = m.apply({"pays": "Wallis-et-Futuna"})
    assert result.pivot == {"birthcountry": "99100"}  # French territory: no birthplace invented
    result = m.apply({"pays": "Australie"})
    assert result.pivot == {"birthplace": "", "birthcountry": "99501"}
    assert list(result.pivot) == ["birthplace", "birthcountry"]


def test_born_abroad_rule_clears_a_birthplace_error(tmp_path):
    m = mapping(tmp_path, """
        birthplace: {from: [commune], transform: [commune_cog], required: true}
        birthcountry: {from: [pays], transform: [country_cog], required: true}
    """)
    result = m.apply({"commune": "Suva", "pays": "Fidji"})
    assert result.ok and result.pivot == {"birthplace": "", "birthcountry": "99508"}
    result = m.apply({"pays": "Fidji"})
    assert result.ok and result.pivot["birthplace"] == ""
    result = m.apply({"commune": "Suva", "pays": "France"})
    assert "unknown commune 'Suva'" in result.errors["birthplace"]


def test_apply_never_raises(tmp_path):
    m = load_mapping(SHIPPED / "saml-example.yaml")
    for attributes in ({}, {"sexe": None}, {"urn:oid:2.5.4.42": []}, {"dateNaissance": 12.5},
                       {"paysNaissance": {"code": "FR"}}, {"communeNaissance": [1, 2]}):
        result = m.apply(attributes)
        assert isinstance(result, MappingResult) and not result.ok
