"""The base of the project's own error types.

Every error that describes bad input or a bad environment (a file, a box, a config, a checkpoint, an
output) derives from ``SiamrnError``, next to the builtin it specialises (mostly ``ValueError``). The
commands catch ``SiamrnError`` and ``OSError`` and print one ``error: ...`` line with exit status 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class SiamrnError(Exception):
    """A user-facing error: its message names the file or value and the problem, on one line."""


def one_line(e: BaseException) -> str:
    """The ``error: ...`` line of a command for ``e``: an OSError as ``FILE: reason`` (``[Errno 13]``
    prefixes dropped), anything else its message with line breaks folded."""
    if isinstance(e, OSError) and e.strerror:
        where = e.filename if e.filename is not None else ""
        text = f"{where}: {e.strerror}" if where != "" else e.strerror
    else:
        text = str(e)
    return "error: " + " ".join(text.split())
