"""mlpcli in the CI a user has (docs/ci.md): JUnit XML read back by a JUnit reader library,
GitHub annotations and GitLab's code quality report, the pre-commit hook run as pre-commit
runs it, and the documented workflows checked against the schemas GitHub and GitLab publish.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT, invoke

junitparser = pytest.importorskip("junitparser")
TWO_LAYER = str(ROOT / "configs" / "two_layer.yaml")
BAD = "layers: [3, 2]\nactivation: relux\n"  # line 2, column 13: the value


def cases(path: Path) -> list[tuple[str, str, str | None, str]]:
    """Each test case of a JUnit file, read by junitparser: (classname, name, outcome, message)
    with outcome None for a pass, else "failure" or "error"."""
    read = []
    for suite in junitparser.JUnitXml.fromfile(str(path)):
        for case in suite:
            results = list(case.result)
            outcome = None
            message = ""
            if results:
                outcome = "failure" if isinstance(results[0], junitparser.Failure) else "error"
                message = results[0].message or ""
            read.append((case.classname, case.name, outcome, message))
    return read


def test_validate_writes_a_case_per_file_and_keeps_its_exit_code(tmp_path: Path) -> None:
    bad, report = tmp_path / "bad.yaml", tmp_path / "report.xml"
    bad.write_text(BAD)
    files = [TWO_LAYER, str(bad), str(tmp_path / "missing.yaml")]
    code, out, _ = invoke("validate", *files)
    assert (code, *invoke("validate", *files, "--junit-xml", str(report))[:2]) == (2, 2, out)
    read = cases(report)
    assert [(name, outcome) for _, name, outcome, _ in read] == [
        (TWO_LAYER, None),
        (str(bad), "failure"),
        (str(tmp_path / "missing.yaml"), "error"),
    ]
    assert read[1][3].startswith(f"{bad}:2:13: activation: unknown activation 'relux'")
    xml = junitparser.JUnitXml.fromfile(str(report))
    assert (xml.tests, xml.failures, xml.errors) == (3, 1, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "report.xml"]


def test_run_writes_a_case_per_network_with_expect(tmp_path: Path) -> None:
    report = tmp_path / "run.xml"
    expected = "0.3170831501483917"  # the notebook's output, seed 7
    code, _, err = invoke(
        "run", TWO_LAYER, "-m", "seed=7,8", "--expect", expected, "-q", "--junit-xml", str(report)
    )
    assert code == 1, err
    read = cases(report)
    assert [(c, n, o) for c, n, o, _ in read] == [
        ("mlpcli run", "two_layer seed=7", None),
        ("mlpcli run", "two_layer seed=8", "failure"),
    ]
    assert "output differs from --expect 0.3170831501483917" in read[1][3]
    code, _, _ = invoke("run", TWO_LAYER, "-q", "--junit-xml", str(report))
    assert code == 0
    assert cases(report) == [("mlpcli run", "two_layer", None, "")]


def test_a_run_that_cannot_start_is_an_error_case(tmp_path: Path) -> None:
    report = tmp_path / "run.xml"
    code, _, err = invoke("run", "layers=[3,x]", "name=\x1b[31m", "--junit-xml", str(report))
    assert code == 2
    ((_, name, outcome, message),) = cases(report)  # the escape is written as text
    said = err.strip().removeprefix("mlpcli: error: ")  # the escape shown as text there too
    assert (outcome, message) == ("error", said)
    assert name == "layers=[3,x] name=\\x1b[31m"


def test_a_report_that_would_replace_an_input_is_refused_unwritten(tmp_path: Path) -> None:
    report = tmp_path / "x.xml"
    report.write_text("<keep/>")
    code, _, err = invoke("run", f"inputs={report}", "--junit-xml", str(report))
    assert code == 2
    assert "--junit-xml" in err
    assert "is also an input" in err
    assert report.read_text() == "<keep/>"
    code, _, err = invoke("run", "--junit-xml", str(tmp_path / "report.json"))
    assert code == 2
    assert "use one of .xml" in err


def test_compare_and_export_write_their_case(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    code, _, err = invoke("compare", TWO_LAYER, "--devices", "cpu,cpu", "--junit-xml", str(report))
    assert code == 0, err
    assert cases(report) == [("mlpcli compare", TWO_LAYER, None, "")]
    model = tmp_path / "m.safetensors"
    code, _, err = invoke(
        "export", TWO_LAYER, "-o", str(model), "--verify", "--junit-xml", str(report)
    )
    assert code == 0, err
    assert cases(report) == [(f"mlpcli export {model}", TWO_LAYER, None, "")]


def test_validate_annotates_github_and_gitlab_at_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [3, 2]\nname: 50%, said\nactivation: relux\n")
    code, out, _ = invoke("validate", TWO_LAYER, str(bad), "--format", "github")
    assert code == 1
    assert out == (
        f"::error file={bad},line=3,col=13,title=mlpcli validate::activation: unknown "
        "activation 'relux' (did you mean 'relu'?); one of: sigmoid, relu, tanh, gelu, silu, "
        "leaky_relu, elu, softplus, softmax, identity\n"
    )
    bad.write_text("layers: [3, 2]\nname: '50%\n  two'\nseed: -1\n")
    _, out, _ = invoke("validate", str(bad), "--format", "github")
    assert re.fullmatch(rf"::error file={bad},line=4,col=7,title=mlpcli validate::seed: .*\n", out)
    code, out, _ = invoke("validate", str(bad), TWO_LAYER, "--format", "gitlab")
    assert code == 1
    (issue,) = json.loads(out)
    assert issue["location"] == {"path": str(bad), "lines": {"begin": 4}}
    assert issue["check_name"] == "mlpcli-validate"
    assert issue["description"].startswith("seed: ")


def test_a_workflow_message_is_escaped_as_githubs_toolkit_escapes_it() -> None:
    from mlpcli.report import problems

    assert problems._data("50%\r\nnext") == "50%25%0D%0Anext"
    assert problems._property("a:b,c%") == "a%3Ab%2Cc%25"


def test_the_pre_commit_hook_runs_as_pre_commit_runs_it(tmp_path: Path, mlpcli_script: str) -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert {"id", "name", "entry", "language"} <= set(hook)
    assert (hook["id"], hook["language"]) == ("mlpcli-validate", "python")
    pattern = re.compile(hook["files"])
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    picked = [name for name in tracked if pattern.search(name)]
    assert picked
    assert all(name.startswith("configs/") for name in picked)
    assert not pattern.search(".github/workflows/ci.yml")
    entry = hook["entry"].split()
    assert entry[0] == "mlpcli"
    done = subprocess.run(  # pre-commit appends the staged files that `files` matches
        [mlpcli_script, *entry[1:], *hook.get("args", []), *picked],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    bad = tmp_path / "configs" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text(BAD)
    assert pattern.search(str(bad.relative_to(tmp_path)))
    done = subprocess.run(
        [mlpcli_script, *entry[1:], str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert f"{bad}:2:13: activation" in done.stdout


def _documented(heading_file: str) -> str:
    """The YAML block of docs/ci.md whose first line names `heading_file`."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "ci.md").read_text(), re.S)
    (block,) = [b for b in blocks if b.startswith(f"# {heading_file}\n")]
    return str(block)


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        (".github/workflows/mlpcli.yml", "vendor.github-workflows"),
        (".gitlab-ci.yml", "vendor.gitlab-ci"),
    ],
)
def test_the_documented_ci_files_are_valid(tmp_path: Path, name: str, schema: str) -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    if not checker.exists():
        pytest.skip("check-jsonschema is not installed")
    path = tmp_path / Path(name).name
    path.write_text(_documented(name))
    done = subprocess.run(
        [str(checker), "--builtin-schema", schema, str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    commands = yaml.safe_load(path.read_text())
    text = json.dumps(commands)
    assert "mlpcli validate --format" in text
    assert "--junit-xml" in text


def test_expect_failures_are_annotated_on_their_golden_line_in_github_actions(
    tmp_path: Path,
) -> None:
    golden = tmp_path / "golden.csv"
    sweep = (TWO_LAYER, "-m", "seed=7,8", "-q")
    assert invoke("run", *sweep, "-f", "csv", "-o", str(golden))[0] == 0
    lines = golden.read_text().splitlines()  # a header, then a row per network
    lines[2] = lines[2].rsplit(",", 1)[0] + ",0.5"  # seed 8's row, line 3
    golden.write_text("\n".join(lines) + "\n")
    github = {"GITHUB_ACTIONS": "true"}
    code, out, err = invoke("run", *sweep, "--expect", str(golden), env=github)
    assert (code, out) == (1, "")
    annotation, said = err.splitlines()
    assert annotation.startswith(
        f"::error file={golden},line=3,title=mlpcli run --expect::two_layer: output differs"
    )
    assert said.startswith("mlpcli: error: two_layer: output differs")
    code, _, err = invoke("run", *sweep, "--expect", str(golden), env={"GITHUB_ACTIONS": ""})
    assert code == 1
    assert "::error" not in err  # elsewhere, the one line
