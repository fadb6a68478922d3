"""The training loop behind ``train.py``: phases, checkpoints, exact resume, metrics.

Phases (static, one compiled step each): the backbone is frozen (stop_gradient, BN eval) before
``backbone_train_epoch`` and trains afterwards (the optimiser is rebuilt there, resetting momentum, as the
official ``build_opt_lr`` does); from ``hnm_epoch`` on the RD proposals come from the head's predictions
with online hard negatives.

Workdir layout::

    WORKDIR/config.json            the resolved config of the run (checked on resume)
    WORKDIR/checkpoints/<step>/    orbax: state (TrainState), data (grain iterator state), counters (JSON)
    WORKDIR/metrics.jsonl          one line per step: step, epoch, lr, losses, grad norm, bad reads,
                                   data wait (ms the host blocked on the pipeline), pairs/s
    WORKDIR/tb/                    TensorBoard event files (same scalars)
    WORKDIR/model/                 final weights as a siamrn-jax checkpoint (track.py --checkpoint)

Exact resume: the state (params, BN statistics, optimiser, step, PRNG key, skip counter), the data
iterator and the data counters are restored; every sample is a function of its global index and every
on-device random draw a function of (key, step, sample index), so a resumed run repeats the uninterrupted
run's steps.

Bad training data (a missing, unreadable or corrupt frame) never kills a run by itself: the sampler skips
it and redraws the sample (``TripletSampler.sample``), the loop logs each message, counts the bad reads
(``DataCounters``: metrics ``bad_reads``, the summary, the checkpoint) and stops with a ``TrainError``
only when their share passes ``data.max_bad_fraction`` (``check_bad_fraction``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from siamrn_jax import checkpoint as model_ckpt
from siamrn_jax import progress
from siamrn_jax.atomic import atomic_output
from siamrn_jax.config import build_model
from siamrn_jax.data.loader import iterator_at, make_dataset
from siamrn_jax.data.mixture import build_datasets
from siamrn_jax.data.sampler import TripletSampler, split_report
from siamrn_jax.data.targets import RD_PAIRS
from siamrn_jax.errors import SiamrnError
from siamrn_jax.sharding import data_mesh, replicate, shard_batch, shardings
from siamrn_jax.train.forward import LossConfig
from siamrn_jax.train.optim import make_optimizer
from siamrn_jax.train.schedule import make_schedule
from siamrn_jax.train.step import TrainState, make_train_step


class TrainError(SiamrnError, ValueError):
    """A training run cannot start (bad config, incompatible workdir or init checkpoint) or go on (too
    much bad training data)."""


@dataclasses.dataclass
class DataCounters:
    """Training-data health of a run since step 0, over all processes; saved with every checkpoint.

    Attributes:
      samples: samples built (a global batch per step).
      bad_reads: failed draws of those samples (each met a bad frame and was drawn again).
      last_error: the latest bad-read message this process saw (not checkpointed).
    """

    samples: int = 0
    bad_reads: int = 0
    last_error: str = ""

    def to_json(self) -> dict[str, int]:
        return {"samples": self.samples, "bad_reads": self.bad_reads}


def check_bad_fraction(counters: DataCounters, max_fraction: float) -> None:
    """``TrainError`` when more than ``max_fraction`` of all sample draws met bad data.

    Checked only from ``10 / max_fraction`` draws on (1000 at the default 0.01): a single bad frame then
    weighs at most a tenth of the allowed share, so one bad frame in the first batch never aborts a run,
    while a dataset that is broken for real stops within ~1000 samples. 0 = no bad read tolerated at all.
    """
    draws = counters.samples + counters.bad_reads
    if counters.bad_reads == 0 or (max_fraction > 0 and draws < 10 / max_fraction):
        return
    if counters.bad_reads > max_fraction * draws:
        raise TrainError(
            f"training data: {counters.bad_reads} of {draws} sample draws met bad data "
            f"({counters.bad_reads / draws:.2%} > data.max_bad_fraction={max_fraction:g}); "
            f"last: {counters.last_error or '(on another process)'}"
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """Step arithmetic of a run."""

    global_batch: int
    steps_per_epoch: int
    total_steps: int
    unfreeze_step: int
    hnm_step: int

    def phase(self, step: int) -> tuple[bool, bool]:
        """(backbone_trainable, hnm) of the step that runs at global step ``step`` (0-based)."""
        return step >= self.unfreeze_step, step >= self.hnm_step


def make_plan(t: ml_collections.ConfigDict, devices: int) -> Plan:
    gb = t.batch_per_device * devices
    spe = t.steps_per_epoch or max(1, t.videos_per_epoch // gb)
    hnm = t.hnm_epoch * spe if t.online_hnm else 1 << 62
    return Plan(gb, spe, spe * t.epochs, t.backbone_train_epoch * spe, hnm)


def _host(x: jax.Array) -> np.ndarray:
    """Value of a replicated global array on this host (works in multi-process runs too)."""
    return np.asarray(x.addressable_data(0))


def init_train_variables(cfg: ml_collections.ConfigDict, model) -> dict[str, Any]:
    """The variables a fresh run starts from: ``train.init_checkpoint``, or random (float32, BN-calibrated
    as ``train.calibrate_bn`` says) with the loc bias of ``set_loc_bias``."""
    path = cfg.train.init_checkpoint
    if not path:
        # Initialised (and BN-calibrated) in float32: model.dtype changes the arithmetic of the run, not
        # its starting point.
        f32 = model.clone(dtype=jnp.float32)
        variables = model_ckpt.init_variables(f32, seed=cfg.train.seed, calibrate=cfg.train.calibrate_bn)
        return set_loc_bias(variables, cfg.train.loc_bias_init)
    # Loaded in the run's computation dtype: a float32 checkpoint (e.g. converted) starts a bf16 run.
    stored_model, variables, _ = model_ckpt.load(path, dtype=model.dtype)
    want, have = model_ckpt.model_fields(model), model_ckpt.model_fields(stored_model)
    # Over both sides: model_fields leaves out the ablation switches at their defaults.
    diff = [
        f"{k}: checkpoint {have.get(k)!r} vs config {want.get(k)!r}"
        for k in sorted(want.keys() | have.keys())
        if have.get(k) != want.get(k)
    ]
    if diff:
        raise TrainError(f"{path}: init checkpoint does not fit config.model: {'; '.join(diff)}")
    return variables


def set_loc_bias(variables: dict[str, Any], value: float) -> dict[str, Any]:
    """From-scratch runs: start every level's loc output at ``exp(value)`` pixels instead of ~1 px.

    Both BAN heads predict distances as ``exp(x)`` (SiamRN: ``exp(scale * x)`` per level, the bias of
    ``head/box*/loc/head/3``; NanoTrack: ``head/bbox_pred/0``); at the default init x ~ 0, i.e. 1-pixel
    boxes, where the linear-IoU loss has a gradient of order 1 / target area and regression takes a very
    long time to start (it does in the official recipe too, which trains for 20 M pairs). 0 keeps the init.
    """
    if not value:
        return variables
    head = dict(variables["params"]["head"])
    fill = lambda layer: {**layer, "bias": np.full_like(np.asarray(layer["bias"]), value)}  # noqa: E731
    boxes = [name for name in head if name.startswith("box")]
    if "bbox_pred" in head:  # NanoTrack: one level, one 1x1 conv
        head["bbox_pred"] = {**head["bbox_pred"], "0": fill(head["bbox_pred"]["0"])}
    elif not boxes:
        raise TrainError(
            f"train.loc_bias_init={value}: the model's head has no loc output layer (SiamRN's "
            f"head/box*/loc/head/3, NanoTrack's head/bbox_pred/0); set it to 0 for this architecture"
        )
    for name in boxes:
        box = head[name]
        loc = dict(box["loc"])
        loc["head"] = {**loc["head"], "3": fill(loc["head"]["3"])}
        head[name] = {**box, "loc": loc}
    return {**variables, "params": {**variables["params"], "head": head}}


class _StopFlag:
    """Set by SIGTERM / SIGINT: the loop saves a checkpoint after the current step and returns."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: no signal handling
                self._old[s] = signal.signal(s, self._set)
        return self

    def _set(self, signum, _frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def _check_workdir_config(workdir: Path, cfg: ml_collections.ConfigDict) -> None:
    path = workdir / "config.json"
    now = json.loads(cfg.to_json_best_effort())
    if path.is_file():
        old = json.loads(path.read_text())
        # Bookkeeping keys may change between restarts; anything else changes the run.
        free = {
            "train.log_every",
            "train.checkpoint_every",
            "train.keep_checkpoints",
            "data.workers",
            "data.prefetch",
            "data.max_bad_fraction",  # when to give up on bad data; the samples do not depend on it
            "model.remat_backbone",  # memory vs recomputation: the same values (absent in older runs)
        }
        # Keys added after a run started mean what the run did when absent from its config.json.
        added = {
            "train.frozen": [],
            "train.rd_pairs": "contrastive",
            "model.rd_levels": None,
            "model.rd_heads": ["global", "local", "patch"],
        }
        flat_old, flat_now = _flat(old), _flat(now)
        diff = sorted(
            k
            for k in flat_old.keys() | flat_now.keys()
            if k not in free and flat_old.get(k, added.get(k)) != flat_now.get(k)
        )
        if diff:
            keys = ", ".join(diff[:8])
            raise TrainError(
                f"{path}: the workdir holds a run with another config ({keys}); use a new workdir"
            )
        return
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(now, indent=2, sort_keys=True))


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class _Run(NamedTuple):
    """What every step of ``train`` needs: the static pieces of a run, built once by ``_setup``."""

    cfg: ml_collections.ConfigDict
    workdir: Path
    primary: bool
    mesh: jax.sharding.Mesh
    plan: Plan
    model: Any
    schedule: Any
    optimizer: Callable[[bool], Any]  # backbone_trainable -> optax transformation
    step_fn: Callable[[tuple[bool, bool]], Any]  # phase -> compiled step (built on first use)


