"""``python -m siamrn_jax.bench.memory``: compiled memory of the full-size train and tracking steps.

Nothing runs and nothing of batch size is allocated: the steps are compiled for abstract inputs and
``compiled.memory_analysis()`` reports their arguments, outputs (aliased = donated), temporaries. For the
train step (trainable phase with online HNM, the largest) it also counts the activations JAX saves for the
backward pass, which does not depend on the backend's buffer assignment: that is what rematerialisation
(``model.remat_backbone``) and bfloat16 reduce even where XLA:CPU's assignment does not show it.
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model, load_config
from siamrn_jax.data.mixture import build_datasets
from siamrn_jax.data.sampler import TripletSampler, split_report
from siamrn_jax.sharding import data_mesh, shardings

MB = 2**20


def _total_mb(m) -> float:
    return (
        m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    ) / MB


def _saved_gb(model, batch: dict, variables) -> float | None:
    """Bytes of the residuals the backward pass keeps; None where this JAX has no way to list them."""
    try:  # the listing behind the public jax.ad_checkpoint.print_saved_residuals
        from jax._src.ad_checkpoint import saved_residuals
    except ImportError:
        return None
    from siamrn_jax.train.forward import LossConfig, train_forward

    stats = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), variables["batch_stats"])
    fwd = functools.partial(train_forward, backbone_trainable=True, hnm=True, loss_cfg=LossConfig())

    def loss(params):
        (value, _), _ = model.apply(
            {"params": params, "batch_stats": stats},
            batch,
            jax.random.key(0),
            method=fwd,
            mutable=["batch_stats"],
        )
        return value

    res = saved_residuals(loss, variables["params"])
    return sum(int(np.prod(a.shape)) * a.dtype.itemsize for a, _ in res) / 1e9


def train_rows(config: str, batch_size: int, residuals: bool) -> list[str]:
    from siamrn_jax.train.optim import make_optimizer
    from siamrn_jax.train.step import TrainState, make_train_step

    cfg = load_config(config)
    mesh = data_mesh(1)
    rep, dat = shardings(mesh)
    sample = split_report(TripletSampler(build_datasets(cfg.data), seed=0, global_batch=1).batch([0]))[0]
    abstract_batch = {
        k: jax.ShapeDtypeStruct((batch_size, *np.shape(v)[1:]), np.asarray(v).dtype, sharding=dat)
        for k, v in sample.items()
    }
    concrete = {
        k: np.broadcast_to(np.asarray(v)[:1], (batch_size, *np.shape(v)[1:])) for k, v in sample.items()
    }
    rows = []
    for dtype in ("float32", "bfloat16"):
        for remat in (False, True):
            model = build_model({**cfg.model.to_dict(), "remat_backbone": remat}, dtype)
            tx = make_optimizer(cfg.train.base_lr, True)
            step = make_train_step(model, tx, mesh, backbone_trainable=True, hnm=True)
            variables = checkpoint.abstract_variables(model)
            state = jax.eval_shape(lambda v, tx=tx: TrainState.create(v, tx, 0), variables)
            state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), state)
            m = step.lower(state, abstract_batch).compile().memory_analysis()
            saved = _saved_gb(model, concrete, variables) if residuals else None
            cells = [dtype, "on" if remat else "off", str(batch_size), f"{m.argument_size_in_bytes / MB:.0f}"]
            cells += [f"{m.alias_size_in_bytes / MB:.0f}", f"{m.temp_size_in_bytes / MB:,.0f}"]
            cells += ["n/a" if saved is None else f"{saved:.1f}"]
            rows.append("| " + " | ".join(cells) + " |")
    head = "| dtype | remat | batch/device | arguments MB | donated (aliased) MB | temporaries MB "
    head += "| saved activations GB |"
    return [head, "|---|---|---:|---:|---:|---:|---:|", *rows]


def tracking_rows(config: str, sizes: tuple[int, ...]) -> list[str]:
    from siamrn_jax.tracking import tracker as core
    from siamrn_jax.tracking.params import TrackerParams

    rows = []
    for dtype in ("float32", "bfloat16"):
        cfg = load_config(config)
        model = build_model(cfg.model, dtype)
        variables = checkpoint.abstract_variables(model)
        params = TrackerParams.for_model(model, "vot")
        init = jax.jit(functools.partial(core.init, model=model, params=params))
        step = jax.jit(functools.partial(core.step, model=model, params=params))
        for s in sizes:

            def sds(*shape):
                return jax.ShapeDtypeStruct(shape, jnp.float32)

            state = jax.eval_shape(
                init, variables, sds(s, 127, 127, 3), sds(s, 4), sds(s, 2), sds(s, 2), sds(s, 2)
            )
            m = step.lower(variables, state, sds(s, 255, 255, 3)).compile().memory_analysis()
            cells = [
                dtype,
                str(s),
                f"{m.argument_size_in_bytes / MB:,.0f}",
                f"{m.temp_size_in_bytes / MB:,.0f}",
            ]
            cells += [f"{_total_mb(m):,.0f}", f"{_total_mb(m) / s:.0f}"]
            rows.append("| " + " | ".join(cells) + " |")
    head = "| dtype | S sequences | arguments MB | temporaries MB | total MB | MB per sequence |"
    return [head, "|---|---:|---:|---:|---:|---:|", *rows]


if __name__ == "__main__":  # the command lives in siamrn_jax.cli
    import sys

    from siamrn_jax.cli.bench_memory import main

    sys.exit(main())
