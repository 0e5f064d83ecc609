"""The code and tests cite this repository's documents, and what they cite is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import ROOT

SOURCES = sorted(
    path
    for folder in ("src", "tests", "benchmarks", "scripts")
    for path in (ROOT / folder).rglob("*")
    if path.suffix in (".py", ".sh")
)
CITATION = re.compile(r"(docs/[a-z_]+\.md) section (\d+)")


def test_every_cited_section_exists() -> None:
    cited = {
        (match[1], match[2]) for path in SOURCES for match in CITATION.finditer(path.read_text())
    }
    assert ("docs/contract.md", "2") in cited  # the seeded draw is cited where it is built
    for document, section in sorted(cited):
        text = (ROOT / document).read_text()
        assert re.search(rf"^## {section}\. ", text, re.MULTILINE), (
            f"{document} has no section {section}"
        )


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_nothing_cites_a_file_outside_the_repository(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"\bSPEC\.md\b|\bSPEC section\b|\.\./shared/|STYLE\.md", text)


def test_no_text_advises_installing_the_unrelated_pypi_mlpcli() -> None:
    """`mlpcli` on PyPI is another project: extras are installed from the checkout."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *SOURCES]
    for path in texts:
        text = path.read_text()
        assert not re.search(r"pip install ['\"]?mlpcli\b(?!-yaml)", text), path


def test_every_install_hint_names_the_packages_pyproject_gives_its_extra() -> None:
    """A missing optional package's line says `pip install <the extra's packages>`: the same
    packages as pyproject.toml's extra, in its order."""
    import tomllib

    from mlpcli.errors import EXTRAS, install_hint

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = declared["optional-dependencies"]
    for extra, packages in EXTRAS.items():
        names = tuple(
            re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0] for requirement in extras[extra]
        )
        assert packages == names, extra
        assert install_hint(extra).startswith(f"pip install {' '.join(names)} (")
    assert set(EXTRAS) == set(extras) - {"dev"}
