"""The connector in a pseudo-terminal, its screen read back with pyte (a VT100 emulator):
what a user at a terminal would see, live and at the end."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pyte

from tests.harness.cli import wait_for


class Terminal:
    """`connector ARGS` with stdin, stdout and stderr on a pseudo-terminal of `cols` x `rows`."""

    def __init__(self, *args: str, cols: int = 160, rows: int = 70, cwd: Path | None = None):
        self.cols, self.rows = cols, rows
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(os.environ, COLUMNS=str(cols), LINES=str(rows), TERM="xterm-256color")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connector", *map(str, args)],
            stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self.raw = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            with self._lock:
                self.raw += chunk

    def text(self) -> str:
        """Everything written so far, as text (escape sequences and all)."""
        with self._lock:
            return bytes(self.raw).decode("utf-8", "replace")

    def screen(self) -> list[str]:
        """The screen as the terminal shows it now: one string per row."""
        screen = pyte.Screen(self.cols, self.rows)
        stream = pyte.ByteStream(screen)
        with self._lock:
            stream.feed(bytes(self.raw))
        return [line.rstrip() for line in screen.display]

    def wait_screen(self, what: str, timeout: float = 60) -> list[str]:
        return wait_for(f"{what!r} on the screen", lambda: (
            self.screen() if any(what in line for line in self.screen()) else None
        ), timeout, 0.2)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 120) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("the connector did not exit:\n" + "\n".join(self.screen())) from None
        self._reader.join(5)
        os.close(self.master)
        return code


def view_rows(screen: list[str], table_title: str) -> dict[str, list[str]]:
    """A table of the live view as {first cell: cells}: the rows under `table_title`."""
    rows: dict[str, list[str]] = {}
    inside = False
    for line in screen:
        if line.strip() == table_title or line.strip().startswith(table_title + " "):
            inside, rows = True, {}
            continue
        if not inside:
            continue
        if line.startswith(("└", "╰")):
            inside = False
            continue
        if "│" in line or "┃" in line:
            cells = [c.strip() for c in line.replace("┃", "│").split("│")[1:-1]]
            if cells and cells[0]:
                rows[cells[0]] = cells
    return rows


def number(cell: str) -> int:
    return int(cell.replace(",", ""))
