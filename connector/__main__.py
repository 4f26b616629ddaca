"""`python -m connector` and the `connector` command: main(), then the process ends.

main() returns its code (tests call it in-process); the entry then ends the process with
`os._exit` (connector/ending.py), so threads the user's script left running cannot keep
it alive after its summary.
"""

from __future__ import annotations

import contextlib
import sys
import traceback

from connector.cli import main
from connector.ending import end_process

__all__ = ["entry"]


def entry() -> None:
    """The console entry: run the command, then end the process with its code."""
    try:
        code = main()
    except SystemExit as exc:  # argparse: usage errors (2), --help and --version (0)
        code = exc.code
    except KeyboardInterrupt:  # Ctrl-C while the arguments were read
        code = 1
    except BaseException:  # main() catches everything it knows: this is a bug of ours
        with contextlib.suppress(OSError, ValueError, AttributeError):
            traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            print(code, file=sys.stderr)
        code = 1
    end_process(code)


if __name__ == "__main__":
    entry()
