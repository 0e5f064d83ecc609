"""The signal watcher in a real process, as the console script runs it: a run stuck in a C call
is ended within a second and its temporary file removed; a signal while a finished file is
renamed into place waits for the rename, then ends the command saying the file was written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

STUCK = """
import sys, threading
from pathlib import Path
from mlpcli import interrupts
interrupts.watch()
temporary = Path(sys.argv[1])
with interrupts.writing(temporary):
    temporary.write_text("partial")
    print("ready", flush=True)
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()  # blocks in C for good: only the watcher can end this process
"""

RENAMING = """
import os, sys, time
from mlpcli import cli
replace = os.replace
def slow_replace(source, target):
    print("renaming", flush=True)
    time.sleep(1.5)  # the signal comes now
    replace(source, target)
os.replace = slow_replace
sys.argv = ["mlpcli", "run", "-q", "-o", sys.argv[1]]
cli.main()
"""


def start(script: str, path: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.readline()  # ready, or renaming
    time.sleep(0.3)  # into the blocking call
    return process


def test_a_run_stuck_in_c_ends_within_a_second_and_removes_its_temporary(
    tmp_path: Path, start_up_s: float
) -> None:
    temporary = tmp_path / ".out.json.1.abcd.tmp"
    process = start(STUCK, temporary)
    sent = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (143, "mlpcli: error: terminated\n")
    assert time.perf_counter() - sent < 2 + start_up_s  # a busy machine: a start-up more
    assert not temporary.exists()


def test_a_signal_while_the_finished_file_is_renamed_ends_the_command_once_it_is_in_place(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    process = start(RENAMING, target)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, out) == (130, "")
    assert err == f"mlpcli: error: interrupted; {target} was written in full before\n"
    assert target.read_text().startswith('{"schema":"mlpcli.run/')
    assert [path.name for path in tmp_path.iterdir()] == ["out.json"]


def test_two_signals_give_one_line(tmp_path: Path) -> None:
    process = start(STUCK, tmp_path / ".x.tmp")
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (130, "mlpcli: error: interrupted\n")
