"""``python -m siamrn_jax.bench suite [--quick] --out DIR``: PERFORMANCE.md section 6 (B1-B8) in one run.

One command for the rare, short sessions on an accelerator: it measures, per dtype (float32, bfloat16),
template init latency (B8), the batch-1 network-only step (B1) and the end-to-end tracker on a real
sequence (B2), batched frames/s for S sequences in lockstep (B3, stopping at the first size that does not
fit in memory), training pairs/s per phase at each per-device batch, compute only (B4) and fed by the
grain pipeline (B5), with compile times (B6), memory (B7: the compiled executable's argument + output +
temporary bytes, and the device's peak where it reports one) and MFU (XLA's own FLOP count of each
executable over the device's peak; "n/a" where the peak is unknown, e.g. on CPU). It writes
``DIR/suite.json`` (every figure) and ``DIR/suite.md`` (the tables), atomically, after every section,
so a run cut short by its time limit keeps what it measured. The timing loops, the tracker's and the
training step's set-up are those of ``bench track`` and ``bench train`` (``siamrn_jax.bench.track`` /
``.train``); this module adds the plan, the sizes, memory, FLOPs and MFU, and the result files.

Sizes: the full suite is the paper model (``vot`` config) at S in {1, 8, 32, 128, 512} and per-device
batches {28, 64}; ``--quick`` is the smoke model at S in {1, 8} and batch {2} (under 10 minutes on a
2-core CPU). ``--budget-s`` (default 450 s full, 540 s quick) skips what no longer fits, marking it so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from siamrn_jax import checkpoint
from siamrn_jax.atomic import atomic_output
from siamrn_jax.bench import track, train
from siamrn_jax.bench.timing import Timing, time_compiled
from siamrn_jax.bench.train import PHASES
from siamrn_jax.checkpoint import init_variables
from siamrn_jax.config import build_model, load_config

_LOG = logging.getLogger(__name__)

# Dense peak FLOP/s by device kind substring: (bfloat16, float32 as XLA runs it, i.e. TF32 on tensor cores).
PEAK_FLOPS = {
    "H200": (989e12, 494e12),
    "H100": (989e12, 494e12),
    "A100": (312e12, 156e12),
    "L4": (121e12, 60e12),
    "TPU v5p": (459e12, 459e12),
    "TPU v5 lite": (197e12, 197e12),
    "TPU v4": (275e12, 275e12),
}
# PERFORMANCE.md section 0 FLOP table (official modules, counted with torch), for the full-size model only:
# the SiamRN tracking step as the official code runs it, and the SiamBAN part of a training pair per phase
# (the table has no SiamRN training count). Our tracker does fewer FLOPs than the official order (fused
# relation detector, reused correlations), so its table MFU credits the official work.
TABLE_GFLOP = {"track": 234.0, "train_frozen": 159.0, "train_trainable": 373.0}


@dataclasses.dataclass(frozen=True)
class Plan:
    config: str
    dtypes: tuple[str, ...]
    sizes: tuple[int, ...]
    batches: tuple[int, ...]
    phases: tuple[str, ...]
    runs: int
    steps: int
    data_workers: int
    sequence: Path
    budget_s: float

    @classmethod
    def make(cls, quick: bool, **overrides) -> Plan:
        base = dict(
            config="smoke" if quick else "vot",
            dtypes=("float32", "bfloat16"),
            sizes=(1, 8) if quick else (1, 8, 32, 128, 512),
            batches=(2,) if quick else (28, 64),
            phases=tuple(PHASES),
            runs=5 if quick else 20,
            steps=3 if quick else 10,
            data_workers=2,
            sequence=Path(__file__).resolve().parents[2].parent
            / "shared"
            / "data"
            / "sequences"
            / "Crossing",
            budget_s=540.0 if quick else 450.0,
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


def _device() -> dict[str, Any]:
    d = jax.devices()[0]
    return {"platform": d.platform, "kind": d.device_kind, "count": jax.device_count()}


def _peak(dtype: str) -> float | None:
    kind = jax.devices()[0].device_kind
    for key, (bf16, f32) in PEAK_FLOPS.items():
        if key.lower() in kind.lower():
            return bf16 if dtype == "bfloat16" else f32
    return None


def _memory(compiled) -> dict[str, float | None]:
    """Compiled memory (MB) and the device's peak bytes in use so far (MB; None where not reported)."""
    out: dict[str, float | None] = {}
    try:
        m = compiled.memory_analysis()
        for k in ("argument", "output", "temp", "alias"):
            out[f"{k}_mb"] = getattr(m, f"{k}_size_in_bytes", 0) / 2**20
        out["total_mb"] = out["argument_mb"] + out["output_mb"] + out["temp_mb"] - out["alias_mb"]
    except (AttributeError, NotImplementedError, jax.errors.JaxRuntimeError):  # backends without it
        out["total_mb"] = None
    stats = jax.devices()[0].memory_stats() or {}
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20 if "peak_bytes_in_use" in stats else None
    return out


