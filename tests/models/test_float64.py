"""A float64 model (``build_model(..., dtype="float64")``, ``checkpoint.load(..., dtype="float64")``) under
64-bit JAX: float64 variables and float64 outputs at every stage (no float32 island left: the BatchNorm
statistics, softmaxes, level fusions, ``exp`` and the relation detector's sums follow ``accum_dtype``).
The numbers themselves are checked against the official float64 run in ``test_parity_x64.py``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from siamrn_jax import checkpoint
from siamrn_jax.config import ConfigError, build_model, load_config


def test_float64_needs_64_bit_jax():
    with jax.enable_x64(False), pytest.raises(ConfigError, match="needs 64-bit JAX"):
        build_model(load_config("configs/siamrn_r50.py:smoke").model, "float64")


@pytest.mark.slow
def test_float64_checkpoint_computes_in_float64(tmp_path):
    model = build_model(load_config("configs/siamrn_r50.py:smoke").model)
    stored = checkpoint.init_variables(model, seed=1, calibrate=0)
    checkpoint.save(tmp_path / "ckpt", model, stored)
    with jax.enable_x64(True):
        m, v, _ = checkpoint.load(tmp_path / "ckpt", dtype="float64", inference=False)
        assert m.dtype == jnp.float64
        for a, b in zip(jax.tree.leaves(v["params"]), jax.tree.leaves(stored["params"]), strict=True):
            assert a.dtype == np.float64 and np.array_equal(np.asarray(a), np.asarray(b, np.float64))
        rng = np.random.default_rng(0)
        z = jnp.asarray(rng.uniform(0, 255, (1, 127, 127, 3)))
        x = jnp.asarray(rng.uniform(0, 255, (1, 255, 255, 3)))
        box = jnp.asarray([[31.5, 39.5, 95.5, 87.5]])
        cls = type(m)
        # Shapes and dtypes only (the values are the x64 parity test's): the whole per-frame network traced.
        t = jax.eval_shape(lambda v, z, b: m.apply(v, z, b, method=cls.encode_template), v, z, box)
        out = jax.eval_shape(lambda v, t, x: m.apply(v, t, x, method=cls.track_forward), v, t, x)
        dtypes = {str(a.dtype) for a in jax.tree.leaves((t, out))}
        assert dtypes == {"float64"}, dtypes
