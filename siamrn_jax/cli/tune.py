"""``python -m siamrn_jax.tune``: Optuna search of the tracker's penalty_k, window_influence and lr.

    # 40 trials of OPE success AUC on 7 sequences, 4 trials per lockstep batch; resumable
    python -m siamrn_jax.tune --checkpoint demo --benchmark folder --root ../shared/data/sequences \\
        --sequences Bolt Crossing Deer Diving DragonBaby Freeman1 Human3 \\
        --trials 40 --batch 4 --storage sqlite:///tune/study.db --out tune/best.json
    # a second process or host on the same study (same storage, same arguments): they share the trials
    # VOT EAO (supervised restarts) instead of OPE AUC
    python -m siamrn_jax.tune ... --protocol vot
    # then track or evaluate with the result
    python track.py --preset tune/best.json ...
    python -m siamrn_jax.eval run --preset tune/best.json ...

The preset given (default: the model's own) is trial 0. ``--out`` (best.json: the tracker-parameter file
format of ``--preset FILE``, plus the study's record), ``history.png`` and ``importance.png`` beside it are
rewritten after every batch, so a killed study keeps what it found; rerunning continues it up to
``--trials`` finished trials in all. Errors print one ``error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from siamrn_jax.cli import args as cli_args
from siamrn_jax.cli.args import add_verbosity_flags, positive_int
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.log_config import configure

_LOG = logging.getLogger("siamrn_jax.tune")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m siamrn_jax.tune",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("--checkpoint", default="demo", help="checkpoint directory or 'demo' (the embedded model)")
    p.add_argument(
        "--benchmark", required=True, help="a benchmark of python -m siamrn_jax.eval (e.g. folder)"
    )
    p.add_argument("--root", required=True, type=Path, help="benchmark root folder")
    p.add_argument("--sequences", nargs="+", help="tune on these sequences only (default: all)")
    p.add_argument("--protocol", choices=["ope", "vot"], default="ope", help="objective: OPE AUC or VOT EAO")
    p.add_argument(
        "--eao-interval",
        choices=["VOT2016", "VOT2017", "VOT2018", "VOT2019"],
        default="VOT2018",
        help="vot: the EAO interval (default VOT2018)",
    )
    cli_args.add_preset(
        p, help="the starting point, trial 0: a preset name or JSON file (default: the model's own)"
    )
    p.add_argument("--trials", type=positive_int, default=40, help="finished trials the study should hold")
    p.add_argument("--batch", type=positive_int, default=4, help="trials tracked together in lockstep")
    p.add_argument(
        "--rows",
        type=positive_int,
        help="OPE: rows (trial x sequence) per lockstep batch (default: all of a batch of trials; on a "
        "2-core CPU --rows equal to --batch, one sequence's trials at a time, is fastest)",
    )
    p.add_argument(
        "--devices", type=positive_int, help="OPE: local devices each lockstep batch is split over"
    )
    p.add_argument("--out", type=Path, default=Path("tune/best.json"), help="best.json (plots go beside it)")
    p.add_argument("--storage", help="Optuna RDB storage URL (default: sqlite:///<--out's folder>/study.db)")
    p.add_argument("--study-name", default="siamrn-tune", help="study name inside the storage")
    p.add_argument("--seed", type=int, default=0, help="TPE sampler seed")
    p.add_argument("--no-plots", action="store_true", help="skip history.png / importance.png")
    add_verbosity_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    configure(a)
    _quiet_optuna(a.verbose)
    try:
        lines = _tune(a)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


def _quiet_optuna(verbose: bool) -> None:
    """Optuna's records through our console handler, its per-trial INFO lines only with --verbose (ours
    report per batch)."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    logging.getLogger("optuna").setLevel(logging.DEBUG if verbose else logging.WARNING)


def _tune(a: argparse.Namespace) -> list[str]:
    from tqdm import tqdm

    from siamrn_jax.cli.tune_setup import prepare
    from siamrn_jax.tune import study as st

    job = prepare(a)
    study = st.open_study(job.storage, a.study_name, job.setup, a.seed)
    st.enqueue_preset(study, job.preset_values)
    space = st.search_space(job.preset_values)
    with tqdm(
        total=a.trials,
        initial=min(a.trials, len(st.finished(study))),
        desc="trials",
        unit="trial",
        disable=None,
        file=sys.stderr,
    ) as bar:
        st.run(study, space, job.evaluate, a.trials, a.batch, lambda s: _report(s, a), bar)
    rec = st.write_outputs(study, a.out, not a.no_plots)
    from siamrn_jax.tune.trials import HYPER_NAMES

    # The preset's trial may have failed (NaN objective, e.g. its tracker diverged): no value then.
    preset = "failed" if rec["preset_value"] is None else f"{rec['preset_value']:.4f}"
    values = ", ".join(f"{k}={rec['params'][k]:.4f}" for k in HYPER_NAMES)
    return [
        f"{rec['trials']} trials; best {rec['objective']} {rec['value']:.4f} (trial {rec['trial']}) vs the "
        f"preset's {preset}: {values}",
        f"wrote {a.out}" + ("" if a.no_plots else f", {a.out.parent / 'history.png'}, importance.png"),
    ]


def _report(study, a) -> None:
    from siamrn_jax.tune import study as st

    rec = st.write_outputs(study, a.out, not a.no_plots)
    _LOG.info(
        f"{rec['trials']} trials finished; best {rec['objective']} {rec['value']:.4f} (trial {rec['trial']})"
    )


if __name__ == "__main__":
    from siamrn_jax.xla_flags import apply_default_xla_flags

    apply_default_xla_flags()
    sys.exit(main())
