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

from siamrn_jax.atomic import atomic_output
from siamrn_jax.eval import got10k, ope
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.format_json import read_text
from siamrn_jax.geometry.boxes import polygon_to_box
from siamrn_jax.io.results import read_boxes, result_path, vot_result_path
from siamrn_jax.io.sources import InputError


def load_results(
    results_dir: str | os.PathLike, tracker: str, sequences: Seq[Sequence]
) -> dict[str, np.ndarray]:
    """Reads a tracker's result boxes; a missing file or a wrong line count is a one-line error."""
    out = {}
    for s in sequences:
        path = result_path(results_dir, tracker, s)
        if not path.is_file():
            raise InputError(f"{path}: no result for sequence {s.name} of tracker {tracker}")
        try:
            boxes = read_boxes(path)
        except ValueError as e:  # read_rows' malformed-line error, already "file:line: ..."
            raise InputError(str(e)) from None
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
    """Per-sequence ``OPEScores``; ``lasot_mode`` drops the frames flagged absent (LaSOT protocol).

    Polygon ground truth (VOT sequences scored with OPE) is converted row by row with pysot's
    axis-aligned rule (``polygon_to_box``), the same rule the tracker was initialised with.
    """
    return {
        s.name: ope.evaluate_sequence(
            ope_groundtruth(s),
            results[s.name],
            keep=s.visible.astype(int) if lasot_mode else None,
            rules=rules,
        )
        for s in sequences
    }


def ope_groundtruth(s: Sequence) -> np.ndarray:
    """[T, 4] (x, y, w, h) ground truth for OPE metrics: boxes as read, polygons via ``polygon_to_box``."""
    return polygon_to_box(s.groundtruth) if s.groundtruth.shape[1] == 8 else s.groundtruth


def evaluate_got10k(results: Mapping[str, np.ndarray], sequences: Seq[Sequence]) -> got10k.GOT10kResult:
    """GOT-10k AO / SR0.5 / SR0.75 (frame-pooled, toolkit rules: frames >= 1 with cover > 0, boxes bounded
    by the image). Needs the full ground truth: the GOT-10k test split's is withheld (server only)."""
    for s in sequences:
        if np.isnan(s.groundtruth[1:]).all() and len(s) > 1:
            raise InputError(
                f"{s.name}: ground truth withheld after frame 0 (GOT-10k test); score it on the server"
            )
    return got10k.evaluate(
        {
            s.name: (
                ope_groundtruth(s),
                results[s.name],
                s.cover if s.cover is not None else s.visible.astype(int) * 8,
                s.frame_size(),
            )
            for s in sequences
        }
    )


def got10k_table(by_tracker: Mapping[str, got10k.GOT10kResult]) -> list[dict[str, str]]:
    """Rows sorted by AO (best first)."""
    return [
        {
            "tracker": name,
            "AO": f"{r.overall.ao:.3f}",
            "SR0.5": f"{r.overall.sr50:.3f}",
            "SR0.75": f"{r.overall.sr75:.3f}",
            "frames": str(r.overall.n_frames),
            "sequences": str(len(r.per_sequence)),
        }
        for name, r in sorted(by_tracker.items(), key=lambda kv: -kv[1].overall.ao)
    ]


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
        paths.append(save_png(fig, out_dir / f"{kind}.png"))
    return paths


def save_png(fig, path: Path) -> Path:
    """Lays out ``fig``, writes it to ``path`` as PNG (atomically) and closes it; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def vot_runs(
    results_dir: str | os.PathLike, tracker: str, sequences: Seq[Sequence]
) -> tuple[list[list[list]], list[list], list[tuple[float, float]]]:
    """(trajectories ``[s][run]``, ground truths, image sizes) of one tracker's VOT result files."""
    from siamrn_jax.eval import vot

    trajs, gts, sizes = [], [], []
    for s in sequences:
        path = vot_result_path(results_dir, tracker, s)
        if not path.is_file():
            raise InputError(f"{path}: no VOT result for sequence {s.name} of tracker {tracker}")
        try:
            traj = vot.parse_vot_results(read_text(path, InputError))
        except (ValueError, OverflowError) as e:  # a line that is no code and no numbers; int(inf)
            raise InputError(f"{path}: not VOT results ({e})") from None
        if len(traj) != len(s):
            raise InputError(f"{path}: {len(traj)} result lines for {len(s)} frames")
        trajs.append([traj])
        gts.append(list(s.groundtruth))
        sizes.append(s.frame_size())
    return trajs, gts, sizes


def vot_scores(
    results_dir: str | os.PathLike, tracker: str, sequences: Seq[Sequence], interval: str
) -> tuple[dict[str, str], np.ndarray]:
    """pysot VOT accuracy / robustness / failures / EAO of one tracker's VOT result files.

    Returns:
      (a table row, the expected-overlap curve).
    """
    return vot_row(tracker, vot_runs(results_dir, tracker, sequences), interval)


def vot_row(tracker: str, runs, interval: str) -> tuple[dict[str, str], np.ndarray]:
    """``vot_scores`` from ``vot_runs``' (trajectories, ground truths, image sizes)."""
    from siamrn_jax.eval import vot

    ar = vot.accuracy_robustness(*runs)
    curve = vot.expected_overlap_curve(*runs)
    row = {
        "tracker": tracker,
        f"EAO ({interval})": f"{vot.eao_from_curve(curve, interval):.3f}",
        "accuracy": f"{ar['accuracy']:.3f}",
        "robustness": f"{ar['robustness']:.3f}",
        "failures": str(int(ar["lost_number"])),
        "sequences": str(len(runs[0])),
    }
    return row, curve


def vot_tag_rows(tracker: str, runs, sequences: Seq[Sequence], interval: str) -> list[dict[str, str]]:
    """One row per visual-attribute tag (``vot_tags.TAG_NAMES``): frames, accuracy, robustness, failures
    and EAO of one tracker (``vot_runs`` of ``sequences``) over the frames carrying the tag."""
    from siamrn_jax.eval.vot import tags as vot_tags

    scores = vot_tags.tag_scores(*runs, [s.tags for s in sequences], interval)
    return [
        {
            "tracker": tracker,
            "tag": tag,
            "frames": str(sc.frames),
            "accuracy": f"{sc.accuracy:.3f}",
            "robustness": f"{sc.robustness:.3f}",
            "failures": f"{sc.failures:g}",
            f"EAO ({interval})": f"{sc.eao:.3f}",
        }
        for tag, sc in scores.items()
    ]


def plot_tag_eao(rows: Seq[Mapping[str, str]], key: str, out_dir: Path, title: str) -> Path:
    """Figure-6-style chart: EAO per visual attribute, one bar per tracker (PNG ``eao_tags.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = list(dict.fromkeys(r["tag"] for r in rows))
    trackers = list(dict.fromkeys(r["tracker"] for r in rows))
    value = {(r["tracker"], r["tag"]): float(r[key]) for r in rows}
    width = 0.8 / max(len(trackers), 1)
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
    for k, t in enumerate(trackers):
        xs = np.arange(len(tags)) + (k - (len(trackers) - 1) / 2) * width
        ax.bar(xs, [np.nan_to_num(value[(t, g)]) for g in tags], width, label=t)
    ax.set_xticks(np.arange(len(tags)), [g.replace("_", "\n") for g in tags], fontsize=8)
    ax.set(ylabel=key, title=f"EAO per visual attribute on {title}", ylim=(0, 1))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return save_png(fig, out_dir / "eao_tags.png")


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
    return save_png(fig, out_dir / "eao.png")
