"""The one way elevate tells a person something; stdout is never written here.

stdout carries data only (eval-able text, JSON): elevate.output renders it and the CLI
writes it. Everything meant for a person goes through the emitters below, and every line
elevate words follows one prefix rule (`prefix`): `elevate: MESSAGE`, or `elevate: KIND:
MESSAGE` for a warning or an error, which may quote text from outside and so is made
printable, one line (the admin's deploy tool speaks as `deploy-stack`, its own program).

Where each kind goes, and why:
- `tell`: a prompt's companion (try again, waiting for another prompt) goes to the terminal
  (/dev/tty), where the prompt is, else stderr: under credential_process an SDK swallows
  stderr, and the person at the prompt must still read it.
- `inform`: progress and results on stderr, where scripts and logs see them too.
- `warn`, `error`: on stderr, one printable line each; `error` is how every failure ends
  (elevate.__main__ is its one caller for elevate's own errors).
- `stderr`: text shown as it is, on stderr: what is already formatted (click's usage, a QR
  code) and the per-item lines of the listing commands (`NAME: cleared`), which read like data.

This module is on the cached fast path: standard library only, and little of it.
"""

from __future__ import annotations

import io
import sys

from . import hostos

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (3 ms) on the hit queue
if TYPE_CHECKING:  # nor collections.abc or contextlib, which cost a waiter a third of its start-up
    from types import TracebackType
    from typing import Literal, TextIO

    Kind = Literal["", "warning", "error", "debug"]  # "": a message; the rest name themselves

PROGRAM = "elevate"
MAX_LINE = 2000  # one error line, however long the text from outside was
# Characters that reorder or hide text on a terminal (bidi controls, zero-width marks).
_INVISIBLE = frozenset(
    {0x061C, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF}
    | set(range(0x202A, 0x202F))
    | set(range(0x2066, 0x206A))
)


def printable(text: str, limit: int = MAX_LINE) -> str:
    """`text` from outside made safe for a terminal: one line, no control or bidi characters.

    Line breaks fold to " | "; other C0/C1 controls, DEL and bidi or zero-width marks
    become \\xNN / \\uNNNN escapes; the result is capped at `limit` characters.
    """
    out = []
    size = 0
    for char in text:
        code = ord(char)
        if char in "\r\n":
            piece = " | " if char == "\n" else ""
        elif code < 0x20 or 0x7F <= code < 0xA0:
            piece = f"\\x{code:02x}"
        elif code in _INVISIBLE or 0xD800 <= code < 0xE000:
            piece = f"\\u{code:04x}"
        else:
            piece = char
        out.append(piece)
        size += len(piece)
        if size > limit:
            return "".join(out)[:limit] + "..."
    return "".join(out)


class open_tty:
    """The controlling terminal for reading and writing, or None when there is none."""

    def __enter__(self) -> TextIO | None:
        self.tty: TextIO | None = None
        try:
            fd = hostos.native.open("/dev/tty", hostos.native.O_RDWR | hostos.native.O_NOCTTY)
        except OSError:
            return None
        # Not open(fd, "r+"): its BufferedRandom needs a seekable file, and a terminal is not.
        # Unbuffered below, so a read takes one line from the terminal and no more.
        self.tty = io.TextIOWrapper(
            io.FileIO(fd, "r+"), encoding="utf-8", errors="replace", line_buffering=True, write_through=True
        )
        return self.tty

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.tty is not None:
            self.tty.close()


def prefix(kind: Kind = "", program: str = PROGRAM) -> str:
    """The one prefix rule: how every line a program of elevate words begins."""
    return f"{program}: {kind}: " if kind else f"{program}: "


def line(message: str, kind: Kind = "", program: str = PROGRAM) -> str:
    """`message` as a line elevate words: prefixed, and made printable when it is a warning or an
    error (`kind`), which may quote text from outside."""
    return prefix(kind, program) + (printable(message) if kind else message)


def tell(message: str) -> None:
    """`elevate: MESSAGE` for the person at the terminal (else stderr): prompts' companions."""
    with open_tty() as tty:
        _write(tty if tty is not None else sys.stderr, line(message))


def inform(message: str, program: str = PROGRAM) -> None:
    """`elevate: MESSAGE` on stderr, where scripts and logs see it too (progress, results)."""
    _write(sys.stderr, line(message, program=program))


def warn(message: str, program: str = PROGRAM) -> None:
    """`elevate: warning: MESSAGE` on stderr, one line (it may quote text from outside)."""
    _write(sys.stderr, line(message, "warning", program))


def error(message: str, program: str = PROGRAM) -> None:
    """`elevate: error: MESSAGE` on stderr, always one line: how every failure ends."""
    _write(sys.stderr, line(message, "error", program))


def stderr(text: str) -> None:
    """Text on stderr as it is (already formatted, such as click's usage or a QR code)."""
    _write(sys.stderr, text.rstrip("\n"))


def _write(stream: TextIO | None, text: str) -> None:
    if stream is None:  # Python started with that fd closed: nobody to tell
        return
    try:
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):  # the stream is closed: nothing better to do
        pass
