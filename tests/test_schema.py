"""What the field table produces: the committed JSON Schema, the README's field table and the
starter config stay equal to it (`pytest --overwrite-golden` rewrites the first two)."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import yaml

from mlpcli.loading import schema
from mlpcli.loading.loader import load
from mlpcli.model.config import FIELDS, KNOWN_KEYS

from .catalogue import BAD_CONFIG_FILES
from .conftest import ROOT

SCHEMA_FILE = ROOT / "schema" / "config.schema.json"
README = ROOT / "README.md"
TABLE = re.compile(r"(<!-- fields: begin -->\n)(.*?)(<!-- fields: end -->)", re.DOTALL)


def test_the_committed_schema_is_the_generated_one(overwrite_golden: bool) -> None:
    if overwrite_golden:
        SCHEMA_FILE.write_text(schema.schema_text())
    assert SCHEMA_FILE.read_text() == schema.schema_text()


def test_the_readme_field_table_is_the_generated_one(overwrite_golden: bool) -> None:
    text = README.read_text()
    if overwrite_golden:
        text = TABLE.sub(lambda m: m[1] + schema.field_table() + m[3], text)
        README.write_text(text)
    found = TABLE.search(text)
    assert found is not None, "README.md has lost its <!-- fields: begin/end --> markers"
    assert found[2] == schema.field_table()


def test_every_field_is_in_each_product() -> None:
    properties = schema.json_schema()["properties"]
    assert isinstance(properties, dict)
    assert list(properties) == list(KNOWN_KEYS)
    table = schema.field_table()
    starter = schema.starter_yaml()
    for spec in FIELDS:
        assert f"| `{spec.name}` |" in table
        assert f"\n{spec.name}: {spec.example}\n" in starter


def test_the_starter_config_is_valid_and_uses_every_field(tmp_path: Path) -> None:
    path = tmp_path / "starter.yaml"
    path.write_text(schema.starter_yaml())
    config = load(path)
    assert config.name == "my_network"
    assert config.to_dict().keys() == set(KNOWN_KEYS)


CANNOT = re.compile(r"<!-- schema cannot: begin -->\n(.*?)<!-- schema cannot: end -->", re.DOTALL)


def test_the_schema_refuses_each_bad_config_but_those_the_readme_lists() -> None:
    checker = jsonschema.Draft202012Validator(schema.json_schema())
    accepted: dict[str, list[str]] = {}
    for case in BAD_CONFIG_FILES:
        try:
            data = yaml.safe_load(case.text)
        except (yaml.YAMLError, ValueError):
            continue  # not YAML to PyYAML (or a number it will not read): no schema sees it
        if checker.is_valid(data):
            assert case.schema_cannot, f"the schema accepts {case.text!r}, and no reason is given"
            accepted.setdefault(case.schema_cannot, []).append(str(case.text))
        else:
            assert not case.schema_cannot, f"the schema refuses {case.text!r} after all"
    found = CANNOT.search(README.read_text())
    assert found is not None
    assert re.findall(r"^- \*\*(.+?)\*\*:", found[1], re.MULTILINE) == list(accepted)
