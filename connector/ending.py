"""How a connector process ends: flush what is buffered, then `os._exit`.

Used once main() (or a worker) has finished: threads the user's script started, daemon or
not, cannot keep a finished run alive (a backfill job ends). Its atexit handlers still run
(a script may flush what it recorded there), but one that hangs cannot hold the process
past ATEXIT_BOUND seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn

__all__ = ["ATEXIT_BOUND", "end_process"]

ATEXIT_BOUND = 5.0  # seconds the atexit handlers get in all


def end_process(code: int) -> NoReturn:
    """Flush logging and stdio as the interpreter would at exit, then exit with `code`.
    Output that stdout cannot take (`> /dev/full`, a closed pipe) makes a clean exit 1
    (the interpreter said 120); stderr that cannot be written changes nothing: the code
    says what happened to the events."""
    # os._exit skips atexit: run the handlers first, in a thread, so a hung one is left
    handlers = threading.Thread(target=atexit._run_exitfuncs, daemon=True)
    handlers.start()
    handlers.join(ATEXIT_BOUND)
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
