"""Comparison reports of trackers' OPE result folders: Markdown/CSV tables and success/precision plots.

Result folders are pysot format (``<results>/<tracker>/<sequence>.txt``, one ``x,y,w,h`` line per frame,
comma/tab/space separated), which is also how the SiamRN authors published their raw results. Metrics
come from ``siamrn_jax.eval.ope`` (pysot rules by default); this module only reads, tabulates and draws.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from collections.abc import Sequence as Seq
from pathlib import Path

import numpy as np

from siamrn_jax.eval import ope
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.tracking.results_io import atomic_output, read_boxes
from siamrn_jax.tracking.sources import InputError


def load_results(
    results_dir: str | os.PathLike, tracker: str, sequences: Seq[Sequence]
) -> dict[str, np.ndarray]:
    """Reads a tracker's result boxes; a missing file or a wrong line count is a one-line error."""
    out = {}
    for s in sequences:
        path = Path(results_dir) / tracker / f"{s.name}.txt"
        if not path.is_file():
            raise InputError(f"{path}: no result for sequence {s.name} of tracker {tracker}")
        boxes = read_boxes(path)
        if len(boxes) != len(s):
            raise InputError(f"{path}: {len(boxes)} result lines for {len(s)} frames")
        out[s.name] = boxes
    return out


def evaluate_tracker(
    results: Mapping[str, np.ndarray],
    sequences: Seq[Sequence],
    rules: ope.Rules = "pysot",
    lasot_mode: bool = False,
) -> dict[str, ope.OPEScores]:
    """Per-sequence ``OPEScores``; ``lasot_mode`` drops the frames flagged absent (LaSOT protocol)."""
    return {
        s.name: ope.evaluate_sequence(
            s.groundtruth[:, :4],
            results[s.name],
            keep=s.visible.astype(int) if lasot_mode else None,
            rules=rules,
        )
        for s in sequences
    }


def table(overall: Mapping[str, ope.OPEScores]) -> list[dict[str, str]]:
    """Rows sorted by success AUC (best first)."""
    rows = []
    for name, sc in sorted(overall.items(), key=lambda kv: -kv[1].success_auc):
        rows.append(
            {
                "tracker": name,
                "success AUC": f"{sc.success_auc:.3f}",
                "success@0.5": f"{sc.success_rate:.3f}",
                "precision@20px": f"{sc.precision:.3f}",
                "norm. precision@0.20": f"{sc.norm_precision:.3f}",
                "norm. precision AUC": f"{sc.norm_precision_auc:.3f}",
                "sequences": str(sc.n),
            }
        )
    return rows


def markdown(rows: Seq[Mapping[str, str]]) -> str:
    keys = list(rows[0])
    lines = [
        "| " + " | ".join(keys) + " |",
        "|" + "|".join("---" if k == "tracker" else "---:" for k in keys) + "|",
    ]
    lines += ["| " + " | ".join(r[k] for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_csv(path: Path, rows: Seq[Mapping[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def plot_curves(overall: Mapping[str, ope.OPEScores], out_dir: Path, title: str) -> list[Path]:
    """Success and precision plots (PNG), legends ranked like pysot's (score in brackets)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    paths = []
    specs = [
        (
            "success",
            ope.SUCCESS_THRESHOLDS,
            "success_curve",
            "success_auc",
            "Overlap threshold",
            "Success rate",
        ),
        (
            "precision",
            ope.PRECISION_THRESHOLDS,
            "precision_curve",
            "precision",
            "Location error threshold (px)",
            "Precision",
        ),
    ]
    for kind, x, curve, score, xlabel, ylabel in specs:
        fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=120)
        for name, sc in sorted(overall.items(), key=lambda kv: -getattr(kv[1], score)):
            ax.plot(x, getattr(sc, curve), lw=2, label=f"[{getattr(sc, score):.3f}] {name}")
        ax.set(
            xlabel=xlabel, ylabel=ylabel, title=f"{kind.capitalize()} plot of OPE on {title}", ylim=(0, 1.01)
        )
        ax.set_xlim(x[0], x[-1])
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left" if kind == "success" else "lower right", fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{kind}.png"
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        paths.append(path)
    return paths


def vot_scores(
    results_dir: str | os.PathLike, tracker: str, sequences: Seq[Sequence], interval: str
) -> tuple[dict[str, str], np.ndarray]:
    """pysot VOT accuracy / robustness / failures / EAO of one tracker's VOT result files.

    Returns:
      (a table row, the expected-overlap curve).
    """
    from siamrn_jax.eval import vot
    from siamrn_jax.eval.runner import vot_result_path

    trajs, gts, sizes = [], [], []
    for s in sequences:
        path = vot_result_path(results_dir, tracker, s)
        if not path.is_file():
            raise InputError(f"{path}: no VOT result for sequence {s.name} of tracker {tracker}")
        traj = vot.parse_vot_results(path.read_text())
        if len(traj) != len(s):
            raise InputError(f"{path}: {len(traj)} result lines for {len(s)} frames")
        trajs.append([traj])
        gts.append(list(s.groundtruth))
        sizes.append(s.frame_size())
    ar = vot.accuracy_robustness(trajs, gts, sizes)
    curve = vot.expected_overlap_curve(trajs, gts, sizes)
    row = {
        "tracker": tracker,
        f"EAO ({interval})": f"{vot.eao_from_curve(curve, interval):.3f}",
        "accuracy": f"{ar['accuracy']:.3f}",
        "robustness": f"{ar['robustness']:.3f}",
        "failures": str(int(ar["lost_number"])),
        "sequences": str(len(sequences)),
    }
    return row, curve


def plot_eao_curves(
    curves: Mapping[str, np.ndarray], eaos: Mapping[str, float], out_dir: Path, title: str
) -> Path:
    """Expected-overlap curves (PNG), legend ranked by EAO."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=120)
    for name in sorted(curves, key=lambda n: -eaos[n]):
        phi = curves[name]
        ax.plot(np.arange(1, len(phi) + 1), phi, lw=2, label=f"[{eaos[name]:.3f}] {name}")
    ax.set(
        xlabel="Sequence length", ylabel="Expected overlap", title=f"EAO curves on {title}", ylim=(0, 1.01)
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = out_dir / "eao.png"
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
