"""Shared fixtures: config files on disk, the golden-output switch, the installed console script."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from rich.console import Console, RenderableType

from mlpcli.cli import run_app

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
TWO_LAYER = str(CONFIGS / "two_layer.yaml")
NOTEBOOK_TENSORS = ["features", "W1", "W2", "B1", "B2", "h1", "output"]
# Inside a GitHub Actions job `run --expect` adds an annotation line to its error: the tests
# that count stderr's lines run as anywhere else (tests/test_ci.py sets it where it checks it).
os.environ.pop("GITHUB_ACTIONS", None)

# Hypothesis: `ci` (the default) keeps the suite quick on 2 cores; `deep` searches for longer
# (HYPOTHESIS_PROFILE=deep pytest tests/test_fuzz.py), before a release or after a loader change.
_FIXTURES_PER_CALL = [HealthCheck.function_scoped_fixture]  # tmp_path is only written to
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=_FIXTURES_PER_CALL
)
settings.register_profile(
    "deep", max_examples=20_000, deadline=None, suppress_health_check=_FIXTURES_PER_CALL
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`mlpcli ARGS` in this process, 100 columns wide: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.update({"COLUMNS": "100", **(env or {})})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run_app(args)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--overwrite-golden",
        action="store_true",
        help="Rewrite tests/golden/*.txt from the current output instead of comparing.",
    )


@pytest.fixture
def overwrite_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--overwrite-golden"))


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write YAML text (or bytes) to a file in a fresh folder and return its path."""

    def write(text: str | bytes, name: str = "net.yaml") -> Path:
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    return write


def rendered(renderable: RenderableType, width: int = 100) -> str:
    """What a plain (no colour, no terminal) console `width` wide prints."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, highlight=False).print(renderable)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def mlpcli_script() -> str:
    """The `mlpcli` console script installed beside this Python."""
    script = shutil.which("mlpcli", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("mlpcli is not installed beside this Python: run the README's install command")
    return script


@pytest.fixture
def start_up_s() -> float:
    """The floor of a timed test, taken in the test: the seconds this machine takes now to start
    a Python that imports torch and mlpcli. A limit on how fast mlpcli answers allows this much
    more, so that a busy machine (where everything is that much slower) cannot fail it, while a
    wait the limit was written against (minutes) still does."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, mlpcli.cli"], check=True)
    return time.perf_counter() - start


@pytest.fixture(autouse=True, scope="session")
def _signals_at_their_defaults() -> None:
    """The tests send signals to the processes they start, which inherit this process's
    dispositions, and mlpcli keeps ignoring a signal it was started ignoring (nohup's SIGHUP,
    a background job's SIGINT and SIGQUIT): whatever started the suite, they start with the
    defaults."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGQUIT, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
