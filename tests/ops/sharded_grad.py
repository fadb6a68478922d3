"""Shared by the custom-gradient convolution tests: the kernel gradient as the train step takes it."""

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from siamrn_jax.sharding import DATA_AXIS, data_mesh


def kernel_grad_in_shard_map(conv):
    """``(x, w, weights) -> d/dw sum(tanh(conv(x, w)) * weights)`` differentiated inside ``shard_map`` on a
    one-device mesh with a replicated kernel (the step's setting), jitted."""

    def per_device(x, w, weights):
        return jax.lax.psum(jnp.sum(jnp.tanh(conv(x, w)) * weights), DATA_AXIS)

    spec = (P(DATA_AXIS), P(), P(DATA_AXIS))
    mapped = jax.shard_map(per_device, mesh=data_mesh(1), in_specs=spec, out_specs=P())
    return jax.jit(jax.grad(mapped, argnums=1))
