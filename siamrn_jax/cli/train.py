"""Command line of ``train.py`` (absl flags + an ml_collections config file with ``--config.a.b=v``)."""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from siamrn_jax.config import PACKAGED_CONFIG, resolve_config_spec
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.log_config import LabelledFormatter

# No default here: config_flags would load it at import time; ``main`` supplies the paper config (vot).
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiment config file[:variant], or a bare variant (smoke, vot, ...); default vot"
)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (checkpoints, metrics, final model)")
_STOP_AFTER = flags.DEFINE_integer("stop_after", None, "stop (with a checkpoint) at this global step")
_PROGRESS = flags.DEFINE_bool("progress", True, "show a progress bar")
_COORD = flags.DEFINE_string("coordinator_address", None, "jax.distributed coordinator host:port")
_NPROC = flags.DEFINE_integer("num_processes", None, "number of processes (hosts) of the run")
_PID = flags.DEFINE_integer("process_id", None, "this process's id, 0 .. num_processes-1")
_DIST = flags.DEFINE_bool("distributed", False, "call jax.distributed.initialize() with auto-detection")
_VERBOSE = flags.DEFINE_bool("verbose", False, "info messages too (orbax checkpointing, data loading)")
_QUIET = flags.DEFINE_bool("quiet", False, "errors only (no warnings)")


def _run(argv: list[str]) -> int:
    del argv
    import jax
    from absl import logging

    # orbax logs every checkpoint step at INFO; keep the console for the progress bar and errors.
    logging.set_verbosity(
        logging.INFO if _VERBOSE.value else logging.ERROR if _QUIET.value else logging.WARNING
    )
    # Warnings as "warning: ..." lines like every other command's, not absl's "W1206 12:00:00 file.py:1]".
    logging.get_absl_handler().python_handler.setFormatter(LabelledFormatter("%(message)s"))

    if _COORD.value or _DIST.value:
        jax.distributed.initialize(
            coordinator_address=_COORD.value, num_processes=_NPROC.value, process_id=_PID.value
        )
    from siamrn_jax.train.loop import train

    if not _WORKDIR.value:
        print("error: --workdir is required", file=sys.stderr)
        return 2
    try:
        summary = train(_CONFIG.value, _WORKDIR.value, stop_after=_STOP_AFTER.value, progress=_PROGRESS.value)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2
    if jax.process_index() == 0:
        last = summary["last"]
        rate = summary["pairs_per_s"]
        # Every timing window of a very short run includes compilation: no steady rate to report.
        speed = f"{rate:.2f} pairs/s" if rate == rate else "pairs/s not timed (run too short)"
        print(
            f"step {summary['step']}: loss {last.get('loss', float('nan')):.4f} "
            f"(cls {last.get('cls', float('nan')):.4f}, loc {last.get('loc', float('nan')):.4f}, "
            f"match {last.get('match', float('nan')):.4f}), skipped {summary['skipped']}, "
            f"bad reads {summary['bad_reads']}, "
            f"{speed} on {jax.device_count()} device(s)"
        )
    if _COORD.value or _DIST.value:
        jax.distributed.shutdown()
    return 0


def _config_problem(argv: list[str], spec: str) -> str | None:
    """Why the config file ``spec`` cannot be loaded, or the first ``--config.a.b=v`` of ``argv`` whose key
    it does not have (config_flags raises a bare AttributeError deep in ml_collections for it); else None."""
    from siamrn_jax.config import ConfigError, load_config

    try:
        cfg = load_config(spec)
    except ConfigError as e:  # load_config turns whatever the config file raises into a ConfigError
        return f"--config {spec}: {' '.join(str(e).split())}"
    for a in argv:
        if not a.startswith("--config."):
            continue
        node = cfg
        for part in a[len("--config.") :].split("=", 1)[0].split("."):
            if not hasattr(node, "keys") or part not in node:
                return f"{a.split('=', 1)[0]}: no such key in {spec}"
            node = node[part]
    return None


def _parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing with one-line errors (``main`` has already checked the config file and keys)."""
    try:
        return flags.FLAGS(argv)
    except Exception as e:  # noqa: BLE001 (config_flags raises anything its config file raises)
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)


def _resolve_config_arg(argv: list[str]) -> tuple[list[str], str]:
    """(argv with ``--config`` resolved, the resolved spec): ``--config smoke`` -> ``--config <packaged
    siamrn_r50.py>:smoke`` (``resolve_config_spec``); no ``--config`` -> the packaged paper config (vot)."""
    out = list(argv)
    for i, a in enumerate(out):
        if a.startswith("--config="):
            spec = resolve_config_spec(a.split("=", 1)[1])
            out[i] = "--config=" + spec
            return out, spec
        if a == "--config" and i + 1 < len(out):
            spec = resolve_config_spec(out[i + 1])
            out[i + 1] = spec
            return out, spec
    spec = f"{PACKAGED_CONFIG}:vot"
    out.insert(1, f"--config={spec}")
    return out, spec


def main(argv: list[str]) -> int:
    argv, spec = _resolve_config_arg(argv)
    # config_flags loads the file lazily and reports a missing file or key deep inside the run; check the
    # config and its overrides with our own loader first, for a one-line error.
    problem = _config_problem(argv, spec)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        app.run(_run, argv, flags_parser=_parse_flags)
    except SystemExit as e:
        return int(e.code or 0)
    return 0
