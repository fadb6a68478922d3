"""``python -m siamrn_jax.bench model|track|multi|train|data|suite``: SiamRN timings on this machine.

``model``: the forward pass per stage (``track``, ``multi``, ``train``, ``data`` and ``suite`` are
documented in ``siamrn_jax.bench.track``, ``.multi``, ``.train``, ``.data`` and ``.suite``).

Times (after compilation, median of ``--runs``) the template branch, the search branch, the BAN head, the
PrRoIPool of the 625 proposals, the relation detector on 625 proposals x 3 levels, the refined head, and
the whole per-frame network (``track_forward``). Weights are random (timing does not depend on them).
Disable the persistent compilation cache to measure cold compile times: ``JAX_COMPILATION_CACHE_DIR=``.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

from siamrn_jax import checkpoint
from siamrn_jax.bench.timing import table, time_fn
from siamrn_jax.cli.args import add_preset, add_verbosity_flags, nonnegative_int, positive_int
from siamrn_jax.config import load_config
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.geometry.score_map import proposal_boxes
from siamrn_jax.log_config import configure
from siamrn_jax.xla_flags import apply_default_xla_flags


def bench_model(config: str, runs: int) -> str:
    model, v, _ = checkpoint.load_weights(checkpoint.RANDOM + config)  # as loaded checkpoints run
    key = jax.random.key(0)
    z = jax.random.uniform(key, (1, 127, 127, 3), maxval=255.0)
    x = jax.random.uniform(key, (1, 255, 255, 3), maxval=255.0)
    box = jnp.asarray([[31.5, 39.5, 95.5, 87.5]])

    def stage(method):
        return jax.jit(lambda v, *a: model.apply(v, *a, method=method))

    enc_t, enc_s, head = stage("encode_template"), stage("encode_search"), stage("ban_head")
    t = enc_t(v, z, box)
    s = enc_s(v, x)
    h = head(v, t.kernel, s)
    n_lv = f"{len(s)} level{'s' * (len(s) > 1)}"
    feats = " + ".join("x".join(map(str, f.shape[1:])) for f in s)
    rows = [
        time_fn("template branch (127 crop -> kernels + support RoI)", enc_t, v, z, box, runs=runs),
        time_fn(f"search branch (255 crop -> {feats})", enc_s, v, x, runs=runs),
        time_fn(f"BAN head ({n_lv}, cls + loc)", head, v, t.kernel, s, runs=runs),
    ]
    if model.has_relation:  # NanoTrack without its relation-detector add-on stops at the head
        rows += _relation_rows(model, stage, v, t, s, h, x, n_lv, runs)
    dev = jax.devices()[0]
    header = (
        f"config {config}; jax {jax.__version__}; {dev.platform} {dev.device_kind}; "
        f"{platform.processor() or platform.machine()}; float32, batch 1"
    )
    return header + "\n\n" + table(rows)


def _relation_rows(model, stage, v, t, s, h, x, n_lv: str, runs: int) -> list:
    """Timings of the relation detector, the refinement and the whole per-frame network."""
    pool, relate, refine = stage("pool_proposals"), stage("relate"), stage("refine")
    boxes = proposal_boxes(h.loc, model.stride, model.instance_size)
    rois = pool(v, s, boxes)
    support = tuple(jnp.broadcast_to(a[:, None], r.shape) for a, r in zip(t.support, rois, strict=True))
    m = jnp.full(h.cls.shape[:3], 0.5)
    cache = stage("prepare_support")(v, tuple(a[:, None] for a in t.support))
    relate_fused = jax.jit(lambda v, c, r: model.apply(v, None, r, cache=c, method="relate"))
    track = jax.jit(lambda v, t, x: model.apply(v, t, x, method="track_forward"))
    track_fast = jax.jit(
        lambda v, t, c, x: model.apply(v, t.kernel, t.support, x, c, True, method="track_frame")
    )
    n = boxes.shape[1]
    return [
        time_fn(f"PrRoIPool {n} proposals x {n_lv}", pool, v, s, boxes, runs=runs),
        time_fn(f"relation detector {n} x {n_lv}, official order", relate, v, support, rois, runs=runs),
        time_fn(
            f"relation detector {n} x {n_lv}, prepared support (fused)",
            relate_fused,
            v,
            cache,
            rois,
            runs=runs,
        ),
        time_fn("refined cls from stored correlations", refine, v, h.cls_corr, m, runs=runs),
        time_fn(
            "full per-frame network, official order (RD per proposal, head twice)", track, v, t, x, runs=runs
        ),
        time_fn(
            "full per-frame network, tracker default (fused RD, reused correlations)",
            track_fast,
            v,
            t,
            cache,
            x,
            runs=runs,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    apply_default_xla_flags()  # takes effect because no computation has run in this process yet
    p = argparse.ArgumentParser(prog="python -m siamrn_jax.bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "what",
        choices=["model", "track", "multi", "train", "data", "suite"],
        help="model: per-stage network; track: tracker; multi: several targets in one video, target-frames/s "
        "per target count; train: pairs/s; data: the TFDS pipeline at scale; "
        "suite: PERFORMANCE.md B1-B8 in one run (suite.json + suite.md)",
    )
    p.add_argument("--config", default="vot", help="config file[:variant] or a bare variant (default vot)")
    p.add_argument(
        "--checkpoint", help="track, multi: a checkpoint directory (or 'demo') instead of random weights"
    )
    p.add_argument(
        "--sequence",
        type=Path,
        default=Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sequences" / "Crossing",
        help="track, multi: an OTB-layout sequence",
    )
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="track: the per-frame budget stage by stage (crop, to device, network stages, "
        "post-processing, read-back); --checkpoint may name an embedded model (demo)",
    )
    p.add_argument(
        "--batch", type=positive_int, default=4, help="track: sequences in the batched row (1: none)"
    )
    p.add_argument(
        "--targets",
        type=_positive_ints,
        default=(1, 2, 4, 8, 16),
        metavar="N,N,...",
        help="multi: target counts (default 1,2,4,8,16)",
    )
    p.add_argument(
        "--chunk",
        type=nonnegative_int,
        help="multi: rows per chunk of a batch (default: 4 on CPU, none elsewhere; 0: one batch)",
    )
    add_preset(p)
    p.add_argument("--runs", type=positive_int, default=10, help="timed calls (train: timed steps per phase)")
    p.add_argument("--batch-per-device", type=positive_int, help="train: override train.batch_per_device")
    p.add_argument("--workers", type=nonnegative_int, default=2, help="train: grain worker processes")
    p.add_argument("--no-data", action="store_true", help="train: compute-only rows")
    _data_flags(p)
    _suite_flags(p)
    add_verbosity_flags(p)
    a = p.parse_args(argv)
    configure(a)
    try:
        _run(a)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2
    return 0


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise argparse.ArgumentTypeError(f"expected WxH, e.g. 320x240, got {text!r}")
    return int(w), int(h)


def _data_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--workdir", type=Path, default=Path("runs/bench_data"), help="tree, records (reused)")
    g.add_argument("--rebuild", action="store_true", help="regenerate the tree and rebuild the records")
    g.add_argument("--tracks", type=positive_int, default=10_000)
    g.add_argument("--frames", type=positive_int, default=40, help="frames per track")
    g.add_argument("--size", type=_size, default=(320, 240), help="frame size WxH")
    g.add_argument("--pool", type=positive_int, default=2000, help="distinct real frames in the tree")
    g.add_argument(
        "--frames-from",
        type=Path,
        default=Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sequences",
        help="folder of real sequences the frames come from",
    )
    g.add_argument("--samples", type=positive_int, default=500, help="random frames timed")
    g.add_argument("--batches", type=positive_int, default=10, help="pipeline batches of 8 timed")
    g.add_argument("--steps", type=nonnegative_int, default=10, help="train steps fed by the pipeline")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def _positive_ints(text: str) -> tuple[int, ...]:
    values = _ints(text)
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _phases(text: str) -> tuple[int, ...]:
    values = _ints(text)
    if max(values) > 2:
        raise argparse.ArgumentTypeError(f"phases are 0, 1, 2; got {text!r}")
    return values


def _dtypes(text: str) -> tuple[str, ...]:
    values = tuple(text.split(","))
    bad = [v for v in values if v not in ("float32", "bfloat16")]
    if bad:
        raise argparse.ArgumentTypeError(f"dtypes are float32, bfloat16; got {', '.join(bad)}")
    return values


def _suite_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("suite")
    g.add_argument("--out", type=Path, default=Path("runs/suite"), help="suite: writes suite.json, suite.md")
    g.add_argument("--quick", action="store_true", help="suite: smoke model, small sizes (CPU, < 10 min)")
    g.add_argument("--budget-s", type=float, help="suite: skip what would run past this (default 450/540)")
    g.add_argument("--dtypes", type=_dtypes, help="suite: e.g. float32,bfloat16")
    g.add_argument("--sizes", type=_ints, help="suite: lockstep sequence counts S, e.g. 1,8,32,128,512")
    g.add_argument("--train-batches", type=_ints, help="suite: per-device training batches, e.g. 28,64")
    g.add_argument("--phases", type=_phases, help="suite: training phases 0,1,2 (frozen, +HNM, trainable)")
    g.add_argument("--train-steps", type=positive_int, help="suite: timed training steps per row")


def _suite(a: argparse.Namespace) -> None:
    from siamrn_jax.bench.suite import PHASES, Plan, markdown, run_suite

    names = list(PHASES)
    plan = Plan.make(
        a.quick,
        dtypes=a.dtypes,
        sizes=a.sizes,
        batches=a.train_batches,
        phases=None if a.phases is None else tuple(names[i] for i in a.phases),
        runs=a.runs if a.runs != 10 else None,
        steps=a.train_steps,
        data_workers=a.workers,
        budget_s=a.budget_s,
    )
    print(markdown(run_suite(plan, a.out, a.quick)))


def _run(a: argparse.Namespace) -> None:
    if a.what == "suite":
        _suite(a)
    elif a.what == "data":
        from siamrn_jax.bench.data import bench_data

        if a.config == "vot":  # the default is the tracking config; the step-wait rows train the smoke model
            a.config = "smoke"
        print(bench_data(a))
    elif a.what == "train":
        from siamrn_jax.bench.train import bench_train, markdown

        cfg = load_config(a.config)
        if a.batch_per_device:
            cfg.train.batch_per_device = a.batch_per_device
        dev = jax.devices()[0]
        print(f"config {a.config}; jax {jax.__version__}; ", end="")
        print(f"{jax.device_count()} x {dev.platform} {dev.device_kind}")
        print(markdown(bench_train(cfg, a.runs, not a.no_data, a.workers)))
    elif a.what == "multi":
        from siamrn_jax.bench.multi import report

        print(report(a.config, a.checkpoint, a.sequence, a.runs, a.targets, a.preset, a.chunk))
    elif a.what == "model":
        print(bench_model(a.config, a.runs))
    else:
        from siamrn_jax.bench.track import bench_breakdown, bench_track

        if a.breakdown:
            print(bench_breakdown(a.config, a.checkpoint, a.sequence, a.runs, a.preset))
        else:
            print(bench_track(a.config, a.checkpoint, a.sequence, a.runs, a.batch, a.preset))


if __name__ == "__main__":
    sys.exit(main())
