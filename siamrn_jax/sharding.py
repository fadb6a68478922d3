"""Data parallelism in one place: the mesh axis name, the meshes, and how arrays are placed on them.

Every parallel program of the project (training, lockstep tracking, evaluation, tuning, benchmarks) runs
on a 1-D mesh whose single axis, ``DATA_AXIS``, splits the leading (batch / sequence) axis of the inputs;
variables and optimiser state are replicated. Meshes use the Auto axis type, so jitted functions need no
``jax.set_mesh``.

- ``data_mesh(n)``: the first ``n`` devices of the whole run (all processes): training and its benchmarks.
- ``local_data_mesh(n)``: the first ``n`` of this process's devices: tracking and evaluation, where each
  process tracks its own sequences with no cross-process communication.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from siamrn_jax.errors import SiamrnError

#: The one mesh axis: the batch (training) or sequence (tracking) axis is split along it.
DATA_AXIS = "data"


class ShardingError(SiamrnError, ValueError):
    """A device count this process does not have, or a batch that does not split over the devices."""


def data_mesh(devices: int | None = None) -> Mesh:
    """A 1-D mesh (axis ``DATA_AXIS``) over the first ``devices`` of all processes' devices (default: all).

    ``jax.make_mesh`` raises ``ValueError`` for more devices than the run has.
    """
    n = jax.device_count() if devices is None else devices
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def local_data_mesh(devices: int | None = None) -> Mesh:
    """A 1-D mesh (axis ``DATA_AXIS``) over the first ``devices`` of this process's devices (default: all).

    Only local devices: in a multi-process run each process tracks its own sequences, with no
    cross-process communication.

    Raises:
      ShardingError: ``devices`` is below 1 or more than this process has.
    """
    local = jax.local_devices()
    n = len(local) if devices is None else devices
    if not 1 <= n <= len(local):
        raise ShardingError(f"--devices {n}: this process has {len(local)} device(s)")
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=local[:n])


def shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
    """(replicated, batch-sharded) shardings of ``mesh``: for the variables, and for every array with a
    leading batch / sequence axis (inputs, ``TrackState``, ``StepOutput``, training batches)."""
    return NamedSharding(mesh, P()), NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Put a host/single-device pytree on every device of ``mesh`` (fully replicated)."""
    return jax.device_put(tree, shardings(mesh)[0])


def shard_batch(local: dict[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's part of the global batch (leading axis) -> global arrays sharded over ``DATA_AXIS``."""
    sharding = shardings(mesh)[1]
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
