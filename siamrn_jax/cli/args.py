"""argparse value types shared by the commands: numbers are checked where they are parsed, so ``--batch 0``
or ``--max-frames -3`` is a usage error (exit 2, one line), not a failure deep inside a run."""

from __future__ import annotations

import argparse

from siamrn_jax.errors import SiamrnError


class UsageError(SiamrnError, ValueError):
    """A command line that cannot be run as given."""


def _int_at_least(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {v}")
    return v


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int_at_least(text, 0)


def preset(text: str) -> str:
    """A tracker preset: a name of ``PRESETS`` or a tracker-parameter JSON file (e.g. a tuning run's
    ``best.json``; read by ``TrackerParams.for_model``)."""
    from pathlib import Path

    from siamrn_jax.tracking.params import PRESETS

    if text in PRESETS or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor an existing JSON file"
    )


def positive_ints(text: str) -> tuple[int, ...]:
    """Comma-separated integers >= 1, e.g. ``1,32,512``."""
    return tuple(positive_int(v) for v in text.split(","))


def add_preset(
    p: argparse.ArgumentParser, default: str | None = None, help: str | None = None
) -> argparse.Action:
    """``--preset NAME|FILE.json``, the same for every command that builds a tracker (a tuning run's
    ``best.json`` works wherever a preset name does)."""
    from siamrn_jax.tracking.params import PRESETS

    default_text = (
        default
        or "the model's own: otb for the paper model, nanotrack_v2 / v3 for NanoTrack, demo for the demo"
    )
    return p.add_argument(
        "--preset",
        default=default,
        type=preset,
        metavar="NAME|FILE.json",
        help=help
        or f"tracker hyper-parameters: {', '.join(sorted(PRESETS))} or a JSON file such as a tuning run's "
        f"best.json (default: {default_text})",
    )


def add_verbosity_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
    g.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def add_distributed_flags(p: argparse.ArgumentParser) -> None:
    """``--coordinator_address``, ``--num_processes``, ``--process_id``, ``--distributed`` (as train.py;
    the hyphenated spellings work too)."""
    g = p.add_argument_group("multi-process (jax.distributed)")
    g.add_argument(
        "--coordinator_address",
        "--coordinator-address",
        dest="coordinator_address",
        metavar="HOST:PORT",
        help="jax.distributed coordinator (process 0's host and a free port)",
    )
    g.add_argument(
        "--num_processes",
        "--num-processes",
        dest="num_processes",
        type=positive_int,
        help="processes of the run",
    )
    g.add_argument(
        "--process_id", "--process-id", dest="process_id", type=nonnegative_int, help="this process, 0 .. N-1"
    )
    g.add_argument(
        "--distributed", action="store_true", help="jax.distributed.initialize() with auto-detection"
    )
