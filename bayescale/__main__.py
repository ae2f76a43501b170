"""``python -m bayescale``: the command line (exit codes in :mod:`bayescale.cli.main`)."""

import os
import sys

try:
    from bayescale.cli import main
except KeyboardInterrupt:  # Ctrl-C while JAX and friends are imported
    print("bayescale: interrupted; nothing written", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    code = main()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # stdout closed early (``| head``): quiet, as after SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = code or 141
    sys.exit(code)