def _setup(cfg: ml_collections.ConfigDict, workdir: Path) -> _Run:
    """Workdir check, mesh, step plan, model, LR schedule, optimiser and train-step factories."""
    primary = jax.process_index() == 0
    t = cfg.train
    # A bad model section or strategy is a one-line error before the workdir is touched.
    model = build_model(cfg.model)
    rd_pairs = t.get("rd_pairs", "contrastive")  # absent from configs written before the switch
    if rd_pairs not in RD_PAIRS:
        raise TrainError(f"train.rd_pairs={rd_pairs!r}: expected one of {', '.join(RD_PAIRS)}")
    if primary:
        workdir.mkdir(parents=True, exist_ok=True)
        _check_workdir_config(workdir, cfg)
    mesh = data_mesh()
    plan = make_plan(t, jax.device_count())
    if t.batch_per_device % t.bn_groups:
        raise TrainError(
            f"train.bn_groups={t.bn_groups} does not divide train.batch_per_device={t.batch_per_device}"
        )
    if not 0 <= cfg.data.max_bad_fraction <= 1:
        raise TrainError(f"data.max_bad_fraction={cfg.data.max_bad_fraction}: expected a value in [0, 1]")
    schedule = make_schedule(
        plan.steps_per_epoch,
        base_lr=t.base_lr,
        warmup_lr=t.warmup_lr,
        warmup_epochs=t.warmup_epochs,
        end_lr=t.end_lr,
        total_epochs=t.epochs,
        smooth=t.smooth_lr,
    )

    def optimizer(trainable: bool):
        return make_optimizer(
            schedule,
            trainable,
            t.momentum,
            t.weight_decay,
            t.clip_norm,
            t.backbone_lr_mult,
            start_step=plan.unfreeze_step if trainable else 0,
            stem_trainable=t.stem_trainable,
            frozen=tuple(t.frozen),
        )

    loss_cfg = LossConfig(t.cls_weight, t.loc_weight, t.match_weight, t.match_loss)
    steps: dict[tuple[bool, bool], Any] = {}

    def step_fn(phase):
        if phase not in steps:
            steps[phase] = make_train_step(
                model,
                optimizer(phase[0]),
                mesh,
                backbone_trainable=phase[0],
                hnm=phase[1],
                loss_cfg=loss_cfg,
                reduction=t.reduction,
                bn_groups=t.bn_groups,
                loss_limit=t.loss_limit,
                stem_trainable=t.stem_trainable,
                frozen=tuple(t.frozen),
                rd_pairs=rd_pairs,
            )
        return steps[phase]

    return _Run(cfg, workdir, primary, mesh, plan, model, schedule, optimizer, step_fn)