def _flops(compiled) -> float | None:
    try:
        cost = compiled.cost_analysis()
    except (AttributeError, NotImplementedError, jax.errors.JaxRuntimeError):
        return None
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0)) or None if cost else None


def _table_flops(plan: Plan, what: str, n: int) -> float | None:
    """PERFORMANCE.md's FLOPs for ``n`` frames / pairs of ``what``; None for other models than the paper's."""
    return TABLE_GFLOP[what] * 1e9 * n if plan.config == "vot" else None


def _mfu(flops: float | None, seconds: float, dtype: str) -> float | None:
    peak = _peak(dtype)
    return None if flops is None or peak is None else flops / seconds / peak


class _Clock:
    def __init__(self, budget_s: float):
        self.end = time.monotonic() + budget_s

    def left(self) -> float:
        return self.end - time.monotonic()


def _model(plan: Plan, dtype: str):
    cfg = load_config(plan.config)
    cfg.model.dtype = dtype
    return cfg, build_model(cfg.model)


def _oom(e: Exception) -> bool:
    return "RESOURCE_EXHAUSTED" in str(e) or "out of memory" in str(e).lower()


def _timing_row(bench: str, dtype: str, t: Timing, **extra) -> dict:
    return {
        "bench": bench,
        "dtype": dtype,
        "S": 1,
        "compile_s": t.compile_s,
        "ms": t.median_ms,
        "p90_ms": t.p90_ms,
        **extra,
    }


