"""`hilt` (the installed command), `python -m hilt` and `python cli.py` start here: the signal
handlers first (see shutdown.py), then the command line, so that a Ctrl-C while it loads is one
clean stop too."""

import sys

from hilt import shutdown


def main() -> None:
    """Install the shutdown's handlers, load the command line and run it."""
    shutdown.install()
    try:
        from hilt.cli import main as command_line
    except BaseException as err:
        if not shutdown.interrupted(err):
            raise
        sys.stderr.write("interrupted: stopped before anything was written\n")
        sys.exit(shutdown.exit_code())
    command_line()


if __name__ == "__main__":
    main()
