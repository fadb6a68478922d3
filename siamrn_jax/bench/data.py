"""Training data at benchmark scale: ``python -m siamrn_jax.bench data`` (issue 13's scale table).

Generates a GOT-10k-layout tree of ``--tracks`` x ``--frames`` real frames (re-encoded at ``--size`` from
the real sequences of ``--frames-from``, with their ground truth scaled; the tree hard-links a pool of
distinct frames, so it costs the pool's disk space, while the records written from it are full size),
builds it with the TFDS builder, then measures on this machine: build time; open time and memory of
``TfdsSource``; bytes read per sample (``/proc/self/io`` rchar, which counts page-cache hits too) against
the frame's JPEG size; crop511 samples/s on one core; the full sampler (4 crops, augmentation, labels,
proposals) pairs/s on one core and through grain's worker processes; and, with the smoke model training on
this data, how long each step waits for its batch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from siamrn_jax.data import tfds_builders
from siamrn_jax.data.loader import iterator_at, make_dataset
from siamrn_jax.data.sampler import DatasetSpec, TripletSampler, split_report
from siamrn_jax.data.tfds_source import TfdsSource, resolve_version_dir
from siamrn_jax.io.annotations import boxes_from_rows
from siamrn_jax.io.sources import read_image, read_sequence_folder

_LOG = logging.getLogger(__name__)
TARGET_PAIRS_S = 2000  # one H100's training step rate (PERFORMANCE.md): what the pipeline must feed


@dataclasses.dataclass
class Row:
    quantity: str
    value: str


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def make_pool(sequences: Path, size: tuple[int, int], limit: int, out: Path) -> list[tuple[Path, np.ndarray]]:
    """Up to ``limit`` real frames re-encoded at ``size`` (w, h), with their (x, y, w, h) box scaled."""
    out.mkdir(parents=True, exist_ok=True)
    folders = sorted(p for p in sequences.iterdir() if p.is_dir())
    per_seq = max(1, -(-limit // max(1, len(folders))))
    pool = []
    for folder in folders:
        seq = read_sequence_folder(folder)
        gt = boxes_from_rows(seq.rows)
        step = max(1, len(gt) // per_seq)
        for t in range(0, len(gt), step)[:per_seq]:
            if not np.all(np.isfinite(gt[t])) or min(gt[t][2:]) < 4:
                continue
            image = read_image(seq.frames[t])
            sx, sy = size[0] / image.shape[1], size[1] / image.shape[0]
            path = out / f"{len(pool):06d}.jpg"
            cv2.imwrite(str(path), cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            pool.append((path, gt[t] * (sx, sy, sx, sy)))
    return pool[:limit]


def make_tree(pool: list[tuple[Path, np.ndarray]], tracks: int, frames: int, root: Path) -> None:
    """``root/train/GOT-10k_Train_NNNNNN/{00000001.jpg ..., groundtruth.txt}``, frames hard-linked."""
    rng = np.random.default_rng(0)
    for t in range(tracks):
        seq = root / "train" / f"GOT-10k_Train_{t + 1:06d}"
        seq.mkdir(parents=True, exist_ok=True)
        picks = rng.integers(len(pool), size=frames)
        for f, k in enumerate(picks):
            os.link(pool[k][0], seq / f"{f + 1:08d}.jpg")
        (seq / "groundtruth.txt").write_text(
            "".join(",".join(f"{v:.2f}" for v in pool[k][1]) + "\n" for k in picks)
        )


def got10k_tree_from_sequences(sequences: Path, root: Path, names: Sequence[str] | None = None) -> list[str]:
    """A GOT-10k-layout training tree (``root/train/<name>/00000001.jpg`` + ``groundtruth.txt``) of the
    sequence folders in ``sequences`` (only ``names`` when given: a train split), frames symlinked and
    ground truth as annotated (VOT polygons as pysot's boxes), for ``tfds_builders got10k``. Frames past
    the last ground-truth row are left out. Returns the sequence names."""
    folders = sorted(p for p in sequences.iterdir() if p.is_dir())
    if names is not None:
        missing = sorted(set(names) - {p.name for p in folders})
        if missing:
            raise FileNotFoundError(2, f"no sequence folders {missing}", str(sequences))
        folders = [p for p in folders if p.name in set(names)]
    names = []
    for folder in folders:
        seq = read_sequence_folder(folder)
        if not seq.rows:
            continue
        out = root / "train" / seq.name
        out.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(seq.frames[: len(seq.rows)]):
            (out / f"{i + 1:08d}.jpg").symlink_to(frame.resolve())
        lines = (",".join(f"{v:.10g}" for v in box) + "\n" for box in boxes_from_rows(seq.rows))
        (out / "groundtruth.txt").write_text("".join(lines))
        names.append(seq.name)
    return names


def _random_frames(src: TfdsSource, n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = int(rng.integers(len(src)))
        out.append((t, int(rng.integers(src.track_length(t)))))
    return out


def measure_source(src: TfdsSource, samples: int) -> list[Row]:
    """Bytes per sample and crop511 rate (this process, one core), in steady state: array_record opens a
    shard's reader (and reads its record index, 8 bytes a record) on the first access to that shard, so
    ``samples`` untimed random reads come first."""
    for t, f in _random_frames(src, samples, 0):
        src.frame(t, f)
    picks = _random_frames(src, samples, 1)
    read, jpeg = 0, 0
    for t, f in picks:
        before = _rchar()
        src.frame(t, f)
        read += _rchar() - before
        jpeg += src.frame_nbytes(t, f)
    t0 = time.perf_counter()
    for t, f in picks:
        src.crop511(t, f)
    rate = len(picks) / (time.perf_counter() - t0)
    return [
        Row(
            "bytes read per sample, steady state (record + its framing)",
            f"{read / len(picks) / 1024:.1f} KiB",
        ),
        Row("  vs the frame's JPEG", f"{jpeg / len(picks) / 1024:.1f} KiB ({read / jpeg:.2f}x)"),
        Row("crop511 samples/s, one core (read + decode + 511 crop)", f"{rate:.0f}"),
    ]


_OPEN = """
import json, os, sys, time
from siamrn_jax.data.tfds_source import TfdsSource
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
r0, t0 = rss(), time.perf_counter()
src = TfdsSource(sys.argv[1])
print(json.dumps({"open_s": time.perf_counter() - t0, "rss_mb": rss() - r0, "tracks": len(src),
                  "frames": sum(src.track_length(t) for t in range(len(src)))}))
"""


def measure_open(directory: Path) -> dict:
    """Open time and memory of a ``TfdsSource`` in a fresh process (this one's heap is not a clean slate)."""
    out = subprocess.run(
        [sys.executable, "-c", _OPEN, str(directory)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_pipeline(src: TfdsSource, batch: int, batches: int, workers: int) -> tuple[list[Row], float]:
    """Full sampler rate in-process (one core) and through grain workers; returns rows and pairs/s/core."""
    sampler = TripletSampler([DatasetSpec(src, -1, 100)], seed=0, global_batch=batch)
    sampler.batch(range(batch))  # warm (pass cache, opened shards)
    t0 = time.perf_counter()
    for b in range(1, batches + 1):
        sampler.batch(range(b * batch, (b + 1) * batch))
    per_core = batches * batch / (time.perf_counter() - t0)
    rows = [
        Row("full pipeline pairs/s, one core (4 crops, augment, labels, proposals)", f"{per_core:.1f}"),
        Row(f"  cores for {TARGET_PAIRS_S} pairs/s", f"{int(np.ceil(TARGET_PAIRS_S / per_core))}"),
    ]
    if workers:
        it = iterator_at(make_dataset(sampler, batches + 1, workers=workers, prefetch=2), None)
        next(it)  # starting the workers
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        rate = batches * batch / (time.perf_counter() - t0)
        it.close()
        rows.append(Row(f"full pipeline pairs/s, grain, {workers} worker processes", f"{rate:.1f}"))
    return rows, per_core


def measure_step_wait(src: TfdsSource, config: str, steps: int, workers: int) -> list[Row]:
    """The smoke model's train step fed by the pipeline: step time and the time ``next()`` blocks."""
    import jax

    from siamrn_jax.checkpoint import init_variables
    from siamrn_jax.config import build_model, load_config
    from siamrn_jax.sharding import data_mesh, replicate, shard_batch
    from siamrn_jax.train.optim import make_optimizer
    from siamrn_jax.train.step import TrainState, make_train_step

    cfg = load_config(config)
    model = build_model(cfg.model)
    mesh = data_mesh(1)
    batch = cfg.train.batch_per_device
    sampler = TripletSampler([DatasetSpec(src, -1, 100)], seed=0, global_batch=batch)
    tx = make_optimizer(cfg.train.base_lr, False)
    step = make_train_step(
        model, tx, mesh, backbone_trainable=False, hnm=False, bn_groups=cfg.train.bn_groups
    )
    state = replicate(TrainState.create(jax.tree.map(np.asarray, init_variables(model)), tx, 0), mesh)
    it = iterator_at(make_dataset(sampler, steps + 2, workers=workers, prefetch=2), None)
    for _ in range(2):  # compilation, worker start
        state, m = step(state, shard_batch(split_report(next(it))[0], mesh))
        float(m["loss"])
    wait, t0 = 0.0, time.perf_counter()
    for _ in range(steps):
        tw = time.perf_counter()
        host = next(it)
        wait += time.perf_counter() - tw
        state, m = step(state, shard_batch(split_report(host)[0], mesh))
        float(m["loss"])
    total = time.perf_counter() - t0
    it.close()
    return [
        Row(f"train step ({config}, batch {batch}, {workers} workers), ms", f"{total / steps * 1e3:.0f}"),
        Row("  of which waiting for data, ms per step", f"{wait / steps * 1e3:.1f} ({wait / total:.1%})"),
    ]


def bench_data(args) -> str:
    """Runs every measurement and returns the Markdown table (``args``: the CLI's namespace)."""
    work = args.workdir
    raw, data_dir = work / "raw", work / "tfds"
    rows = []
    if not (data_dir / "got10k").is_dir() or args.rebuild:
        shutil.rmtree(work, ignore_errors=True)
        pool = make_pool(args.frames_from, args.size, args.pool, work / "pool")
        t0 = time.perf_counter()
        make_tree(pool, args.tracks, args.frames, raw)
        rows.append(Row("generate the raw tree (hard links)", f"{time.perf_counter() - t0:.1f} s"))
        t0 = time.perf_counter()
        out = tfds_builders.build("got10k", raw, data_dir)
        build_s = time.perf_counter() - t0
        n = args.tracks * args.frames
        rows.append(
            Row(
                "build (python -m siamrn_jax.data.tfds_builders got10k)",
                f"{build_s:.0f} s ({n / build_s:.0f} frames/s)",
            )
        )
    out = resolve_version_dir(data_dir / "got10k")
    size = sum(p.stat().st_size for p in out.iterdir())
    opened = measure_open(out)
    src = TfdsSource(out)
    rows += [
        Row(
            "dataset",
            f"{opened['tracks']} tracks, {opened['frames']} frames, {size / 2**30:.2f} GiB of records",
        ),
        Row("open TfdsSource (reads the index only; fresh process)", f"{opened['open_s']:.2f} s"),
        Row("source memory (RSS increase at open; fresh process)", f"{opened['rss_mb']:.0f} MB"),
        Row("source pickled into each loader worker", f"{len(pickle.dumps(src)) / 1024:.1f} KiB"),
    ]
    rows += measure_source(src, args.samples)
    pipeline, _ = measure_pipeline(src, 8, args.batches, args.workers)
    rows += pipeline
    if args.steps:
        rows += measure_step_wait(src, args.config, args.steps, args.workers)
    w, h = args.size
    head = f"{args.tracks} x {args.frames} frames at {w}x{h}; {os.cpu_count()} CPU cores\n\n"
    return (
        head
        + "| quantity | measured |\n|---|---|\n"
        + "".join(f"| {r.quantity} | {r.value} |\n" for r in rows)
    )
