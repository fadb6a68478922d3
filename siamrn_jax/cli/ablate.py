"""``python -m siamrn_jax.train.ablate``: the paper's Table 3 as a grid of trained and evaluated variants
(``siamrn_jax.train.ablate``)."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

from siamrn_jax.cli.args import add_verbosity_flags, positive_int, preset
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.log_config import configure
from siamrn_jax.train.ablate import (
    GRIDS,
    SYNTHETIC,
    AblateError,
    Benchmark,
    Plan,
    run_grid,
    select,
    synthetic_scenes,
)
from siamrn_jax.train.ablate import __doc__ as DOC


def parse_set(text: str) -> tuple[str, Any]:
    """``--set KEY=VALUE``: the value as a Python literal (``(3,)``, ``8``, ``'one_way'``), else the text."""
    key, eq, raw = text.partition("=")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, RecursionError):  # TypeError: "{[]: 1}" (unhashable key)
        value = raw
    return key, value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m siamrn_jax.train.ablate",
        description=DOC.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=DOC,
    )
    p.add_argument(
        "--config", default="demo_resnet", help="base config FILE[:variant] or variant (default demo_resnet)"
    )
    p.add_argument("--grid", default="table3", help=f"one of {', '.join(sorted(GRIDS))} (default table3)")
    p.add_argument("--variants", nargs="+", help="only these variants of the grid")
    p.add_argument("--out", required=True, type=Path, help="output folder (variants, results, tables)")
    p.add_argument("--steps", type=positive_int, help="train.steps_per_epoch of every variant")
    p.add_argument("--epochs", type=positive_int, help="train.epochs of every variant")
    p.add_argument(
        "--set",
        dest="common",
        action="append",
        type=parse_set,
        default=[],
        metavar="KEY=VALUE",
        help="config override for every variant, e.g. data.root=/data (repeatable)",
    )
    p.add_argument(
        "--benchmark",
        default="folder",
        help=f"a benchmark of siamrn_jax.eval.registry, or {SYNTHETIC} (held-out scenes; default folder)",
    )
    p.add_argument("--root", type=Path, help="benchmark root (e.g. ../shared/data/sequences)")
    p.add_argument("--sequences", nargs="+", help="only these sequences")
    p.add_argument(
        "--scenes", type=positive_int, default=20, help=f"--benchmark {SYNTHETIC}: number of scenes"
    )
    p.add_argument("--preset", type=preset, help="tracker preset (default: the model's own)")
    p.add_argument(
        "--pretrained",
        type=Path,
        help="pysot resnet50.model (ImageNet backbone): converted into each variant as its init checkpoint",
    )
    add_verbosity_flags(p)
    return p


def _benchmark(a: argparse.Namespace) -> Benchmark:
    from siamrn_jax.eval.registry import available

    if a.benchmark == SYNTHETIC:
        return synthetic_scenes(a.root or a.out / "scenes", a.scenes)
    if a.benchmark not in available():
        raise AblateError(
            f"unknown benchmark {a.benchmark!r} (known: {', '.join([*available(), SYNTHETIC])})"
        )
    if a.root is None:
        raise AblateError(f"--benchmark {a.benchmark} needs --root")
    if not a.root.is_dir():
        raise AblateError(f"{a.root}: no such folder")
    return Benchmark(a.benchmark, a.root, tuple(a.sequences) if a.sequences else None)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    configure(a)
    try:
        variants = tuple(a.variants) if a.variants else None
        select(a.grid, variants)  # a bad grid name before any scene is written
        if a.pretrained is not None and not a.pretrained.is_file():
            raise AblateError(f"{a.pretrained}: no such file")
        plan = Plan(
            a.config, a.grid, a.out, _benchmark(a), variants, tuple(a.common), a.steps, a.epochs, a.preset,
            a.pretrained,
        )  # fmt: skip
        text = run_grid(plan)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2
    print(text + f"wrote {a.out / 'table.md'}, table.csv, table.json")
    return 0
