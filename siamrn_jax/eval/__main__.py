"""``python -m siamrn_jax.eval``: compare trackers' OPE result folders on a benchmark.

    python -m siamrn_jax.eval --benchmark folder --root ../shared/data/sequences \\
        --results results --trackers SiamRN SiamBAN --out report

Writes ``report/overall.md``, ``overall.csv``, ``per_sequence.csv``, ``success.png``, ``precision.png``
and prints the table. Metrics follow pysot (``--rules``); ``--lasot-mode`` drops frames flagged absent.
Errors (missing result file, wrong line count, unknown benchmark) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from siamrn_jax.eval import ope
from siamrn_jax.eval.registry import available, load_benchmark
from siamrn_jax.eval.report import (
    evaluate_tracker,
    load_results,
    markdown,
    plot_curves,
    table,
    write_csv,
    write_text,
)
from siamrn_jax.tracking.results_io import OutputError
from siamrn_jax.tracking.sources import InputError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m siamrn_jax.eval",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--benchmark", required=True, help=f"one of {', '.join(available())}")
    p.add_argument("--root", required=True, type=Path, help="benchmark root folder")
    p.add_argument("--results", required=True, type=Path, help="folder with one sub-folder per tracker")
    p.add_argument("--trackers", nargs="+", required=True)
    p.add_argument("--sequences", nargs="+", help="evaluate only these sequences")
    p.add_argument("--out", type=Path, default=Path("report"))
    p.add_argument("--rules", default="pysot", choices=["pysot", "otb_matlab", "lasot_matlab", "got10k"])
    p.add_argument("--lasot-mode", action="store_true", help="drop frames flagged absent (LaSOT protocol)")
    a = p.parse_args(argv)
    try:
        if a.benchmark not in available():
            raise InputError(f"unknown benchmark {a.benchmark!r} (known: {', '.join(available())})")
        seqs = load_benchmark(a.benchmark, a.root, a.sequences)
        per_seq = {
            t: evaluate_tracker(load_results(a.results, t, seqs), seqs, a.rules, a.lasot_mode)
            for t in a.trackers
        }
        overall = {t: ope.aggregate(s, rules=a.rules) for t, s in per_seq.items()}
        a.out.mkdir(parents=True, exist_ok=True)
        rows = table(overall)
        write_text(a.out / "overall.md", markdown(rows))
        write_csv(a.out / "overall.csv", rows)
        write_csv(
            a.out / "per_sequence.csv",
            [
                {
                    "tracker": t,
                    "sequence": n,
                    "success AUC": f"{s.success_auc:.4f}",
                    "precision@20px": f"{s.precision:.4f}",
                }
                for t, d in per_seq.items()
                for n, s in d.items()
            ],
        )
        plots = plot_curves(overall, a.out, f"{a.benchmark} ({len(seqs)} sequences)")
    except (InputError, OutputError, KeyError, ValueError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(markdown(rows), end="")
    print(f"wrote {a.out / 'overall.md'}, overall.csv, per_sequence.csv, {', '.join(x.name for x in plots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
