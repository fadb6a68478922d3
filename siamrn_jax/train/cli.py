"""Command line of ``train.py`` (absl flags + an ml_collections config file with ``--config.a.b=v``)."""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/siamrn_r50.py:vot", "experiment config file[:variant]"
)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics, final model)")
_STOP_AFTER = flags.DEFINE_integer("stop_after", None, "stop (with a checkpoint) at this global step")
_PROGRESS = flags.DEFINE_bool("progress", True, "show a progress bar")
_COORD = flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator host:port")
_NPROC = flags.DEFINE_integer("num_processes", None, "number of processes (hosts) of the run")
_PID = flags.DEFINE_integer("process_id", None, "this process's id, 0 .. num_processes-1")
_DIST = flags.DEFINE_bool("distributed", False, "call jax.distributed.initialize() with auto-detection")


def _run(argv: list[str]) -> int:
    del argv
    import jax
    from absl import logging

    # orbax logs every checkpoint step at INFO; keep the console for the progress bar and errors.
    logging.set_verbosity(logging.WARNING)

    if _COORD.value or _DIST.value:
        jax.distributed.initialize(
            coordinator_address=_COORD.value, num_processes=_NPROC.value, process_id=_PID.value
        )
    from siamrn_jax.train.loop import TrainError, train

    if not _WORKDIR.value:
        print("error: --workdir is required", file=sys.stderr)
        return 2
    try:
        summary = train(_CONFIG.value, _WORKDIR.value, stop_after=_STOP_AFTER.value, progress=_PROGRESS.value)
    except (TrainError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if jax.process_index() == 0:
        last = summary["last"]
        print(
            f"step {summary['step']}: loss {last.get('loss', float('nan')):.4f} "
            f"(cls {last.get('cls', float('nan')):.4f}, loc {last.get('loc', float('nan')):.4f}, "
            f"match {last.get('match', float('nan')):.4f}), skipped {summary['skipped']}, "
            f"{summary['pairs_per_s']:.2f} pairs/s on {jax.device_count()} device(s)"
        )
    if _COORD.value or _DIST.value:
        jax.distributed.shutdown()
    return 0


def main(argv: list[str]) -> int:
    try:
        app.run(_run, argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0
