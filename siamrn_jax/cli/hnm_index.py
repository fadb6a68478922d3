"""``python -m siamrn_jax.data.hnm_index build``: the offline hard-negative index
(``siamrn_jax.data.hnm_index``)."""

from __future__ import annotations

import argparse
import sys
import time

from siamrn_jax.data.hnm_index import HardNegativeIndex, backbone_apply_fn, embed_templates
from siamrn_jax.data.source import DataError, TrackSource
from siamrn_jax.errors import SiamrnError, one_line


def _parse_source(spec: str) -> TrackSource:
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        from siamrn_jax.data.synthetic import SyntheticConfig, SyntheticSource  # written in parallel; lazy

        return SyntheticSource(SyntheticConfig(num_videos=int(rest or 16)))
    if kind == "pysot":
        from siamrn_jax.data.pysot import PysotSource

        name, root, anno = rest.split(":")
        return PysotSource(name, root, anno)
    if kind == "tfds":
        from siamrn_jax.data.tfds_source import TfdsSource

        directory, _, split = rest.partition(":")
        return TfdsSource(directory, split=split or "train")
    raise DataError(f"--source {spec!r}: expected synthetic:N, pysot:NAME:ROOT:ANNO or tfds:DIR[:SPLIT]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siamrn_jax.data.hnm_index")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="embed template crops and write an index directory")
    b.add_argument("--out", required=True)
    b.add_argument("--checkpoint", required=True, help="siamrn-jax checkpoint directory, 'demo', or 'random'")
    b.add_argument("--config", default="configs/siamrn_r50.py", help="model config for --checkpoint random")
    b.add_argument("--source", action="append", required=True)
    b.add_argument("--items-per-track", type=int, default=4)
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--dtype", default="f32", choices=["f32", "f16", "i8"])
    args = parser.parse_args(argv)

    from siamrn_jax import checkpoint

    try:
        sources = [_parse_source(s) for s in args.source]
        spec = checkpoint.RANDOM + args.config if args.checkpoint == "random" else args.checkpoint
        model, variables, _ = checkpoint.load_weights(spec)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 1
    apply_fn = backbone_apply_fn(model, variables)
    t0 = time.perf_counter()
    index = HardNegativeIndex.build(
        sources,
        lambda x: embed_templates(apply_fn, x),
        items_per_track=args.items_per_track,
        seed=args.seed,
        batch_size=args.batch_size,
        dtype=args.dtype,
        log=lambda m: print(m, file=sys.stderr),
    )
    out = index.save(args.out)
    print(f"{out}: {len(index)} items, {index.ndim} dims, {time.perf_counter() - t0:.1f} s")
    return 0