def tracking_rows(plan: Plan, dtype: str, clock: _Clock) -> list[dict]:
    """B8 template init, B1 network-only step, B2 end to end, B3 batched sizes, for one dtype."""
    from siamrn_jax.tracking.params import TrackerParams
    from siamrn_jax.tracking.runner import Tracker

    model, variables, _ = checkpoint.load_weights(checkpoint.RANDOM + plan.config, dtype, inference=False)
    jax.block_until_ready(variables)
    params = TrackerParams.for_model(model, "otb")
    sequence = plan.sequence
    if not sequence.is_dir():  # an accelerator host without ../shared: the generated demo scene
        import tempfile

        from siamrn_jax.tracking.demo import write_scene

        sequence = write_scene(Path(tempfile.mkdtemp()) / "demo_scene")
    frames, box = track.first_frames(sequence, plan.runs + 3)
    trk = Tracker(model, variables, params)
    init = track.template_init("", trk, frames[0], box, plan.runs)
    e2e = track.end_to_end("", trk, frames[1:])
    rows = [
        _timing_row("B8 template init", dtype, init),
        _timing_row(f"B2 end to end ({plan.sequence.name})", dtype, e2e, fps=1e3 / e2e.median_ms),
    ]
    state, x = trk.state, track.search_input(trk, frames[1])
    step = track.jitted_step(model, params)
    for s in plan.sizes:
        if clock.left() < 0:
            rows.append(
                {"bench": "B1/B3 network-only step", "dtype": dtype, "S": s, "skipped": "time budget"}
            )
            continue
        big, xb = track.lockstep(state, x, s)
        try:
            t0 = time.perf_counter()
            compiled = step.lower(variables, big, xb).compile()
            compile_s = time.perf_counter() - t0
            median, p90 = time_compiled(
                compiled, (variables, big, xb), plan.runs if s == 1 else max(3, plan.runs // 2)
            )
        except jax.errors.JaxRuntimeError as e:
            if not _oom(e):
                raise
            rows.append({"bench": "B3 network-only step", "dtype": dtype, "S": s, "skipped": "out of memory"})
            break
        flops = _flops(compiled)
        rows.append(
            {
                "bench": "B1 network-only step" if s == 1 else "B3 batched network-only step",
                "dtype": dtype,
                "S": s,
                "compile_s": compile_s,
                "ms": median,
                "p90_ms": p90,
                "fps": s * 1e3 / median,
                "gflop_per_frame": None if flops is None else flops / s / 1e9,
                "mfu": _mfu(flops, median / 1e3, dtype),
                "mfu_table": _mfu(_table_flops(plan, "track", s), median / 1e3, dtype),
                **_memory(compiled),
            }
        )
    return rows


def _skipped_train(phase: str, dtype: str, batch: int, why: str) -> dict:
    return {"bench": "B4 train step", "phase": phase, "dtype": dtype, "batch": batch, "skipped": why}


def training_rows(plan: Plan, dtype: str, batch: int, clock: _Clock, with_data: bool) -> list[dict]:
    """B4 (and B5 when ``with_data``) per phase: compile, step ms, pairs/s, MFU, memory."""
    cfg, model = _model(plan, dtype)
    mesh, sampler, fixed = train.train_setup(cfg, batch)
    variables = jax.tree.map(np.asarray, init_variables(model, seed=0))
    n, rows = jax.device_count(), []
    data = f"grain, {plan.data_workers} workers" if with_data else None
    for phase in plan.phases:
        if clock.left() < 0:
            rows.append(_skipped_train(phase, dtype, batch, "time budget"))
            continue
        try:
            compiled, state, compile_s = train.compile_phase(model, cfg, mesh, variables, fixed, phase)
        except jax.errors.JaxRuntimeError as e:
            if not _oom(e):
                raise
            rows.append(_skipped_train(phase, dtype, batch, "out of memory"))
            continue
        memory, flops = _memory(compiled), _flops(compiled)
        trainable = PHASES[phase][0]
        timed = train.time_phase(compiled, state, fixed, mesh, sampler, plan.steps, data, plan.data_workers)
        for mode, fed, dt, wait in timed:
            rows.append(
                {
                    "bench": "B5 train step + data" if fed else "B4 train step",
                    "phase": phase,
                    "dtype": dtype,
                    "batch": batch,
                    "devices": n,
                    "input": mode,
                    "compile_s": compile_s,
                    "ms": dt * 1e3,
                    "pairs_s": batch * n / dt,
                    "pairs_s_device": batch / dt,
                    "data_wait_frac": wait / (dt * plan.steps),
                    "gflop_per_pair": None if flops is None else flops / batch / 1e9,  # per-device program
                    "mfu": _mfu(flops, dt, dtype),
                    "mfu_table_siamban": _mfu(
                        _table_flops(plan, "train_trainable" if trainable else "train_frozen", batch),
                        dt,
                        dtype,
                    ),
                    **memory,
                }
            )
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(c for c, _ in cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = ""
    for r in rows:
        if "skipped" in r:
            keys = [k for _, k in cols]
            cells = [_fmt(r.get(k)) if k in ("bench", "dtype", "S", "phase", "batch") else "" for k in keys]
            cells[-1] = f"skipped: {r['skipped']}"
        else:
            cells = []
            for _, k in cols:
                v = r.get(k)
                cells.append(
                    f"{100 * v:.1f} %"
                    if (k.startswith("mfu") or k == "data_wait_frac") and v is not None
                    else _fmt(v)
                )
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def markdown(result: dict) -> str:
    meta = result["meta"]
    out = [
        f"# siamrn-jax benchmark suite ({'quick' if meta['quick'] else 'full'})",
        "",
        f"{meta['device']['count']} x {meta['device']['platform']} {meta['device']['kind']}; jax "
        f"{meta['jax']}; config {meta['config']}; {meta['host']}; {meta['elapsed_s']:.0f} s. MFU = XLA's "
        "FLOP count of the executable / time / the device's dense peak (n/a: peak unknown, e.g. CPU); the "
        "table MFUs use PERFORMANCE.md's FLOP table instead (official SiamRN step; SiamBAN part of a "
        "training pair; paper model only). "
        "Memory = the compiled executable's arguments + outputs + temporaries (device peak where reported).",
        "",
        "## Tracking (B1 network-only, B2 end to end, B3 batched, B8 template init)",
        "",
        _table(
            result["tracking"],
            [
                ("bench", "bench"),
                ("dtype", "dtype"),
                ("S", "S"),
                ("compile s", "compile_s"),
                ("ms", "ms"),
                ("p90 ms", "p90_ms"),
                ("frames/s", "fps"),
                ("GFLOP/frame", "gflop_per_frame"),
                ("MFU", "mfu"),
                ("MFU, table FLOPs", "mfu_table"),
                ("memory MB", "total_mb"),
                ("device peak MB", "device_peak_mb"),
            ],
        ),
        "## Training (B4 compute only, B5 with the data pipeline)",
        "",
        _table(
            result["training"],
            [
                ("bench", "bench"),
                ("phase", "phase"),
                ("dtype", "dtype"),
                ("batch/device", "batch"),
                ("input", "input"),
                ("compile s", "compile_s"),
                ("step ms", "ms"),
                ("pairs/s", "pairs_s"),
                ("pairs/s/device", "pairs_s_device"),
                ("waiting for data", "data_wait_frac"),
                ("GFLOP/pair", "gflop_per_pair"),
                ("MFU", "mfu"),
                ("MFU, table SiamBAN part", "mfu_table_siamban"),
                ("memory MB", "total_mb"),
                ("device peak MB", "device_peak_mb"),
            ],
        ),
    ]
    return "\n".join(out)


def _write(result: dict, out: Path) -> None:
    with atomic_output(out / "suite.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=float))
    with atomic_output(out / "suite.md") as tmp:
        tmp.write_text(markdown(result))


def run_suite(plan: Plan, out: Path, quick: bool) -> dict:
    """Every section in order of priority, the files rewritten after each."""
    t_start, clock = time.monotonic(), _Clock(plan.budget_s)
    result: dict[str, Any] = {
        "meta": {
            "quick": quick,
            "config": plan.config,
            "device": _device(),
            "jax": jax.__version__,
            "host": f"{platform.machine()}, {jax.local_device_count()} local devices",
            "plan": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(plan).items()},
            "elapsed_s": 0.0,
        },
        "tracking": [],
        "training": [],
    }
    out.mkdir(parents=True, exist_ok=True)

    def done():
        result["meta"]["elapsed_s"] = time.monotonic() - t_start
        _write(result, out)

    for dtype in plan.dtypes:
        result["tracking"] += tracking_rows(plan, dtype, clock)
        done()
    for batch in plan.batches:
        for dtype in plan.dtypes:
            # The pipeline rows once per batch size (the host's share does not depend on the model dtype).
            result["training"] += training_rows(plan, dtype, batch, clock, with_data=dtype == plan.dtypes[0])
            done()
    return result
