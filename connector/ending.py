"""How a connector process ends: flush what is buffered, then `os._exit`.

Used once main() (or a worker) has finished: threads the user's script started, daemon or
not, cannot keep a finished run alive (a backfill job ends), and neither can its atexit
handlers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn

__all__ = ["end_process"]


def end_process(code: int) -> NoReturn:
    """Flush logging and stdio as the interpreter would at exit, then exit with `code`.
    Output that stdout cannot take (`> /dev/full`, a closed pipe) makes a clean exit 1
    (the interpreter said 120); stderr that cannot be written changes nothing: the code
    says what happened to the events."""
    _quietly(logging.shutdown)
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):
        code = code or 1
    _quietly(lambda: sys.stderr is not None and sys.stderr.flush())
    os._exit(code)


def _quietly(step) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr full or closed: nothing to do
        step()
