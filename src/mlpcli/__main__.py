"""`python -m mlpcli` and the `mlpcli` console script."""

import sys


def main() -> None:
    """Import the application, then run it; Ctrl-C during the imports is one line and 130 too."""
    try:
        from mlpcli.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("mlpcli: error: interrupted\n")
        raise SystemExit(130) from None
    run()


if __name__ == "__main__":
    main()
