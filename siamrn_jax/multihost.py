"""Runs over several processes (hosts) with ``jax.distributed``: the flags, start-up, and agreeing on
success at the points where the processes wait for each other.

The flags are those of ``train.py`` (``--coordinator_address HOST:PORT --num_processes N --process_id I``,
or ``--distributed`` to let ``jax.distributed`` detect Slurm / Open MPI / Kubernetes); the other commands
(``cli.args.add_distributed_flags``) also accept them with hyphens. ``initialize`` must run before anything
touches a JAX backend: the process group is fixed when the backend starts.

A process that fails alone must not leave the others waiting forever at the next barrier, so the
commands catch their own errors between barriers and meet at ``agree``: every process learns whether all
succeeded, and each failure is reported by every process (process 0's report is the one to read).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from siamrn_jax.errors import SiamrnError

_LOG = logging.getLogger(__name__)

# Bytes of an error message carried by ``agree`` (the rest is cut: a one-line message fits).
_MESSAGE_BYTES = 400


class DistributedError(SiamrnError, RuntimeError):
    """Inconsistent multi-process flags, or another process of the run failed."""


def initialize(args: Any) -> bool:
    """Joins the process group the flags describe; returns whether it did (False: a single process).

    Raises:
      DistributedError: flags that cannot describe a run (a process id out of range, ``--num_processes``
        without a coordinator, ...), or ``jax.distributed`` failing to start.
    """
    coord, n, pid = args.coordinator_address, args.num_processes, args.process_id
    if not (coord or args.distributed):
        if n is not None or pid is not None:
            raise DistributedError(
                "--num_processes / --process_id need --coordinator_address (or --distributed)"
            )
        return False
    if coord and not args.distributed and (n is None or pid is None):
        raise DistributedError("--coordinator_address needs --num_processes and --process_id")
    if n is not None and n < 1:
        raise DistributedError(f"--num_processes must be at least 1, got {n}")
    if pid is not None and n is not None and not 0 <= pid < n:
        raise DistributedError(f"--process_id {pid} is not in 0 .. {n - 1}")
    import jax

    try:
        jax.distributed.initialize(coordinator_address=coord, num_processes=n, process_id=pid)
    except (RuntimeError, ValueError) as e:  # unreachable coordinator, no cluster detected, ...
        raise DistributedError(f"jax.distributed could not start: {' '.join(str(e).split())}") from None
    _LOG.info(
        "process %d of %d, %d local device(s)",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
    )
    return True


def shutdown() -> None:
    import jax

    jax.distributed.shutdown()


def agree(error: BaseException | None, value: int = 0) -> list[int]:
    """A barrier at which every process tells the others whether its part succeeded.

    Args:
      error: this process's error since the last barrier (None: success). Every process must call
        ``agree`` the same number of times, failed or not: it is a collective.
      value: a number to share (e.g. how many sequences this process tracked).

    Returns:
      Every process's ``value``, by process index (``[value]`` for a single process).

    Raises:
      ``error`` itself when this process failed; ``DistributedError`` naming the first failed process and
      its message when only others did.
    """
    import jax

    if jax.process_count() == 1:
        if error is not None:
            raise error
        return [value]
    from jax.experimental import multihost_utils

    text = b"" if error is None else (str(error) or type(error).__name__).encode()[:_MESSAGE_BYTES]
    row = np.zeros(2 + _MESSAGE_BYTES, np.int32)  # [failed, value, message bytes...]
    row[0], row[1] = error is not None, value
    row[2 : 2 + len(text)] = np.frombuffer(text, np.uint8)
    rows = np.asarray(multihost_utils.process_allgather(row))  # [P, 2 + _MESSAGE_BYTES]
    if error is not None:
        raise error
    failed = np.flatnonzero(rows[:, 0])
    if failed.size:
        k = int(failed[0])
        msg = bytes(rows[k, 2:].astype(np.uint8)).rstrip(b"\0").decode(errors="replace")
        more = f" (and {failed.size - 1} other process(es))" if failed.size > 1 else ""
        raise DistributedError(f"process {k} failed{more}: {' '.join(msg.split())}")
    return [int(v) for v in rows[:, 1]]


def run_stage(fn, *args: Any, **kwargs: Any) -> tuple[Any, BaseException | None]:
    """``fn(*args, **kwargs)`` with the project's own errors and the OS's caught (for ``agree``): returns
    (result, None) or (None, error). Any other exception is a bug and propagates."""
    try:
        return fn(*args, **kwargs), None
    except (SiamrnError, OSError) as e:
        return None, e
