"""The progress bar of the commands (tracking frames, training steps): tqdm on stderr.

One bar for every loop that shows one, so they look and behave alike; stdout stays the command's result.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any


class _Silent:
    """A bar that draws nothing (stderr is not a terminal): the calls of a tqdm bar, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def bar(total: int | None, desc: str | None = None, unit: str = "frame", initial: int = 0, always=False):
    """A progress bar on stderr (``update(n)``, ``set_postfix(**values)``, ``close()``) counting ``unit``s up
    to ``total`` (None: unknown) from ``initial``. It draws only on a terminal, so that logs and captured
    output get the command's summary alone, unless ``always`` (a training run's log keeps its bar)."""
    if not (always or sys.stderr.isatty()):
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)


@contextlib.contextmanager
def frames(name: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A frame counter for a tracking loop: yields ``advance(n=1)``; the bar is closed on the way out."""
    b = bar(total, desc=name)
    try:
        yield b.update
    finally:
        b.close()
