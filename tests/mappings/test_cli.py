"""``nc-connect mappings try PROVIDER SAMPLE.json``."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from broker import app as broker_app
from broker.cli import main
from broker.config import Config
from tests.conftest import write_config


@pytest.fixture
def config_dir(tmp_path):
    return write_config(tmp_path / "config", database_url="sqlite:///b.db")


def run(config_dir, *args):
    return CliRunner().invoke(main, ["--config", str(config_dir), "mappings", "try", *args])


def sample(tmp_path, attributes) -> str:
    path = tmp_path / "sample.json"
    path.write_text(json.dumps(attributes), encoding="utf-8")
    return str(path)


def test_try_prints_pivot_and_trace(config_dir, tmp_path):
    attrs = {"given_name": "Jean Pierre", "family_name": "Dupont", "birthdate": "1980-12-25", "gender": "male",
             "birthplace": "98818", "birthcountry": "99100", "email": "jp@example.nc"}
    result = run(config_dir, "local", sample(tmp_path, attrs))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Pivot identity (local, mappings/local.yaml):" in out
    assert re.search(r"^  given_name +\"Jean Pierre\"$", out, re.MULTILINE)
    assert re.search(r"^  birthplace +\"98818\"$", out, re.MULTILINE)
    assert "Trace:" in out
    assert re.search(r"^  given_name +given_name ← given_name$", out, re.MULTILINE)
    assert re.search(r"^  preferred_username +missing: none of preferred_username present$", out, re.MULTILINE)


def test_try_shows_born_abroad_rule(config_dir, tmp_path):
    result = run(config_dir, "local", sample(tmp_path, {"birthcountry": "99514", "given_name": "Tom"}))
    assert result.exit_code == 0, result.output
    assert re.search(r'^  birthplace +""$', result.stdout, re.MULTILINE)
    assert 'birthplace = "" (born abroad: birthcountry 99514 ≠ 99100)' in result.stdout


def test_try_fails_on_errors(config_dir, tmp_path):
    result = run(config_dir, "local", sample(tmp_path, {"gender": "F", "birthdate": "25/12/1980"}))
    assert result.exit_code == 1
    assert "2 error(s):" in result.stderr
    assert "'F' must be male or female" in result.stderr
    assert "failed: birthdate ← birthdate → '25/12/1980' must be YYYY-MM-DD" in result.stdout


def test_try_fails_when_a_required_claim_is_missing(config_dir, tmp_path, monkeypatch):
    mappings_dir = tmp_path / "mappings"
    mappings_dir.mkdir()
    (mappings_dir / "local.yaml").write_text("email:\n  from: [mail]\n  required: true\n")
    monkeypatch.setattr(broker_app, "MAPPINGS_DIR", mappings_dir)
    monkeypatch.setattr(Config, "mappings_dir", property(lambda self: mappings_dir))
    result = run(config_dir, "local", sample(tmp_path, {"email": "x@y.nc"}))
    assert result.exit_code == 1
    assert "required claim missing: none of mail present" in result.stderr


def test_try_reports_an_invalid_mapping_file_with_its_line(config_dir, tmp_path, monkeypatch):
    mappings_dir = tmp_path / "mappings"
    mappings_dir.mkdir()
    (mappings_dir / "local.yaml").write_text("given_name:\n  from: [given_name]\n  transform: [trim, shout]\n")
    monkeypatch.setattr(broker_app, "MAPPINGS_DIR", mappings_dir)
    monkeypatch.setattr(Config, "mappings_dir", property(lambda self: mappings_dir))
    result = run(config_dir, "local", sample(tmp_path, {}))
    assert result.exit_code == 2
    assert "unknown transform 'shout'" in result.output
    assert re.search(r"local\.yaml:\s*(line )?3:", result.output), result.output


def test_try_unknown_provider_or_bad_sample(config_dir, tmp_path):
    result = run(config_dir, "nope", sample(tmp_path, {}))
    assert result.exit_code == 2 and "unknown identity source 'nope'; known: local" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = run(config_dir, "local", str(bad))
    assert result.exit_code == 2 and "expected a JSON object" in result.stderr
    bad.write_text("{oops")
    result = run(config_dir, "local", str(bad))
    assert result.exit_code == 2 and "invalid JSON" in result.stderr