def _restore_or_init(run: _Run, manager: ocp.CheckpointManager) -> tuple[Any, Any, DataCounters, int]:
    """(state, data iterator state or None, data counters, start step): the latest checkpoint, or a fresh
    state."""
    t, plan = run.cfg.train, run.plan
    start = manager.latest_step()
    if start is None:
        variables = init_train_variables(run.cfg, run.model)
        state = replicate(TrainState.create(variables, run.optimizer(plan.phase(0)[0]), t.seed), run.mesh)
        return state, None, DataCounters(), 0
    # The restored optimiser state belongs to the phase of the last step that ran.
    tx = run.optimizer(plan.phase(max(start - 1, 0))[0])
    variables = model_ckpt.abstract_variables(run.model)
    abstract = jax.eval_shape(lambda v: TrainState.create(v, tx, t.seed), variables)
    rep = shardings(run.mesh)[0]
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), abstract)
    items = {"state": ocp.args.StandardRestore(abstract), "data": ocp.args.JsonRestore()}
    # Checkpoints written before the counters existed lack the item (orbax raises KeyError for it). The
    # step folder is orbax's default name, that of the manager ``train`` creates.
    has_counters = (Path(manager.directory) / str(start) / "counters").is_dir()
    if has_counters:
        items["counters"] = ocp.args.JsonRestore()
    restored = manager.restore(start, args=ocp.args.Composite(**items))
    if restored["data"] is None:
        raise TrainError(f"{run.workdir}: checkpoint {start} has no data iterator state")
    if has_counters:
        c = restored["counters"]
        counters = DataCounters(samples=int(c["samples"]), bad_reads=int(c["bad_reads"]))
    else:  # every step built one global batch; the bad reads of those steps are unknown
        counters = DataCounters(samples=start * plan.global_batch)
    return restored["state"], restored["data"], counters, start


