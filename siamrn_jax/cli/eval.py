"""``python -m siamrn_jax.eval run|baseline|report``: run trackers on a benchmark and compare them.

    # our tracker on every sequence (resumes: finished sequences are skipped)
    python -m siamrn_jax.eval run --checkpoint ckpt/siamrn --benchmark otb100 --root data/OTB100 \\
        --results results --name SiamRN --preset otb
    # lockstep batches of 8 split over the local devices (default: all; each device tracks 8 / devices)
    python -m siamrn_jax.eval run --checkpoint ckpt/siamrn --benchmark otb100 --root data/OTB100 \\
        --results results --batch 8
    # several hosts: on each (I = 0 .. N-1), the same --results on a shared filesystem; every process
    # tracks its share of the sequences (balanced by frames), process 0 reports when all are done
    python -m siamrn_jax.eval run ... --coordinator_address host0:1234 --num_processes N --process_id I
    # OpenCV's MIL tracker as a classic baseline, same result format
    python -m siamrn_jax.eval baseline --benchmark folder --root ../shared/data/sequences --results results
    # tables and plots for any number of result folders (pysot format, e.g. the authors' raw results)
    python -m siamrn_jax.eval report --benchmark folder --root ../shared/data/sequences \\
        --results results --trackers SiamRN OpenCV-MIL --out report

``report`` writes ``overall.md``, ``overall.csv``, ``per_sequence.csv``, ``success.png`` and
``precision.png``; with ``--protocol vot`` (after ``run --protocol vot``) it writes the accuracy /
robustness / EAO table and ``eao.png`` instead. Metrics follow pysot (``--rules``); ``--lasot-mode``
drops frames flagged absent.
Errors print one ``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NamedTuple

from siamrn_jax.cli import args as cli_args
from siamrn_jax.cli.args import (
    UsageError,
    add_distributed_flags,
    add_verbosity_flags,
    nonnegative_int,
    positive_int,
)
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.eval import ope
from siamrn_jax.eval.registry import available, load_benchmark
from siamrn_jax.eval.report import (
    evaluate_got10k,
    evaluate_tracker,
    got10k_table,
    load_results,
    markdown,
    plot_curves,
    table,
    write_csv,
    write_text,
)
from siamrn_jax.io.sources import InputError
from siamrn_jax.log_config import configure


def _benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, help=f"one of {', '.join(available())}")
    p.add_argument("--root", required=True, type=Path, help="benchmark root folder")
    p.add_argument("--sequences", nargs="+", help="only these sequences")
    p.add_argument("--results", required=True, type=Path, help="folder with one sub-folder per tracker")


def _sequences(a):
    if a.benchmark not in available():
        raise InputError(f"unknown benchmark {a.benchmark!r} (known: {', '.join(available())})")
    return load_benchmark(a.benchmark, a.root, a.sequences)


def cmd_run(a) -> list[str]:
    """``run``: this process's share of the sequences, over its devices (``_run``), in a process group
    when the multi-process flags ask for one."""
    from siamrn_jax import multihost

    distributed = multihost.initialize(a)  # before anything starts a JAX backend
    try:
        lines = _run(a)
    except (SiamrnError, OSError):
        # Raised by every process alike (after multihost.agree), so all of them reach shutdown's
        # barrier. Any other exception is a bug: no shutdown, the coordinator notices the lost process.
        if distributed:
            multihost.shutdown()
        raise
    if distributed:
        multihost.shutdown()
    return lines


class _Setup(NamedTuple):
    model: Any
    variables: Any
    params: Any
    sequences: list
    record: dict
    mesh: Any


def _setup(a, primary: bool) -> _Setup:
    """Weights, tracker parameters, sequences and devices; then process 0 claims the results folder."""
    import jax

    from siamrn_jax import checkpoint
    from siamrn_jax.eval import provenance
    from siamrn_jax.sharding import ShardingError, local_data_mesh

    if a.protocol == "vot":
        # One sequence at a time with restarts; processes (one per device) parallelise it instead.
        if a.devices not in (None, 1):
            raise ShardingError(
                f"--devices {a.devices}: the VOT protocol tracks one sequence at a time on one device; "
                "run one process per device (--num_processes) to parallelise it"
            )
        devices = 1
    else:
        devices = jax.local_device_count() if a.devices is None else a.devices
        if a.batch is not None and a.batch % devices:
            raise ShardingError(
                f"--batch {a.batch} does not split over {devices} device(s): use a multiple of {devices} "
                "or set --devices"
            )
    mesh = None if devices == 1 else local_data_mesh(devices)  # ShardingError: too many devices
    import jax.numpy as jnp

    spec = a.checkpoint or checkpoint.RANDOM + a.random_weights
    bundle = checkpoint.load_weights(spec, a.dtype, a.seed)
    model, variables = bundle.model, bundle.variables
    kind, where = checkpoint.resolve_spec(spec)
    if kind == "random":
        weights, origin = {"random_weights": a.random_weights, "seed": a.seed}, a.random_weights
    elif kind == "addon":
        weights, origin = {"addon": where, "seed": a.seed}, where
    else:  # a checkpoint: the directory (an embedded name resolved), hashed
        weights, origin = {"checkpoint_sha256": provenance.checkpoint_digest(where)}, where
    if checkpoint.untrained(bundle):
        print(
            f"warning: {a.checkpoint or a.random_weights}: UNTRAINED weights, for smoke tests only",
            file=sys.stderr,
        )
    if jnp.dtype(model.dtype) != jnp.float32:  # a bf16 run is another run; fp32 folders keep resuming
        weights["dtype"] = jnp.dtype(model.dtype).name
    params = _params(a, model)
    seqs = _sequences(a)  # before claiming the folder: a bad benchmark leaves it untouched
    record = provenance.record(weights, params, a.protocol, origin)
    if primary:
        provenance.claim(a.results / a.name, record, a.overwrite)
    return _Setup(model, variables, params, seqs, record, mesh)


def _track(a, s: _Setup, share: list) -> list[str]:
    from siamrn_jax.eval.runner import run_ope, run_vot

    if a.protocol == "vot":
        return run_vot(s.model, s.variables, s.params, share, a.results, a.name)
    return run_ope(s.model, s.variables, s.params, share, a.results, a.name, a.batch, mesh=s.mesh)


def _run(a) -> list[str]:
    """Set-up, provenance check and tracking, each ended by a barrier (``multihost.agree``) at which the
    processes learn whether all of them succeeded; single-process, the barriers are no-ops."""
    import jax

    from siamrn_jax import multihost
    from siamrn_jax.eval import provenance
    from siamrn_jax.eval.runner import process_share

    index, count = jax.process_index(), jax.process_count()
    setup, error = multihost.run_stage(_setup, a, index == 0)
    multihost.agree(error)  # process 0 has claimed (and with --overwrite emptied) the folder
    if index != 0:
        _, error = multihost.run_stage(provenance.check, a.results / a.name, setup.record)
    multihost.agree(error)
    share = process_share(setup.sequences, index, count)
    done, error = multihost.run_stage(_track, a, setup, share)
    tracked = multihost.agree(error, len(done or ()))
    if count == 1 or index != 0:
        return []
    return [
        f"{a.results / a.name}: all {count} processes done; {sum(tracked)} sequence(s) tracked (per process: "
        f"{', '.join(map(str, tracked))}), {len(setup.sequences) - sum(tracked)} had results"
    ]


def cmd_baseline(a) -> list[str]:
    from siamrn_jax.eval import baselines

    if a.tracker == "nanotrack":
        if a.onnx is None:
            raise UsageError(
                "baseline --tracker nanotrack needs --onnx DIR (NanoTrack's backbone + head ONNX)"
            )
        make, name = baselines.nanotrack_factory(a.onnx), a.name or "OpenCV-NanoTrack"
    else:
        make, name = baselines.mil_factory(), a.name or "OpenCV-MIL"
    baselines.run_opencv(_sequences(a), a.results, name, make)
    return []


def cmd_report_vot(a, seqs) -> list[str]:
    from siamrn_jax.eval.report import plot_eao_curves, plot_tag_eao, vot_row, vot_runs, vot_tag_rows

    interval = a.eao_interval or ("VOT2019" if a.benchmark == "vot2019" else "VOT2018")
    rows, curves, tag_rows = [], {}, []
    for t in a.trackers:
        runs = vot_runs(a.results, t, seqs)  # read and parsed once for both tables
        row, curves[t] = vot_row(t, runs, interval)
        rows.append(row)
        tag_rows += vot_tag_rows(t, runs, seqs, interval)
    key = f"EAO ({interval})"
    rows.sort(key=lambda r: -float(r[key]))
    a.out.mkdir(parents=True, exist_ok=True)
    write_csv(a.out / "overall.csv", rows)
    plot = plot_eao_curves(curves, {r["tracker"]: float(r[key]) for r in rows}, a.out, a.benchmark)
    write_csv(a.out / "tags.csv", tag_rows)
    write_text(a.out / "tags.md", markdown(tag_rows))
    tag_plot = plot_tag_eao(tag_rows, key, a.out, a.benchmark)
    per_tag = "per visual attribute (frames carrying the tag):\n\n" + markdown(tag_rows)
    files = f"overall.csv, {plot.name}, tags.md, tags.csv, {tag_plot.name}"
    return [markdown(rows) + per_tag + f"wrote {a.out / 'overall.md'}, {files}"]


def cmd_report(a) -> list[str]:
    seqs = _sequences(a)
    if a.protocol == "vot":
        return cmd_report_vot(a, seqs)
    results = {t: load_results(a.results, t, seqs) for t in a.trackers}
    per_seq = {t: evaluate_tracker(results[t], seqs, a.rules, a.lasot_mode) for t in a.trackers}
    overall = {t: ope.aggregate(s, rules=a.rules) for t, s in per_seq.items()}
    a.out.mkdir(parents=True, exist_ok=True)
    rows = table(overall)
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
    text, extra = markdown(rows), []
    if a.benchmark.startswith("got10k"):
        # GOT-10k's own metric (frame-pooled AO / SR), the one its leaderboard ranks by.
        got = got10k_table({t: evaluate_got10k(results[t], seqs) for t in a.trackers})
        text += "\nGOT-10k (frame-pooled over all sequences, toolkit rules):\n\n" + markdown(got)
        write_csv(a.out / "got10k.csv", got)
        extra = ["got10k.csv"]
    if a.paired:
        from siamrn_jax.eval.paired import markdown as paired_table
        from siamrn_jax.eval.paired import paired_bootstrap

        unknown = sorted({t for pair in a.paired for t in pair} - set(per_seq))
        if unknown:
            raise UsageError(f"--paired: {unknown} not among --trackers")
        auc = {t: [per_seq[t][n].success_auc for n in sorted(per_seq[t])] for t in per_seq}
        pairs = [(f"{x} − {y}", paired_bootstrap(auc[x], auc[y])) for x, y in a.paired]
        text += "\nPaired over the sequences:\n\n" + paired_table(pairs)
    write_text(a.out / "overall.md", text)
    return [
        text
        + f"wrote {a.out / 'overall.md'}, overall.csv, per_sequence.csv, "
        + ", ".join([*extra, *(x.name for x in plots)])
    ]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m siamrn_jax.eval",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = p.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_baseline(sub)
    _add_report(sub)
    return p


def _add_run(sub) -> None:
    """The ``run`` subcommand: our tracker over a benchmark."""
    r = sub.add_parser("run", help="track every sequence with siamrn-jax, write pysot result files")
    _benchmark_args(r)
    w = r.add_mutually_exclusive_group(required=True)
    w.add_argument("--checkpoint", help="siamrn-jax checkpoint directory, or 'demo'")
    w.add_argument("--random-weights", help="untrained model from a config (smoke tests only)")
    r.add_argument("--seed", type=nonnegative_int, default=0)
    r.add_argument("--name", default="SiamRN", help="tracker name = result sub-folder")
    cli_args.add_preset(r)
    r.add_argument(
        "--dtype",
        choices=[
            "float32",
            "bfloat16",
        ],  # = siamrn_jax.config.COMPUTE_DTYPES (not imported: --help stays light)
        help="computation dtype (default: the checkpoint's model.dtype); bfloat16 = mixed precision",
    )
    r.add_argument(
        "--no-relation", action="store_true", help="score with the BAN head alone (RD and RM off; ablations)"
    )
    r.add_argument(
        "--batch",
        type=positive_int,
        help="OPE: sequences tracked in lockstep, split over --devices (a multiple of it; default: one per "
        "device; GPU: larger)",
    )
    r.add_argument(
        "--devices",
        type=positive_int,
        help="OPE: local devices each lockstep batch is split over (default: all of this process's)",
    )
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="start the results folder afresh even if it holds another run's results (provenance.json)",
    )
    r.add_argument(
        "--protocol",
        choices=["ope", "vot"],
        default="ope",
        help="ope: one pass; vot: supervised restarts (VOT result files)",
    )
    add_distributed_flags(r)
    r.set_defaults(fn=cmd_run)
    add_verbosity_flags(r)


def _add_baseline(sub) -> None:
    """The ``baseline`` subcommand: OpenCV reference trackers."""
    b = sub.add_parser("baseline", help="OpenCV reference trackers (MIL, NanoTrack) in the same format")
    _benchmark_args(b)
    b.add_argument("--tracker", choices=["mil", "nanotrack"], default="mil")
    b.add_argument(
        "--onnx", type=Path, help="nanotrack: folder (or DIR/PREFIX) of its backbone and neck+head ONNX files"
    )
    b.add_argument("--name", help="results folder name (default OpenCV-MIL / OpenCV-NanoTrack)")
    b.set_defaults(fn=cmd_baseline)
    add_verbosity_flags(b)


def _add_report(sub) -> None:
    """The ``report`` subcommand: tables and plots."""
    e = sub.add_parser("report", help="tables and plots comparing result folders")
    add_verbosity_flags(e)
    _benchmark_args(e)
    e.add_argument("--trackers", nargs="+", required=True)
    e.add_argument("--out", type=Path, default=Path("report"))
    e.add_argument("--rules", default="pysot", choices=list(ope.RULES))
    e.add_argument("--lasot-mode", action="store_true", help="drop frames flagged absent (LaSOT protocol)")
    e.add_argument(
        "--paired",
        nargs=2,
        action="append",
        metavar=("A", "B"),
        default=[],
        help="also compare tracker A with B per sequence (AUC difference, 95 %% bootstrap interval); "
        "repeatable",
    )
    e.add_argument(
        "--protocol",
        choices=["ope", "vot"],
        default="ope",
        help="vot: accuracy / robustness / EAO from VOT result files",
    )
    e.add_argument(
        "--eao-interval",
        choices=["VOT2016", "VOT2017", "VOT2018", "VOT2019"],
        help="default: VOT2019 for vot2019, else VOT2018",
    )
    e.set_defaults(fn=cmd_report)


def _params(a: argparse.Namespace, model):
    """The tracker settings of ``run`` for ``model``: the preset, relation detector off on request."""
    from siamrn_jax.tracking.params import TrackerParams

    # Only an explicit --no-relation overrides: a preset file may turn the relation detector off itself.
    return TrackerParams.for_model(model, a.preset, **({"relation": False} if a.no_relation else {}))


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    configure(a)
    try:
        lines = a.fn(a)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    from siamrn_jax.xla_flags import apply_default_xla_flags

    apply_default_xla_flags()
    sys.exit(main())
