"""The one way elevate tells a person something: the terminal when there is one, else stderr.

stdout carries data only (eval-able text, JSON), so nothing here ever writes to it. This
module is on the cached fast path: standard library only, and little of it.
"""

from __future__ import annotations

import io
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (3 ms) on the hit queue
if TYPE_CHECKING:  # nor collections.abc or contextlib, which cost a waiter a third of its start-up
    from types import TracebackType
    from typing import TextIO

PREFIX = "elevate: "
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
            fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
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


def say(message: str) -> None:
    """A line for the person at the terminal (else stderr), as given."""
    with open_tty() as tty:
        _write(tty if tty is not None else sys.stderr, message)


def tell(message: str) -> None:
    """`elevate: MESSAGE` for the person at the terminal (else stderr): prompts' companions."""
    say(PREFIX + message)


def inform(message: str) -> None:
    """`elevate: MESSAGE` on stderr, where scripts and logs see it too (progress, results)."""
    _write(sys.stderr, PREFIX + message)


def warn(message: str) -> None:
    """`elevate: warning: MESSAGE` on stderr, one line (it may quote text from outside)."""
    _write(sys.stderr, f"{PREFIX}warning: {printable(message)}")


def error(message: str) -> None:
    """`elevate: error: MESSAGE` on stderr, always one line: how every failure ends."""
    _write(sys.stderr, f"{PREFIX}error: {printable(message)}")


def stderr(text: str) -> None:
    """Raw text on stderr (a message that is already formatted, such as click's usage)."""
    _write(sys.stderr, text.rstrip("\n"))


def _write(stream: TextIO, line: str) -> None:
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):  # the stream is closed: nothing better to do
        pass
