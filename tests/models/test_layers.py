"""``layers.materialize``: an identity, and the fusion boundary it exists for on the installed jaxlib."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamrn_jax.models import backbone
from siamrn_jax.models.layers import materialize


def test_materialize_is_the_identity():
    x = jnp.asarray([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 3e-42], jnp.float32)
    y = materialize(x)
    np.testing.assert_array_equal(np.asarray(y).view(np.int32)[:6], np.asarray(x).view(np.int32)[:6])
    assert np.isnan(np.asarray(y)[6]) and np.asarray(y)[7] == np.asarray(x)[7]
    g = jax.grad(lambda v: jnp.sum(materialize(v) * jnp.arange(8.0)))(jnp.where(jnp.isnan(x), 0.0, x))
    np.testing.assert_array_equal(np.asarray(g), np.arange(8.0))


def _widest_fusion(hlo: str) -> int:
    """The most operands any elementwise (non-matmul) fusion of the compiled module reads."""
    widths = [
        m.group(2).count("%")
        for m in re.finditer(r"%([\w.\-]+) = \S+ fusion\((.*?)\), kind", hlo)
        if not m.group(1).startswith(("ynn_fusion", "xnn_fusion"))
    ]
    return max(widths)


def _train_grad_hlo() -> str:
    """Compiled forward + backward of a 6-block train-mode ResNet stage (BN batch statistics)."""
    layer = backbone.ResLayer(planes=8, blocks=6, stride=1, dilation=1, downsample="1x1")
    x = jnp.ones((2, 9, 9, 32))
    variables = layer.init(jax.random.key(0), x)

    def loss(params):
        y, _ = layer.apply({**variables, "params": params}, x, True, mutable=["batch_stats"])
        return jnp.sum(y * y)

    return jax.jit(jax.grad(loss)).lower(variables["params"]).compile().as_text()


def test_residual_chain_is_not_recomputed_in_each_consumer(monkeypatch):
    """With ``materialize`` on each block's output no fusion reads more than a block's worth of arrays;
    without it (the control, else the test proves nothing) fusions recompute the chain from every earlier
    block's conv output."""
    with_it = _widest_fusion(_train_grad_hlo())
    monkeypatch.setattr(backbone, "materialize", lambda x: x)
    without = _widest_fusion(_train_grad_hlo())
    # Measured (jax 0.10.2, 6 blocks): 13 operands with it (a BatchNorm backward), 35 without.
    assert with_it <= 16, with_it
    if without <= 16:
        pytest.fail(f"XLA no longer duplicates the chain ({without} operands at most): materialize may go")
