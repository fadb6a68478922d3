#!/usr/bin/env python3
"""Training speed side by side: the official hqucv/siamrn training step (PyTorch, CPU) and ours
(``siamrn_jax.train.step.make_train_step``, the step ``train.py`` runs, on a one-device mesh), same weights
(the parity recipe, seed 0), same batch (the training-step fixture's official batch, tiled to ``--batch``),
same phase, in one process, interleaved so that machine noise hits both.

usage: bench_step.py [--batch B] [--rounds R] [--steps K] [--phases a,b] [--threads T] [--out FILE.json]

Phases: a = epoch 0 (backbone frozen, uniform negatives), b = epoch 10 (layer2-4 trainable, online
hard-negative mining; ours mines on device). Per round and phase: K official steps, then K of ours; the
figure is the median seconds per step over all rounds, and pairs/s = B / that; the ratio of the median
process CPU times is printed too (less sensitive to other load on the machine, blind to how well each
uses the cores). Our first call (compile) is not timed; the official step's first call is not timed
either.

The official step is run as ``../shared/tools/official_train/make_train_fixture.py`` runs it (its CPU shims,
stubs and recording wrappers, which also route the MultiDetector 'train' branch to its intended 7x7 view;
the recording adds copies of the proposals only). Needs torch, yacs, a bare git mirror of hqucv/siamrn
(``REF_SIAMRN_MIRROR``) and ``../shared/tools`` (``SIAMRN_SHARED_TOOLS``). Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SHARED_TOOLS = Path(os.environ.get("SIAMRN_SHARED_TOOLS", str(SHARED / "tools")))
sys.path[:0] = [str(SHARED_TOOLS / "official_train"), str(SHARED_TOOLS / "official_bench"), str(REPO)]

import fixture_io  # noqa: E402
import make_train_fixture as mtf  # noqa: E402
import torch  # noqa: E402

EPOCHS = {"a": 0, "b": 10}


def tiled(a: np.ndarray, batch: int) -> np.ndarray:
    reps = -(-batch // a.shape[0])
    return np.concatenate([a] * reps)[:batch]


def official_setup(off, fx: dict, batch: int, epoch: int):
    """A fresh seed-0 model in training mode, the official optimiser of ``epoch``, the batch as tensors."""
    model = off.model_builder.ModelBuilder()
    sd = mtf.weights_for(model, 0)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}, strict=True)
    model = model.cuda().train()
    optimizer, scheduler = off.train.build_opt_lr(model, epoch)
    if epoch != off.cfg.TRAIN.START_EPOCH:
        scheduler.step(epoch)
    data = {}
    for k in fx:
        if k.startswith("batch/") and k != "batch/neg_pair":
            a = tiled(np.asarray(fx[k]), batch)
            data[k[len("batch/") :]] = torch.from_numpy(a.astype(np.int64) if a.dtype == np.int32 else a)
    return model, optimizer, data


def official_step(off, cap, model, optimizer, data: dict, epoch: int) -> None:
    cap.reset()  # the recording wrappers' lists (they would grow from step to step)
    random.seed(epoch + 1)
    np.random.seed(epoch + 1)  # noqa: NPY002 (the official code draws from NumPy's global RNG)
    outputs = model(data, epoch)
    optimizer.zero_grad()
    outputs["total_loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), off.cfg.TRAIN.GRAD_CLIP)
    optimizer.step()


def ours_setup(fx: dict, batch: int, phase: str):
    from siamrn_jax.checkpoint import abstract_variables
    from siamrn_jax.config import build_model, load_config
    from siamrn_jax.convert.convert import torch_to_flax
    from siamrn_jax.sharding import data_mesh, replicate, shard_batch
    from siamrn_jax.train.optim import make_optimizer
    from siamrn_jax.train.schedule import epoch_phase
    from siamrn_jax.train.step import TrainState, make_train_step
    from tests.conftest import parity_state_dict

    model = build_model(load_config("vot").model)
    variables, _ = torch_to_flax(parity_state_dict(0), abstract_variables(model))
    trainable, hnm = epoch_phase(EPOCHS[phase])
    tx = make_optimizer(float(fx[f"{phase}/lr"][1]), trainable)
    mesh = data_mesh(1)
    step = make_train_step(model, tx, mesh, backbone_trainable=trainable, hnm=hnm)
    b = {k: tiled(v, batch) for k, v in fixture_io.jax_batch(fx, phase).items()}
    b["index"] = np.arange(batch, dtype=np.int32)
    state = replicate(TrainState.create(variables, tx, seed=0), mesh)
    return step, state, shard_batch(b, mesh)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--phases", default="a,b")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    from siamrn_jax.xla_flags import apply_default_xla_flags

    apply_default_xla_flags()  # what train.py runs with (before JAX starts its backend)
    import jax

    torch.set_num_threads(a.threads)
    fx = fixture_io.load(SHARED / "fixtures" / "train_step" / "train_seed0.npz")
    off = mtf.Official(Path(tempfile.gettempdir()) / "siamrn_refsrc")
    mtf.configure(off, a.batch, Path(tempfile.gettempdir()) / "siamrn_bench_data")
    cap = mtf.Capture(off)  # the shims of the official step (MultiDetector 7x7 view, intended negative order)
    phases = a.phases.split(",")
    runs = {}
    times = {p: {"official": [], "ours": [], "official_cpu": [], "ours_cpu": []} for p in phases}
    for p in phases:
        model, opt, data = official_setup(off, fx, a.batch, EPOCHS[p])
        official_step(off, cap, model, opt, data, EPOCHS[p])  # warm-up
        step, state, batch = ours_setup(fx, a.batch, p)
        state, m = step(state, batch)  # compile
        jax.block_until_ready(m)
        runs[p] = [model, opt, data, step, state, batch]
    for r in range(a.rounds):
        for p in phases:
            model, opt, data, step, state, batch = runs[p]
            for _ in range(a.steps):
                t0, c0 = time.perf_counter(), time.process_time()
                official_step(off, cap, model, opt, data, EPOCHS[p])
                times[p]["official"].append(time.perf_counter() - t0)
                times[p]["official_cpu"].append(time.process_time() - c0)
            for _ in range(a.steps):
                t0, c0 = time.perf_counter(), time.process_time()
                state, m = step(state, batch)
                jax.block_until_ready(m)
                times[p]["ours"].append(time.perf_counter() - t0)
                times[p]["ours_cpu"].append(time.process_time() - c0)
            runs[p][4] = state
            last = {k: [round(t, 2) for t in v[-a.steps :]] for k, v in times[p].items()}
            print(f"round {r}: phase {p}: official {last['official']} ours {last['ours']}", flush=True)
    result = {
        "batch": a.batch,
        "threads": a.threads,
        "torch": torch.__version__,
        "jax": jax.__version__,
        "phases": {},
    }
    for p in phases:
        off_s, ours_s = statistics.median(times[p]["official"]), statistics.median(times[p]["ours"])
        result["phases"][p] = {
            "official_s": off_s,
            "ours_s": ours_s,
            "official_pairs_per_s": a.batch / off_s,
            "ours_pairs_per_s": a.batch / ours_s,
            "ratio": off_s / ours_s,
            "cpu_ratio": statistics.median(times[p]["official_cpu"])
            / statistics.median(times[p]["ours_cpu"]),
            "all": times[p],
        }
        print(
            f"phase {p} (epoch {EPOCHS[p]}), batch {a.batch}: official {off_s:.2f} s/step "
            f"({a.batch / off_s:.2f} pairs/s), ours {ours_s:.2f} s/step ({a.batch / ours_s:.2f} pairs/s): "
            f"{off_s / ours_s:.2f}x (CPU time {result['phases'][p]['cpu_ratio']:.2f}x)"
        )
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
