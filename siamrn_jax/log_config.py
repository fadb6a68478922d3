"""Console logging of the commands: ``--verbose`` / ``--quiet`` and one handler on the root logger.

Library modules only log (``logging.getLogger(__name__)``); the commands decide what reaches the console:
INFO by default (per-sequence progress of ``eval run``, skipped sequences), WARNING with ``--quiet``,
DEBUG with ``--verbose``. ``train`` runs under absl, whose handler carries these records too.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (not the stream at set-up), so a command run
    in-process (tests, notebooks) never writes to a stream that was swapped and closed since."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


class LabelledFormatter(logging.Formatter):
    """Plain messages; a warning (or a library's error the command carries on after, such as orbax's
    report of a damaged metadata file it can do without) as one line starting ``warning:``, so the
    command's own ``error: FILE: problem`` stays the only line that says ``error:``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno < logging.WARNING:
            return text
        text = " ".join(text.split())
        return text if text.startswith("warning: ") else f"warning: {text}"


def configure(args: Any) -> None:
    """Sets the console level from ``--verbose`` / ``--quiet`` (INFO by default); messages go to stderr
    so that a command's stdout stays its result."""
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    if getattr(args, "quiet", False):
        level = logging.WARNING
    handler = _StderrHandler()
    handler.setFormatter(LabelledFormatter("%(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Third-party INFO chatter (orbax, absl) stays out unless asked for.
    for name in ("absl", "orbax", "jax"):
        logging.getLogger(name).setLevel(level if level == logging.DEBUG else logging.WARNING)
