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

import jax
import ml_collections
import numpy as np

from siamrn_jax.checkpoint import init_variables
from siamrn_jax.config import build_model
from siamrn_jax.data.loader import iterator_at, make_dataset
from siamrn_jax.data.mixture import build_datasets
from siamrn_jax.data.sampler import TripletSampler, split_report
from siamrn_jax.sharding import data_mesh, replicate, shard_batch
from siamrn_jax.train.optim import make_optimizer
from siamrn_jax.train.step import TrainState, make_train_step

PHASES = {
    "frozen, sampled proposals (epochs 0-2)": (False, False),
    "frozen, online HNM (epochs 3-9)": (False, True),
    "layer2-4 trainable, online HNM (epochs 10-19)": (True, True),
}


def bench_train(cfg: ml_collections.ConfigDict, steps: int, with_data: bool, workers: int) -> list[dict]:
    """One row per phase (and data mode): compile seconds, step ms, pairs/s total and per device."""
    model = build_model(cfg.model)
    variables = init_variables(model, seed=0)
    n = jax.device_count()
    mesh = data_mesh(n)
    global_batch = cfg.train.batch_per_device * n
    sampler = TripletSampler(build_datasets(cfg.data), seed=0, global_batch=global_batch, gray=cfg.data.gray)
    fixed = shard_batch(split_report(sampler.batch(range(global_batch)))[0], mesh)
    rows = []
    for name, (trainable, hnm) in PHASES.items():
        tx = make_optimizer(cfg.train.base_lr, trainable)
        step = make_train_step(
            model, tx, mesh, backbone_trainable=trainable, hnm=hnm, bn_groups=cfg.train.bn_groups
        )
        state = replicate(TrainState.create(jax.tree.map(np.asarray, variables), tx, 0), mesh)
        t0 = time.perf_counter()
        step = step.lower(state, fixed).compile()
        compile_s = time.perf_counter() - t0
        state, m = step(state, fixed)  # warm-up
        float(m["loss"])
        modes = [("compute only", None)]
        if with_data:
            ds = make_dataset(sampler, steps + 2, workers=workers, prefetch=2)
            modes.append((f"with data ({workers} workers)", iterator_at(ds, None)))
        for mode, it in modes:
            if it is not None:
                next(it)  # the first batch pays for starting the workers
            t0 = time.perf_counter()
            for _ in range(steps):
                batch = fixed if it is None else shard_batch(split_report(next(it))[0], mesh)
                state, m = step(state, batch)
                float(m["loss"])
            dt = (time.perf_counter() - t0) / steps
            if it is not None:
                it.close()  # stop the worker processes
            rows.append(
                {
                    "phase": name,
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