def _data_iterator(run: _Run, data_state: Any):
    """The grain iterator of this process's batches, positioned at ``data_state`` (None: the start)."""
    cfg, plan = run.cfg, run.plan
    sampler = TripletSampler(
        build_datasets(cfg.data),
        seed=cfg.train.seed,
        global_batch=plan.global_batch,
        gray=cfg.data.gray,
        neg=cfg.data.neg,
        hnm_index=_hnm_index(cfg.data),
        # The point labels follow the model's score map (25 at stride 8; NanoTrack 16 or 15 at stride 16).
        score_size=run.model.score_size,
        stride=run.model.stride,
    )
    dataset = make_dataset(
        sampler,
        plan.total_steps,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        workers=cfg.data.workers,
        prefetch=cfg.data.prefetch,
    )
    return iterator_at(dataset, data_state)


def _closing(stack: contextlib.ExitStack, obj: Any, method: str = "close") -> Any:
    """Registers ``obj.<method>()`` to run when ``stack`` unwinds (normal end, error or signal)."""
    if obj is not None and hasattr(obj, method):
        stack.callback(getattr(obj, method))
    return obj


def train(
    cfg: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    stop_after: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) the run in ``workdir``.

    Steps: ``_setup`` -> ``_restore_or_init`` -> ``_data_iterator`` -> ``_loop`` -> ``_export``. The
    checkpoint manager, the data iterator (grain worker processes), the progress bar and the TensorBoard
    writer are closed whatever happens (``ExitStack``), so an error never leaves workers or a pending
    asynchronous checkpoint behind.

    Args:
      cfg: the experiment config (``configs/siamrn_r50.py``).
      workdir: run directory (created).
      stop_after: stop (with a checkpoint) once this global step is reached, even before the end.
      progress: show a progress bar (process 0 only).

    Returns:
      summary dict: ``step``, ``skipped`` (updates skipped for a bad loss), ``bad_reads`` and ``samples``
      (``DataCounters``), ``last`` metrics, ``pairs_per_s`` (steady state), ``state``.

    Raises:
      TrainError: a config, workdir or init checkpoint that does not fit; too much bad training data.
    """
    run = _setup(cfg, Path(workdir).absolute())
    options = ocp.CheckpointManagerOptions(max_to_keep=cfg.train.keep_checkpoints, create=True)
    with contextlib.ExitStack() as stack:
        manager = ocp.CheckpointManager(run.workdir / "checkpoints", options=options)
        # Unwinds last-registered first: the pending checkpoint finishes before the manager closes.
        _closing(stack, manager)
        _closing(stack, manager, "wait_until_finished")
        state, data_state, counters, start = _restore_or_init(run, manager)
        it = _closing(stack, _data_iterator(run, data_state))  # stops grain's worker processes
        metrics_path = run.workdir / "metrics.jsonl"
        if run.primary:
            _truncate_metrics(metrics_path, start)
        writer = _closing(stack, _tb_writer(run.workdir / "tb") if run.primary else None)
        bar = _closing(stack, _progress(run.plan.total_steps, start) if run.primary and progress else None)
        end = run.plan.total_steps if stop_after is None else min(run.plan.total_steps, stop_after)
        out = _Output(metrics_path, writer, bar)
        state, summary = _loop(run, manager, it, state, counters, start, end, out)
    if summary["step"] == run.plan.total_steps:
        _export(run, state)
    summary["state"] = state
    return summary


class _Output(NamedTuple):
    """Where the metrics rows go (process 0; ``writer`` and ``bar`` may be None)."""

    metrics_path: Path
    writer: Any
    bar: Any


def _loop(run: _Run, manager, it, state, counters: DataCounters, start: int, end: int, out: _Output):
    """Steps ``start`` .. ``end`` - 1: phase switches, metrics every ``log_every`` steps and at each
    checkpoint, checkpoints at ``checkpoint_every``, epoch ends, the last step and on SIGTERM / SIGINT.
    Returns (state, summary)."""
    t, plan = run.cfg.train, run.plan
    phase = plan.phase(max(start - 1, 0))  # the phase the state's optimiser belongs to
    # (step, device metrics, this process's bad reads, seconds the host waited for the batch)
    pending: list[tuple[int, dict, int, float]] = []
    summary: dict[str, Any] = {"step": start, "skipped": 0, "last": {}, "pairs_per_s": float("nan")}
    step = start
    timing = {"t": time.perf_counter(), "rates": [], "start": start}

    def save(step: int, force: bool = False):
        items = {
            "state": ocp.args.StandardSave(state),
            "data": ocp.args.JsonSave(it.get_state()),
            "counters": ocp.args.JsonSave(counters.to_json()),
        }
        manager.save(step, args=ocp.args.Composite(**items), force=force)

    with _StopFlag() as stop:
        while step < end:
            want = plan.phase(step)
            if want[0] != phase[0]:
                # Unfreeze: a new optimiser (momentum reset), as the official build_opt_lr at epoch 10.
                state = state.replace(opt_state=jax.jit(run.optimizer(want[0]).init)(state.params))
            phase = want
            t_wait = time.perf_counter()
            host, bad, messages = split_report(next(it))  # the step takes the model's arrays only
            wait = time.perf_counter() - t_wait  # the host blocked on the pipeline (the device may be busy)
            for message in messages:
                logging.getLogger(__name__).warning("train: bad training data skipped: %s", message)
            counters.last_error = messages[-1] if messages else counters.last_error
            state, m = run.step_fn(phase)(state, shard_batch(host, run.mesh))
            step += 1
            pending.append((step, m, bad, wait))
            # Read the flag once: a signal landing later in this iteration (during the metrics read or
            # the save) must not log a checkpoint that was never asked for; the next step handles it.
            signum = stop.signum
            last = step == end or signum is not None
            checkpoint = step % t.checkpoint_every == 0 or step % plan.steps_per_epoch == 0 or last
            # Reading the metrics also bounds the async queue (JAX_STACK.md finding 5: CPU collective hang);
            # at a checkpoint they bring the counters up to date and the metrics file up to the step.
            if step % t.log_every == 0 or checkpoint:
                summary["last"] = _report(run, pending, counters, timing, out)[-1]
                pending = []
            if checkpoint:
                save(step, force=last)
            if signum is not None:
                logging.getLogger(__name__).warning(
                    "train: signal %s: checkpoint at step %d saved, exiting", signum, step
                )
                break
    summary["step"] = step
    summary["skipped"] = int(_host(state.skipped))
    summary["bad_reads"], summary["samples"] = counters.bad_reads, counters.samples
    summary["pairs_per_s"] = float(np.median(timing["rates"])) if timing["rates"] else float("nan")
    return state, summary


def _report(run: _Run, pending: list, counters: DataCounters, timing: dict, out: _Output) -> list[dict]:
    """The metrics rows of the ``pending`` steps: counters brought up to date (bad reads summed over the
    processes) and checked against ``data.max_bad_fraction``, pairs/s of the window, rows written."""
    plan = run.plan
    now = time.perf_counter()
    rows = [_row(s, jax.tree.map(_host, mm), plan, run.schedule) for s, mm, _, _ in pending]
    rate = len(pending) * plan.global_batch / max(now - timing["t"], 1e-9)
    if pending[-1][0] - timing["start"] > len(pending):  # the first window includes compilation
        timing["rates"].append(rate)
    timing["t"] = now
    bad = _sum_over_processes(np.asarray([b for _, _, b, _ in pending], np.int64))
    for r, b, (*_, wait) in zip(rows, bad, pending, strict=True):
        counters.samples += plan.global_batch
        counters.bad_reads += int(b)
        r["bad_reads"] = counters.bad_reads
        r["data_wait_ms"] = wait * 1e3  # this process's; 0 when the pipeline keeps ahead of the step
        r["pairs_per_s"] = rate
    if run.primary:
        _append_metrics(out.metrics_path, rows, out.writer)
    if out.bar is not None:
        out.bar.update(len(rows))
        out.bar.set_postfix(loss=f"{rows[-1]['loss']:.4f}", pairs_s=f"{rate:.1f}")
    # After writing the rows: the metrics file shows the bad reads that stop the run.
    check_bad_fraction(counters, run.cfg.data.max_bad_fraction)
    return rows


def _sum_over_processes(x: np.ndarray) -> np.ndarray:
    """``x`` summed over the processes of the run (every process gets the same sum, so every process
    takes the same decision on it; ``x`` has the same shape everywhere)."""
    if jax.process_count() == 1:
        return x
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x)).sum(axis=0)


def _export(run: _Run, state) -> None:
    """The final weights as a tracker checkpoint, ``WORKDIR/model`` (process 0 writes it)."""
    host_vars = {
        "params": jax.tree.map(_host, state.params),
        "batch_stats": jax.tree.map(_host, state.batch_stats),
    }
    if run.primary:
        model_ckpt.save(
            run.workdir / "model", run.model, host_vars, source={"train": str(run.workdir)}, overwrite=True
        )


def _hnm_index(data: ml_collections.ConfigDict):
    if not data.hnm_index:
        return None
    from siamrn_jax.data.hnm_index import HardNegativeIndex

    return HardNegativeIndex.load(data.hnm_index)


def _row(step: int, m: dict, plan: Plan, schedule) -> dict[str, Any]:
    row = {"step": step, "epoch": (step - 1) // plan.steps_per_epoch, "lr": float(schedule(step - 1))}
    row.update({k: float(v) for k, v in m.items()})
    return row


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop rows after ``step`` (written before a crash, they are redone by the resumed run)."""
    if not path.is_file():
        return
    keep = [
        line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
    ]
    with atomic_output(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep))


def _append_metrics(path: Path, rows: list[dict], writer) -> None:
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())
    if writer is not None:
        for r in rows:
            for k, v in r.items():
                if k not in ("step", "epoch") and math.isfinite(v):
                    writer.add_scalar(f"train/{k}", v, r["step"])
        writer.flush()


def _tb_writer(path: Path):
    from tensorboardX import SummaryWriter

    return SummaryWriter(str(path))


def _progress(total: int, start: int):
    return progress.bar(total, unit="step", initial=start, always=True)


def read_metrics(workdir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``WORKDIR/metrics.jsonl``."""
    path = Path(workdir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
