"""Training throughput: pairs/s of the jitted data-parallel step, per phase, with and without data loading.

A "pair" is one training sample (template, search, query and negative support, with its 64 RD pairs).
Phases: frozen backbone with sampled proposals (epochs 0-2), frozen with online HNM (epochs 3-9),
layer2-4 trainable with online HNM (epochs 10-19). "compute only" feeds one prepared batch again and
again; "with data" pulls every batch from the grain pipeline (synthetic source by default, ``--workers``
processes). Steps are synchronised every step (which also avoids the CPU collective hang of JAX_STACK.md
finding 5), so the numbers are wall-clock throughput, not dispatch rate.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from siamrn_jax.checkpoint import init_variables
from siamrn_jax.config import build_model
from siamrn_jax.data.loader import iterator_at, make_dataset
from siamrn_jax.data.mixture import build_datasets
from siamrn_jax.data.sampler import TripletSampler, split_report
from siamrn_jax.sharding import data_mesh, replicate, shard_batch
from siamrn_jax.train.optim import make_optimizer
from siamrn_jax.train.step import TrainState, make_train_step

# name: (backbone trainable, online HNM), and the official epochs each phase covers (``bench train``'s rows
# name them; ``bench suite``'s do not).
PHASES = {
    "frozen, sampled proposals": (False, False),
    "frozen, online HNM": (False, True),
    "layer2-4 trainable, online HNM": (True, True),
}
EPOCHS = {
    "frozen, sampled proposals": "epochs 0-2",
    "frozen, online HNM": "epochs 3-9",
    "layer2-4 trainable, online HNM": "epochs 10-19",
}


def train_setup(cfg: ml_collections.ConfigDict, batch_per_device: int) -> tuple[Mesh, TripletSampler, Any]:
    """(data-parallel mesh over every device, the config's sampler, one fixed sharded global batch)."""
    n = jax.device_count()
    mesh = data_mesh(n)
    global_batch = batch_per_device * n
    sampler = TripletSampler(build_datasets(cfg.data), seed=0, global_batch=global_batch, gray=cfg.data.gray)
    fixed = shard_batch(split_report(sampler.batch(range(global_batch)))[0], mesh)
    return mesh, sampler, fixed


def compile_phase(model, cfg: ml_collections.ConfigDict, mesh: Mesh, variables, fixed, phase: str):
    """(compiled train step of ``phase``, its replicated initial state, compile seconds). ``variables``:
    host (NumPy) arrays."""
    trainable, hnm = PHASES[phase]
    tx = make_optimizer(cfg.train.base_lr, trainable)
    step = make_train_step(
        model, tx, mesh, backbone_trainable=trainable, hnm=hnm, bn_groups=cfg.train.bn_groups
    )
    state = replicate(TrainState.create(variables, tx, 0), mesh)
    t0 = time.perf_counter()
    compiled = step.lower(state, fixed).compile()
    return compiled, state, time.perf_counter() - t0


def time_phase(
    compiled, state, fixed, mesh: Mesh, sampler: TripletSampler, steps: int, data: str | None, workers: int
) -> list[tuple[str, bool, float, float]]:
    """(input mode, fed by the pipeline, seconds per step, seconds waiting for batches) after one warm-up
    step: ``steps`` steps on the fixed batch ("compute only"), then, with a ``data`` label, ``steps`` steps
    each pulling its batch from the grain pipeline (``workers`` processes). Every step is synchronised
    (which also avoids the CPU collective hang of JAX_STACK.md finding 5): wall-clock throughput."""
    state, m = compiled(state, fixed)  # warm-up
    float(m["loss"])
    modes = [("compute only", None)]
    if data is not None:
        ds = make_dataset(sampler, steps + 2, workers=workers, prefetch=2)
        modes.append((data, iterator_at(ds, None)))
    out = []
    for mode, it in modes:
        if it is not None:
            next(it)  # the first batch pays for starting the workers
        wait, t0 = 0.0, time.perf_counter()
        for _ in range(steps):
            tw = time.perf_counter()
            batch = fixed if it is None else shard_batch(split_report(next(it))[0], mesh)
            wait += time.perf_counter() - tw
            state, m = compiled(state, batch)
            float(m["loss"])
        dt = (time.perf_counter() - t0) / steps
        if it is not None:
            it.close()  # stop the worker processes
        out.append((mode, it is not None, dt, wait))
    return out


def bench_train(cfg: ml_collections.ConfigDict, steps: int, with_data: bool, workers: int) -> list[dict]:
    """One row per phase (and data mode): compile seconds, step ms, pairs/s total and per device."""
    model = build_model(cfg.model)
    variables = init_variables(model, seed=0)
    n = jax.device_count()
    mesh, sampler, fixed = train_setup(cfg, cfg.train.batch_per_device)
    global_batch = cfg.train.batch_per_device * n
    variables = jax.tree.map(np.asarray, variables)
    rows = []
    for phase in PHASES:
        compiled, state, compile_s = compile_phase(model, cfg, mesh, variables, fixed, phase)
        data = f"with data ({workers} workers)" if with_data else None
        for mode, _, dt, _ in time_phase(compiled, state, fixed, mesh, sampler, steps, data, workers):
            rows.append(
                {
                    "phase": f"{phase} ({EPOCHS[phase]})",
                    "mode": mode,
                    "devices": n,
                    "batch": global_batch,
                    "compile_s": compile_s,
                    "step_ms": dt * 1e3,
                    "pairs_s": global_batch / dt,
                    "pairs_s_device": global_batch / dt / n,
                }
            )
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| phase | input | devices | global batch | compile s | step ms | pairs/s | pairs/s/device |\n"
    head += "|---|---|---|---|---|---|---|---|\n"
    return head + "".join(
        f"| {r['phase']} | {r['mode']} | {r['devices']} | {r['batch']} | {r['compile_s']:.1f} | "
        f"{r['step_ms']:.0f} | {r['pairs_s']:.2f} | {r['pairs_s_device']:.2f} |\n"
        for r in rows
    )
