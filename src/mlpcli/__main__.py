"""`python -m mlpcli` and the `mlpcli` console script."""

import os
import signal
import sys


def main() -> None:
    """Import the application, then run it; Ctrl-C, SIGTERM or SIGHUP during the imports is
    one line and 130, 143 or 129 too (the application's own watcher takes over once imported)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) != signal.SIG_IGN:  # nohup's SIGHUP stays ignored
            signal.signal(signum, _terminated)
    # torch's C++ log lines (Gloo's, c10d's) say what mlpcli says in one line of its own
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    try:
        from mlpcli.cli import main as run
    except KeyboardInterrupt:
        from mlpcli.interrupts import voiced  # light: the standard library and errors

        if voiced(signal.SIGINT):  # a launcher's ranks leave it to it, or to rank 0
            sys.stderr.write("mlpcli: error: interrupted\n")
        raise SystemExit(130) from None
    run()


def _terminated(signum: int, frame: object) -> None:
    try:
        from mlpcli.interrupts import MESSAGES, SIGNALS, voiced  # light: the standard library
    except Exception:  # the signal came as that very module was being imported
        os._exit(128 + signum)
    if voiced(signum):  # a launcher's ranks: it says why they ended
        os.write(2, f"mlpcli: error: {MESSAGES[signal.Signals(signum)]}\n".encode())
    os._exit(SIGNALS[signal.Signals(signum)])


if __name__ == "__main__":
    main()
