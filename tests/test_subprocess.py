"""The installed `mlpcli` as a user's shell runs it: real processes, real files, real pipes."""

from __future__ import annotations

import itertools
import json
import math
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpcli import interrupts

from .conftest import CONFIGS, ROOT, TWO_LAYER


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return subprocess.run(
        command, capture_output=True, text=True, env={**environment, **(env or {})}, timeout=120
    )


def test_installed_script_runs_the_notebook(mlpcli_script: str) -> None:
    done = run(mlpcli_script, "run", TWO_LAYER)
    assert done.returncode == 0, done.stderr
    assert "0.3171" in done.stdout
    assert "\x1b[" not in done.stdout  # piped: no ANSI escape codes
    done = run(mlpcli_script, "run", TWO_LAYER, "--format", "json")
    assert json.loads(done.stdout)["output"] == [[0.3170831501483917]]


def test_python_dash_m(mlpcli_script: str) -> None:
    done = run(sys.executable, "-m", "mlpcli", "shapes", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total_params"] == 11


def test_error_is_one_line_and_no_traceback(mlpcli_script: str, tmp_path: object) -> None:
    done = run(mlpcli_script, "run", "missing.yaml")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "mlpcli: error: missing.yaml: no such file\n"
    done = run(mlpcli_script, "run", "device=cuda:7")
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_no_color_even_when_forced_to_a_terminal(mlpcli_script: str) -> None:
    forced = run(mlpcli_script, "shapes", env={"FORCE_COLOR": "1"})
    assert "\x1b[" in forced.stdout  # the control: Rich styles when it believes it has a terminal
    plain = run(mlpcli_script, "shapes", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in plain.stdout


PROBE = """
import atexit, os, sys
loaded = lambda: ("torch" in sys.modules, "numpy" in sys.modules)
say = lambda: print("imported: %s %s" % loaded(), file=sys.stderr, flush=True)
atexit.register(say)
end_now = os._exit  # a process that imported torch ends at once, without atexit
os._exit = lambda code: (say(), end_now(code))
from mlpcli.cli import main
sys.argv = ["mlpcli", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(
    ("args", "imports_torch"),
    [
        (["--help"], False),
        (["run", "--help"], False),
        (["shapes", TWO_LAYER], False),
        (["shapes", "layers=[100000, 100000, 10]", "-f", "json"], False),
        (["validate", *map(str, sorted(CONFIGS.glob("*.yaml")))], False),
        (["run", "missing.yaml"], False),
        (["config", "show", TWO_LAYER], False),
        (["config", "schema"], False),
        (["draw", TWO_LAYER], False),
        (["draw", TWO_LAYER, "device=auto"], False),  # no run: `auto` is left unsettled
        (["run", TWO_LAYER], True),  # the control: the probe does see torch when it is imported
    ],
)
def test_fast_commands_never_import_torch_or_numpy(args: list[str], imports_torch: bool) -> None:
    done = run(sys.executable, "-c", PROBE, *args)
    assert f"imported: {imports_torch} {imports_torch}" in done.stderr, done.stderr


@pytest.mark.parametrize("args", [["--help"], ["config", "--help"]])
def test_help_is_plain_and_skips_typers_markdown_support(args: list[str]) -> None:
    probe = PROBE.replace('"numpy" in sys.modules', '"rich.markdown" in sys.modules')
    done = run(sys.executable, "-c", probe, *args)
    assert "imported: False False" in done.stderr, done.stderr


def test_package_metadata_names_the_console_script() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'mlpcli = "mlpcli.__main__:main"' in text


# A bfloat16 product of this size runs for tens of seconds on 2 cores, inside one torch call.
LONG_RUN = ["layers=[16384, 16384]", "batch=16384", "dtype=bfloat16"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "after", "code", "line"),
    [
        (signal.SIGINT, 8.0, 130, "interrupted"),  # inside the product: the draw takes ~5 s here
        (signal.SIGTERM, 3.0, 143, "terminated"),
        (signal.SIGHUP, 3.0, 129, "hung up"),  # the terminal closed
    ],
)
def test_a_signal_mid_run_ends_it_at_once_with_one_line_and_no_file(
    tmp_path: Path,
    mlpcli_script: str,
    signum: signal.Signals,
    after: float,
    code: int,
    line: str,
    start_up_s: float,
) -> None:
    out = tmp_path / "results.json"
    out.write_text("old")
    process = subprocess.Popen(
        [mlpcli_script, "run", *LONG_RUN, "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(after)
    sent = time.perf_counter()
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    took = time.perf_counter() - sent
    *notes, last = err.splitlines()
    assert (process.returncode, last) == (code, f"mlpcli: error: {line}")
    assert all(note.startswith("mlpcli: note: default: about") for note in notes), notes
    # it was minutes; mlpcli allows 0.5 s, and a busy machine a start-up more
    assert took < 2 + start_up_s, f"{took:.1f} s after the signal ({start_up_s:.1f} s allowed)"
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]
    assert out.read_text() == "old"


@pytest.mark.slow
@pytest.mark.parametrize(("ranks", "started_s"), [([], 3.0), (["--nproc", "2"], 8.0)])
def test_a_signal_it_was_started_ignoring_stays_ignored(
    tmp_path: Path, mlpcli_script: str, ranks: list[str], started_s: float
) -> None:
    """`nohup mlpcli run ...`: the terminal's hangup does not end it (it ended with 129), nor
    its ranks (the launcher passes on only the signals it was not started ignoring)."""
    process = subprocess.Popen(
        [mlpcli_script, "run", *LONG_RUN, *ranks, "-o", str(tmp_path / "results.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # as nohup starts it
    )  # fmt: skip
    time.sleep(started_s)  # into the run
    process.send_signal(signal.SIGHUP)
    time.sleep(1.0)  # mlpcli ends within 0.5 s of a signal it takes
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err.splitlines()[-1]) == (143, "mlpcli: error: terminated")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "line"),
    [
        (signal.SIGHUP, 129, "mlpcli: error: hung up"),
        *((signum, -signum, None) for signum in interrupts.FATAL),  # ends as the signal does
    ],
)
def test_a_signal_while_the_output_is_written_leaves_no_temporary(
    tmp_path: Path, mlpcli_script: str, signum: signal.Signals, code: int, line: str | None
) -> None:
    out = tmp_path / "results.json"
    out.write_text("old")
    process = subprocess.Popen(
        [mlpcli_script, "run", "layers=[2, 2048]", "batch=2048", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(p.suffix == ".tmp" for p in tmp_path.iterdir()):  # the write has begun
        assert time.monotonic() < deadline, "no write seen within a minute"
        assert process.poll() is None, "it ended before writing"
        time.sleep(0.01)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code
    if line is not None:
        assert err.splitlines()[-1] == line
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]
    assert out.read_text() == "old"


@pytest.mark.slow
def test_readme_scripting_example_runs(tmp_path: Path, mlpcli_script: str) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Scripting and CI", 1)[1]
    script = section.split("```bash\n", 1)[1].split("```", 1)[0]
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    path = f"{Path(mlpcli_script).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": path},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "large_bf16 has 268468224 parameters" in done.stdout
    assert "[3,2]" in done.stdout
    assert json.loads((tmp_path / "environment.json").read_text())["schema"] == "mlpcli.env/1"


def test_ctrl_c_while_importing_is_one_line_too() -> None:
    probe = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, *_):\n"
        "        if name == 'mlpcli.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from mlpcli.__main__ import main\n"
        "main()\n"
    )
    done = run(sys.executable, "-c", probe)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "mlpcli: error: interrupted\n")


@pytest.mark.parametrize(
    ("env", "printed"),
    [
        ({"_MLPCLI_COMPLETE": "complete_bash", "COMP_WORDS": "mlpcli sh", "COMP_CWORD": "1"},
         "shapes"),
        ({"_MLPCLI_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "mlpcli run --fu"},
         '"--full"'),
    ],
)  # fmt: skip
def test_shell_completion_completes_commands_and_options(
    mlpcli_script: str, env: dict[str, str], printed: str
) -> None:
    done = subprocess.run(
        [mlpcli_script], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert printed in done.stdout


def test_readme_error_example_runs_as_written(tmp_path: Path, mlpcli_script: str) -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("$ printf", 1)[1].split("\n$ mlpcli run layer", 1)[0]
    lines = ("$ printf" + block).splitlines()
    commands = [line[2:] for line in lines if line.startswith("$ ")]
    expected = [line for line in lines if not line.startswith("$ ")]
    path = f"{Path(mlpcli_script).parent}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", "-c", "\n".join(commands)], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PATH": path}, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert (done.stdout + done.stderr).splitlines() == expected


@pytest.mark.parametrize("args", [["--help"], ["shapes"], ["run"], ["config", "--help"]])
def test_no_deprecation_warnings_from_the_framework(mlpcli_script: str, args: list[str]) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"}
    done = subprocess.run(
        [mlpcli_script, *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "columns"),
    [(["layers=[3,40]"], 120), ([str(CONFIGS / "deep_relu.yaml"), "device=cpu"], 80)],
)
def test_full_shows_every_value_whole(mlpcli_script: str, args: list[str], columns: int) -> None:
    env = {**os.environ, "COLUMNS": str(columns)}
    table = subprocess.run(
        [mlpcli_script, "run", *args, "--full"], capture_output=True, text=True, env=env, timeout=60
    ).stdout
    output = json.loads(
        subprocess.run(
            [mlpcli_script, "run", *args, "-f", "json"], capture_output=True, text=True
        ).stdout
    )["output"]
    assert all(len(line) <= columns for line in table.splitlines())
    body = table.split("output (", 1)[1]
    cells = [line.split() for line in body.splitlines() if re.match(r" *\d+  ", line)]
    shown = sorted(float(cell) for row in cells for cell in row[1:])
    values = sorted(v for row in output for v in row)
    assert len(shown) == len(values)
    for seen, value in zip(shown, values, strict=True):  # 4 decimals, or 5 significant digits
        assert math.isclose(seen, value, rel_tol=1e-4, abs_tol=5e-5)
        assert seen != 0 or value == 0  # a nonzero value never shows as zero


def test_shapes_never_cuts_a_number_and_says_what_it_left_out(mlpcli_script: str) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [mlpcli_script, "shapes", "layers=[100000,100000,10]"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    assert all(len(line) <= 80 for line in done.stdout.splitlines())
    assert "…" not in done.stdout
    for text in ("100000 → 100000", "100000×100000", "10.00 G", "20.00 G", "1×100000"):
        assert text in done.stdout
    assert re.search(r"^ *# ", done.stdout, re.MULTILINE)  # the layer numbers stay
    assert done.stderr == (
        "mlpcli: note: left out the layers table's columns output to fit 80 columns "
        "(a wider COLUMNS, or --format json or csv: everything)\n"
    )


def test_shapes_of_1024_layers_shows_the_ends_and_says_so(mlpcli_script: str) -> None:
    sizes = ",".join(str(64 + i % 7) for i in range(1025))
    done = subprocess.run(
        [mlpcli_script, "shapes", f"layers=[{sizes}]"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert re.search(r"^1024 ", done.stdout, re.MULTILINE)
    assert "h1023" in done.stdout
    assert "batch 1\n" in done.stdout  # a header's pairs are never split
    assert done.stderr == (
        "mlpcli: note: showing 20 of 1024 rows of layers (--format json: every one)\n"
        "mlpcli: note: showing 20 of 3073 rows of tensors (--format json: every one)\n"
    )


@pytest.mark.parametrize(
    ("args", "env", "threads"),
    [
        (["threads=1"], {}, 1),
        ([], {"MLPCLI_THREADS": "1"}, 1),
        (["threads=2"], {"MLPCLI_THREADS": "1"}, 2),
    ],
)
def test_threads_from_the_config_or_the_environment(
    mlpcli_script: str, args: list[str], env: dict[str, str], threads: int
) -> None:
    command = [mlpcli_script, "bench", "-n", "1", "--warmup", "0", "-f", "json", *args]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["threads"] == threads


def test_a_bad_thread_count_names_the_variable(mlpcli_script: str) -> None:
    env = {**os.environ, "MLPCLI_THREADS": "0"}
    done = subprocess.run(
        [mlpcli_script, "run"], capture_output=True, text=True, env=env, timeout=60
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr == "mlpcli: error: environment MLPCLI_THREADS=0: threads: must be >= 1, got 0\n"
    )
    shown = subprocess.run(
        [mlpcli_script, "env", "--field", "MLPCLI_THREADS"], capture_output=True, text=True, env=env
    )
    assert shown.stdout == "0\n"


@pytest.mark.slow
def test_a_long_run_says_how_long_first(mlpcli_script: str) -> None:
    # 35 TFLOP in bfloat16: a minute or more on a CPU; the note comes before the draw begins
    huge = ["layers=[16384, 16384, 16384]", "batch=32768", "dtype=bfloat16", "device=cpu"]
    process = subprocess.Popen(
        [mlpcli_script, "run", *huge], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    note = process.stderr.readline()
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    process.wait(timeout=60)
    assert re.fullmatch(
        r"mlpcli: note: default: about [0-9.]+ (s|min|h) on cpu "
        r"\(35\.19 TFLOP at [0-9.]+ [GMT]?FLOP/s, measured here\); Ctrl-C stops it\n",
        note,
    ), note
    assert (process.returncode, rest) == (130, "mlpcli: error: interrupted\n")


@pytest.mark.slow
def test_a_run_of_more_than_a_second_shows_progress_on_a_terminal(mlpcli_script: str) -> None:
    # 206 GFLOP on one thread: seconds on any CPU, so that the bar (after 1 s) must show
    args = ["layers=[2048, 2048, 2048, 2048]", "batch=8192", "threads=1", "-q"]
    code, screen = _terminal(
        [mlpcli_script, "run", *args], {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    )
    assert code == 0
    assert b"running default" in screen
    plain = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", screen)
    shown = re.findall(rb"(\d+)% (\d:\d\d:\d\d), (\S+) left", plain)
    assert shown, screen[-500:]
    percent, _, left = shown[0]  # the first frame, shown after 1 s, before a layer is done
    assert left != b"-:--:--"  # counted down from the measured estimate
    assert int(shown[-1][0]) > int(percent)


def _terminal(
    command: list[str], env: dict[str, str], columns: int | None = None
) -> tuple[int, bytes]:
    """`command` run in a pseudo-terminal (`columns` wide where given): its exit code and all
    it showed, read as it runs so that the terminal never fills up."""
    import fcntl
    import termios

    controller, terminal = pty.openpty()
    if columns is not None:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    screen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                screen += os.read(controller, 65536)
            except OSError:  # the child closed the terminal
                break
        elif process.poll() is not None:
            break
    os.close(controller)
    return process.wait(timeout=120), screen


# What a new user tripped over, through the installed command: (shell line, exit code, a regex
# that stdout and stderr together must match). {mlpcli} is the script; runs in a fresh folder.
NEWCOMER = [
    ("{mlpcli} run dtype=float16 activation=identity 'layers=[512,512,512,512,4]' batch=2 -f json",
     0, r'"-Infinity"'),
    ("{mlpcli} validate {two_layer} -f json", 0, r'"mlpcli.validate/1","path":.*"ok":true'),
    ("{mlpcli} config show {two_layer} -f json", 0, r'"mlpcli.config/1","name":"two_layer"'),
    ("{mlpcli} shapes --help", 0, r"total_params, layers\.0\.params"),
    ("{mlpcli} run -m seed=1,2 -f csv", 0, r"^name,seed,output_0\ndefault,1,[0-9.]+\ndefault,2,"),
    ("{mlpcli} run -m seed=1,2 seed=3 --field overrides", 2,
     r"override 'seed=3': seed is given twice"),
    ("cat {two_layer} | {mlpcli} run -", 2, r"`-` is for the features: inputs=-"),
    ("{mlpcli} help run", 0, r"^Usage: mlpcli run \[OPTIONS\]"),
    ("{mlpcli} run batch=3000 --full | head -3", 0, r"^default  seed 7"),
    ("{mlpcli} run {two_layer} -q -o g.json && {mlpcli} run --expect g.json", 2,
     r"g\.json holds the output of network 'two_layer', not of 'default'"),
    ("{mlpcli} -V && {mlpcli} run -q", 0, r"^mlpcli \d+\.\d+\.\d+\n$"),
    ("umask 022 && {mlpcli} run -q -o new.json && stat -c %a new.json", 0, r"^644\n$"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "code", "pattern"), NEWCOMER)
def test_newcomer_fixes_through_the_installed_command(
    tmp_path: Path, mlpcli_script: str, line: str, code: int, pattern: str
) -> None:
    command = line.format(mlpcli=f"'{mlpcli_script}'", two_layer=f"'{TWO_LAYER}'")
    done = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == code, done.stderr
    assert re.search(pattern, done.stdout + done.stderr, re.MULTILINE), done.stdout + done.stderr


@pytest.mark.slow
def test_a_24_mib_csv_runs_in_under_1_gb(tmp_path: Path, mlpcli_script: str) -> None:
    """Text features are parsed straight into NumPy: 4 million rows of `0,0,0` (24 MiB) took
    1.3 GB when every cell was a Python string first; the whole run now peaks near 0.5 GB."""
    features = tmp_path / "x.csv"
    features.write_text("0,0,0\n" * ((24 << 20) // 6))
    code, peak = _exit_and_peak(
        mlpcli_script, "run", f"inputs={features}", "-o", str(tmp_path / "out.npy")
    )
    assert code == 0
    assert peak < 1 << 30, f"{peak / 2**30:.2f} GiB"


@pytest.mark.slow
@pytest.mark.parametrize("shown", [["-f", "json"], ["--full"]])
def test_every_value_of_two_million_rows_holds_the_output_not_its_text(
    tmp_path: Path, mlpcli_script: str, shown: list[str]
) -> None:
    """`-f json` made every output row a Python list and the whole text a string, `--full`
    every value's text and Rich every line before it printed: 2 million rows of one output (8
    MB as float32) peaked at 737 MB and 1.6 GB; each is now made a block of rows at a time
    from the output array."""
    import numpy as np

    features = tmp_path / "x.npy"
    np.save(features, np.zeros((2_000_000, 3), np.float32))
    code, peak = _exit_and_peak(mlpcli_script, "run", f"inputs={features}", *shown)
    assert code == 0
    assert peak < 500 << 20, f"{peak / 2**20:.0f} MiB"


@pytest.mark.slow
def test_a_run_of_drawn_features_holds_a_chunk_of_activations(mlpcli_script: str) -> None:
    """A million drawn rows through a 256-wide layer: the whole batch's activations (1 GB
    each) peaked at 1.37 GB; the forward now takes chunks of 128 MiB of them (the features,
    64 MB, are held)."""
    code, peak = _exit_and_peak(mlpcli_script, "run", "layers=[16,256,16]", "batch=1000000")
    assert code == 0
    assert peak < 900 << 20, f"{peak / 2**20:.0f} MiB"


def _exit_and_peak(*command: str) -> tuple[int, int]:
    """The exit code of `command`, its output thrown away, and its peak resident bytes."""
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(done.returncode, peak)\n"
    )
    code, peak = map(int, run(sys.executable, "-c", probe, *command).stdout.split())
    return code, peak


def test_a_nan_in_an_npy_is_located_at_inputs(tmp_path: Path) -> None:
    import numpy as np

    features = np.zeros((5, 3))
    features[3, 1] = np.nan
    np.save(tmp_path / "x.npy", features)
    done = run(sys.executable, "-m", "mlpcli", "run", f"inputs={tmp_path / 'x.npy'}")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"mlpcli: error: override 'inputs={tmp_path / 'x.npy'}': inputs: {tmp_path / 'x.npy'}: "
        "row 3, column 1: nan is not finite"
    ]


def _on_a_terminal(mlpcli_script: str, columns: int, *args: str) -> list[str]:
    """The lines `mlpcli ARGS` shows in a terminal `columns` wide (no COLUMNS set)."""
    environment = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    _, screen = _terminal(
        [mlpcli_script, *args], {**environment, "TERM": "xterm", "NO_COLOR": "1"}, columns
    )
    return screen.decode().replace("\r\n", "\n").splitlines()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["run", "configs/deep_relu.yaml", "--stats"],
        ["run", "-m", "layers=[3,8,2],[784,256,10]", "activation=relu,tanh", "--stats"],
        ["shapes", "configs/deep_relu.yaml"],
        ["shapes", "configs/large_bf16.yaml", "parallel=tensor", "--nproc", "4"],
        ["bench", "configs/deep_relu.yaml", "device=cpu", "-n", "2"],
        ["bench", "-m", "batch=1,16", "dtype=float32,bfloat16", "-n", "2"],
        ["bench", "-m", "layers=[3,4,1],[3,40,40,1]", "dtype=float32,bfloat16", "-n", "2"],
        ["compare", "configs/deep_relu.yaml", "--devices", "cpu,cpu", "dtype=float64"],
        ["validate", "configs/deep_relu.yaml", "configs/large_bf16.yaml"],
        ["env"],
    ],
)
@pytest.mark.parametrize("columns", [60, 40])
def test_no_line_is_wider_than_the_terminal_and_nothing_is_cut(
    mlpcli_script: str, args: list[str], columns: int
) -> None:
    lines = _on_a_terminal(
        mlpcli_script, columns, *(str(ROOT / a) if a.startswith("configs/") else a for a in args)
    )
    assert lines
    # A path is never broken (a reader copies it): only a line that is one word may run past.
    wide = [line for line in lines if len(line) > columns and len(line.split()) > 1]
    assert not wide, lines
    cut = [line for line in lines if re.search(r"[^\s…]…|…[^\s…]", line)]
    assert not cut  # Rich's sign of a cell cut short; mlpcli's own … stands alone
    rates = [line for line in lines if re.search(r"\d (?:[kMGT])?FLOP/s", line)]
    assert all(re.search(r"\d(?: [kMGT])?FLOP/s *$", line) for line in rates), rates


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "layer=[3,2]"], "mlpcli: error: override 'layer=[3,2]': unknown key 'layer'"),
        (["run", "parallel=data"], "mlpcli: note: parallel: data (override 'parallel=data')"),
    ],
)
def test_notes_and_errors_wrap_at_words_to_the_terminal(
    mlpcli_script: str, args: list[str], said: str
) -> None:
    lines = _on_a_terminal(mlpcli_script, 60, *args)
    assert all(len(line) <= 60 for line in lines), [line for line in lines if len(line) > 60]
    start = next(i for i, line in enumerate(lines) if line.startswith("mlpcli: "))
    rest = itertools.takewhile(lambda line: line.startswith("  "), lines[start + 1 :])
    message = [lines[start], *rest]
    assert len(message) > 1  # wrapped
    joined = " ".join(line.strip() for line in message)
    assert joined.startswith(said)
    piped = run(mlpcli_script, *args)  # piped: the same words on one line
    assert joined in piped.stderr.splitlines()


def test_a_terminal_of_no_width_leaves_lines_whole(mlpcli_script: str) -> None:
    """A pty that reports 0 columns (`script`, some containers): notes and errors are one line
    each, not a traceback."""
    environment = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    code, screen = _terminal([mlpcli_script, "run", "layer=[3,2]"], environment, columns=0)
    lines = screen.decode().replace("\r\n", "\n").splitlines()
    assert code == 2
    assert lines == [
        "mlpcli: error: override 'layer=[3,2]': unknown key 'layer' (did you mean 'layers'?); "
        "known keys: name, seed, layers, activation, device, dtype, batch, init, bias, chunk, "
        "rng, threads, inputs, input_columns, input_header, input_orient, weights, "
        "weights_order, batchnorm, parallel, timeout"
    ]


def test_draw_on_a_terminal_says_where_the_picture_goes(mlpcli_script: str) -> None:
    code, screen = _terminal([mlpcli_script, "draw", TWO_LAYER], dict(os.environ))
    assert code == 2
    assert b"draw makes an SVG picture" in screen
    assert b"<svg" not in screen
    code, screen = _terminal([mlpcli_script, "draw", TWO_LAYER, "-f", "mermaid"], dict(os.environ))
    assert code == 0
    assert b"flowchart" in screen  # a chart to paste reads on a terminal
