"""Signals sent to a real `mlpcli run -o FILE` at random moments of its run, most of them while
its output is written: what each try ended with, and how long the process took to end.

    python scripts/signal-trials.py [--tries 50] [--suffix .csv] [--nproc N]

Each try replaces an existing output; the outcome must be one of: the signal's code with one
line and the old file kept, or the signal's code with a line saying the file was written in
full (and the new file in place), or exit 0 when the signal came after the process had ended
(never exit 0 with the signal delivered). docs/reliability.md gives the figures.
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
OLD = b"old\n"


def one_try(
    run: list[str], folder: Path, suffix: str, signum: signal.Signals, delay: float
) -> tuple[str, float]:
    """The outcome of one try, and the seconds from the signal to the end."""
    target = folder / f"out{suffix}"
    target.write_bytes(OLD)
    command = [*run, "-o", str(target)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(delay)
    sent = time.perf_counter()
    delivered = process.poll() is None
    if delivered:
        process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    took = time.perf_counter() - sent
    line = err.decode()
    left = sorted(p.name for p in folder.iterdir() if p.name != target.name)
    kept = target.read_bytes() == OLD
    if left:
        return f"temporary left ({left})", took
    if not delivered:
        return "ended before the signal", took
    if process.returncode == 0 and not line and not kept:
        return "exit 0, no line, new file (the signal came as the process ended)", took
    if process.returncode == CODES[signum] and line.count("\n") == 1:
        if "written in full" in line and not kept:
            return "code, 'written in full', new file", took
        if "written in full" not in line and kept:
            return "code, one line, old file kept", took
    return f"WRONG: exit {process.returncode}, {line.strip()!r}, old file kept: {kept}", took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=50)
    parser.add_argument("--suffix", default=".csv")
    parser.add_argument("--nproc", type=int, default=1, help="over N ranks (parallel: data)")
    arguments = parser.parse_args()
    mlpcli = shutil.which("mlpcli", path=str(Path(sys.executable).parent)) or "mlpcli"
    run = [mlpcli, "run", "batch=400000", "-q"]
    if arguments.nproc > 1:
        run += ["--nproc", str(arguments.nproc), "parallel=data"]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        start = time.perf_counter()
        trial = folder / f"t{arguments.suffix}"
        subprocess.run([*run, "-o", str(trial)], check=True)
        whole = time.perf_counter() - start
        trial.unlink()
        print(f"a run takes {whole:.2f} s; signals sent between 40% and 105% of that")
        rng = random.Random(0)
        for signum in CODES:
            outcomes: collections.Counter[str] = collections.Counter()
            times = []
            for _ in range(arguments.tries):
                delay = rng.uniform(0.4, 1.05) * whole
                outcome, took = one_try(run, folder, arguments.suffix, signum, delay)
                outcomes[outcome] += 1
                if outcome != "ended before the signal":
                    times.append(took)
            print(f"{signum.name}: {dict(outcomes)}")
            if times:
                median, longest = statistics.median(times), max(times)
                print(f"  ended {median:.2f} s after the signal (median), {longest:.2f} s at most")


if __name__ == "__main__":
    main()
