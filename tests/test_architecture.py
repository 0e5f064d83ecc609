"""docs/architecture.md is the map of the package: every module of src/mlpcli is on it, and
everything on it exists."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "mlpcli"
MAP = ROOT / "docs" / "architecture.md"


def _modules() -> set[str]:
    """Every module of the package, as `engine/network.py`; package markers left out."""
    return {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" or path.parent == PACKAGE
    }


def _mapped() -> set[str]:
    """The modules the map's table names, one a row."""
    return set(re.findall(r"(?m)^\| `([\w/]+\.py)` \|", MAP.read_text(encoding="utf-8")))


def test_every_module_is_on_the_map() -> None:
    missing = _modules() - _mapped()
    assert not missing, f"add these to docs/architecture.md: {sorted(missing)}"


def test_the_map_names_only_modules_that_exist() -> None:
    gone = _mapped() - _modules()
    assert not gone, f"docs/architecture.md names modules that are not there: {sorted(gone)}"


def test_every_package_is_a_layer_of_the_contract() -> None:
    """A new subpackage gets a place in the layers contract, and a row on the map."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        contracts = tomllib.load(file)["tool"]["importlinter"]["contracts"]
    (layers,) = [contract["layers"] for contract in contracts if contract["type"] == "layers"]
    layered = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    text = MAP.read_text(encoding="utf-8")
    for package in (p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        assert f"mlpcli.{package.name}" in layered, package.name
        assert f"| **`{package.name}/`** |" in text, package.name
