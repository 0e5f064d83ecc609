"""`python -m mlpcli` and the `mlpcli` console script."""

import os
import signal
import sys


def main() -> None:
    """Import the application, then run it; Ctrl-C or SIGTERM during the imports is one line
    and 130 or 143 too (the application's own watcher takes over once it is imported)."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        from mlpcli.cli import main as run
    except KeyboardInterrupt:
        from mlpcli.interrupts import voiced  # light: the standard library and errors

        if voiced(signal.SIGINT):  # a launcher's ranks leave it to it, or to rank 0
            sys.stderr.write("mlpcli: error: interrupted\n")
        raise SystemExit(130) from None
    run()


def _terminated(signum: int, frame: object) -> None:
    if "RANK" not in os.environ:  # a launcher's ranks: the launcher says why it ended them
        os.write(2, b"mlpcli: error: terminated\n")  # (interrupts.voiced, not yet imported)
    os._exit(143)


if __name__ == "__main__":
    main()
