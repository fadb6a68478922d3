"""``python -m siamrn_jax.train.ablate``: the paper's Table 3 as a grid of trained and evaluated variants.

    python -m siamrn_jax.train.ablate --grid table3 --config demo_resnet --out runs/table3 \\
        --benchmark folder --root ../shared/data/sequences
    python -m siamrn_jax.train.ablate --grid smoke --config smoke --steps 2 --epochs 1 \\
        --benchmark folder --root ../shared/data/sequences --sequences Bolt --out runs/ablate_smoke
    python -m siamrn_jax.train.ablate --grid table3 --config demo_resnet --benchmark synthetic --scenes 20 ...

Every variant is a set of config overrides (``GRIDS``; the switches are ``model.levels``,
``model.rd_levels``, ``model.rd_heads`` and ``train.rd_pairs``). For each, in grid order:

1. train it with the training loop (``siamrn_jax.train.loop.train``) in ``OUT/<variant>/train``; an
   interrupted run resumes from its last checkpoint, a finished one (``train/model`` exists) is not rerun;
2. track the benchmark's sequences with its final weights (``eval.runner.run_ope``, the model's default
   tracker preset or ``--preset``) into ``OUT/results/<variant>/`` (sequences with results are skipped);
3. score them (``eval.report``: OPE success AUC and precision at 20 px, pysot rules) into
   ``OUT/<variant>/scores.json``: a variant with that file is finished and skipped on a rerun.

Then ``OUT/table.md`` (one row per variant: levels, RD levels, heads, training strategy, AUC, precision),
``OUT/table.csv`` and ``OUT/table.json`` are written atomically. ``OUT/<variant>/variant.json`` records
what a variant was run with (config, overrides, steps, benchmark); a rerun that asks for something else of
the same ``--out`` is a one-line error, not a silent mix. ``--steps`` / ``--epochs`` override
``train.steps_per_epoch`` / ``train.epochs`` (small-scale runs), ``--set KEY=VALUE`` any config key of
every variant (data paths, the batch size). ``--pretrained resnet50.model`` (pysot's ImageNet backbone,
as the paper trains) is converted into each variant's own architecture (``OUT/<variant>/init``, the
stages a variant does not build ignored) and becomes its ``train.init_checkpoint``.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import ml_collections

from siamrn_jax.atomic import atomic_output
from siamrn_jax.errors import SiamrnError
from siamrn_jax.format_json import read_json

_LOG = logging.getLogger(__name__)

# Held-out synthetic scenes (``--benchmark synthetic``): the generator of ``eval.synthetic`` (seed 10000,
# never drawn by training), written as OTB folders and read by the ``folder`` benchmark.
SYNTHETIC = "synthetic"
LEVEL_NAMES = {2: "C3", 3: "C4", 4: "C5"}  # pysot's layer2-4 are the paper's conv3-5 blocks
STRATEGY_NAMES = {"contrastive": "contrastive 1:2:1", "one_way": "one-way one-shot"}


class AblateError(SiamrnError, ValueError):
    """A grid, override, benchmark or output folder that cannot be used as asked."""


class Variant(NamedTuple):
    """One row of the table: a name (its folder under ``--out``) and its config overrides
    (``{"model.rd_heads": ("local",), "train.rd_pairs": "one_way"}``)."""

    name: str
    overrides: dict[str, Any]


def _table3() -> tuple[Variant, ...]:
    """The paper's Table 3 rows: the full model; the relation detector on one level (C3 / C4 / C5) with
    the BAN head on all three; one relation head at a time; one-way one-shot training."""
    rows = [Variant("full", {})]
    rows += [Variant(f"rd_{LEVEL_NAMES[lv]}", {"model.rd_levels": (lv,)}) for lv in (2, 3, 4)]
    rows += [Variant(f"head_{h}", {"model.rd_heads": (h,)}) for h in ("global", "local", "patch")]
    rows.append(Variant("one_way", {"train.rd_pairs": "one_way"}))
    return tuple(rows)


GRIDS: dict[str, tuple[Variant, ...]] = {
    "table3": _table3(),
    # The whole tracker (BAN head and relation detector) on one backbone level against all three.
    "levels": (
        Variant("full", {}),
        *(Variant(f"levels_{LEVEL_NAMES[lv]}", {"model.levels": (lv,)}) for lv in (2, 3, 4)),
    ),
    # Two variants that exercise every switch at once: for tests and a first look.
    "smoke": (
        Variant("full", {}),
        Variant(
            "C4_local_one_way",
            {"model.levels": (3,), "model.rd_heads": ("local",), "train.rd_pairs": "one_way"},
        ),
    ),
}


def override(cfg: ml_collections.ConfigDict, key: str, value: Any) -> None:
    """Sets the dotted ``key`` of ``cfg`` (which must exist) to ``value``; ``AblateError`` otherwise."""
    node, parts = cfg, key.split(".")
    for part in parts[:-1]:
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            raise AblateError(f"override {key}: no such key in the config")
        node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or parts[-1] not in node:
        raise AblateError(f"override {key}: no such key in the config")
    try:
        node[parts[-1]] = value
    except (TypeError, ValueError) as e:  # ml_collections: a value of another type than the field's
        raise AblateError(f"override {key}={value!r}: {e}") from None


def variant_config(
    base: ml_collections.ConfigDict,
    variant: Variant,
    common: Sequence[tuple[str, Any]] = (),
    steps: int | None = None,
    epochs: int | None = None,
) -> ml_collections.ConfigDict:
    """The config of one variant: ``base`` with the common ``--set`` overrides, ``--steps`` /
    ``--epochs``, then the variant's own overrides (they win)."""
    cfg = copy.deepcopy(base)
    sized = [("train.steps_per_epoch", steps), ("train.epochs", epochs)]
    for key, value in [*common, *((k, v) for k, v in sized if v is not None), *variant.overrides.items()]:
        override(cfg, key, value)
    return cfg


def describe(cfg: ml_collections.ConfigDict) -> dict[str, str]:
    """The Table-3 columns of a variant's config: levels, RD levels, heads, training strategy."""
    m = cfg.model
    levels = tuple(m.levels)
    rd = levels if m.get("rd_levels") is None else tuple(m.rd_levels)
    return {
        "levels": "+".join(LEVEL_NAMES[lv] for lv in levels),
        "RD levels": "+".join(LEVEL_NAMES[lv] for lv in rd),
        "heads": "+".join(m.get("rd_heads", ("global", "local", "patch"))),
        "training": STRATEGY_NAMES.get(cfg.train.get("rd_pairs", "contrastive"), cfg.train.rd_pairs),
    }


class Benchmark(NamedTuple):
    """Where the variants are evaluated: a registered benchmark name, its root, optional sequence names."""

    name: str
    root: Path
    sequences: tuple[str, ...] | None = None

    def record(self) -> dict[str, Any]:
        seqs = None if self.sequences is None else list(self.sequences)
        return {"benchmark": self.name, "root": str(self.root.absolute()), "sequences": seqs}


def synthetic_scenes(folder: Path, count: int) -> Benchmark:
    """The first ``count`` held-out synthetic scenes (``eval.synthetic.HELD_OUT``) as OTB folders in
    ``folder`` (written once; each scene atomically), as a ``folder`` benchmark."""
    from siamrn_jax.eval.synthetic import HELD_OUT
    from siamrn_jax.tracking.demo import write_scene

    folder.mkdir(parents=True, exist_ok=True)
    for v in range(count):
        scene = folder / f"scene{v:03d}"
        if not scene.is_dir():
            write_scene(scene, HELD_OUT, v)
    return Benchmark("folder", folder, tuple(f"scene{v:03d}" for v in range(count)))


def evaluate(model_dir: Path, name: str, bench: Benchmark, results: Path, tracker_preset=None) -> dict:
    """Tracks ``bench`` with the checkpoint ``model_dir`` into ``results/<name>/`` (OPE, sequences with a
    result file are skipped) and scores the result files.

    Returns:
      ``{"success_auc", "precision", "success_50", "sequences", "frames"}`` (pysot rules, means over
      sequences).
    """
    from siamrn_jax import checkpoint
    from siamrn_jax.eval import ope
    from siamrn_jax.eval.registry import load_benchmark
    from siamrn_jax.eval.report import evaluate_tracker, load_results
    from siamrn_jax.eval.runner import run_ope
    from siamrn_jax.tracking.params import TrackerParams

    seqs = load_benchmark(bench.name, bench.root, bench.sequences)
    model, variables, _ = checkpoint.load(model_dir)
    params = TrackerParams.for_model(model, tracker_preset)
    run_ope(model, variables, params, seqs, results, name, log=_LOG.info)
    scores = ope.aggregate(evaluate_tracker(load_results(results, name, seqs), seqs))
    return {
        "success_auc": float(scores.success_auc),
        "precision": float(scores.precision),
        "success_50": float(scores.success_rate),
        "sequences": len(seqs),
        "frames": sum(len(s) for s in seqs),
    }


def _read_json(path: Path) -> Any:
    return read_json(path, AblateError)


def _write_json(path: Path, obj: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _claim(folder: Path, setting: dict[str, Any]) -> None:
    """``folder/variant.json`` = ``setting``, or ``AblateError`` when it records another setting."""
    path = folder / "variant.json"
    if path.is_file():
        old = _read_json(path)
        if old != setting:
            keys = sorted(k for k in old.keys() | setting.keys() if old.get(k) != setting.get(k))
            raise AblateError(
                f"{path}: variant {folder.name} was run with another setting ({', '.join(keys)}); "
                "use another --out"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(path, setting)


def pretrained_init(cfg: ml_collections.ConfigDict, pth: Path, directory: Path) -> Path:
    """``pth`` (a pysot ``resnet50.model``, or any state dict the converter reads) converted into the
    architecture of ``cfg.model`` at ``directory`` (once), the parts it lacks initialised fresh with the
    run's seed: what the variant's ``train.init_checkpoint`` points to."""
    from siamrn_jax import checkpoint
    from siamrn_jax.config import build_model
    from siamrn_jax.convert.convert import torch_to_flax, unwrap_state_dict
    from siamrn_jax.convert.torch_pickle import load_pth

    if (directory / "model.json").is_file():
        return directory
    model = build_model(cfg.model)
    seed = cfg.train.seed
    sd = unwrap_state_dict(load_pth(pth), str(pth))
    variables, report = torch_to_flax(
        sd, checkpoint.abstract_variables(model), lambda: checkpoint.init_variables(model, seed), str(pth)
    )
    checkpoint.save(directory, model, variables, {"file": str(pth), "seed": seed, **report})
    _LOG.info("%s -> %s: %d leaves loaded, fresh: %s", pth, directory, report["loaded"], report["fresh"])
    return directory


def run_variant(
    cfg: ml_collections.ConfigDict,
    variant: Variant,
    out: Path,
    bench: Benchmark,
    setting: dict[str, Any],
    tracker_preset: str | None = None,
    pretrained: Path | None = None,
) -> dict[str, Any]:
    """Trains, evaluates and scores one variant (each step skipped when already done); its record."""
    from siamrn_jax.train.loop import train

    folder = out / variant.name
    _claim(folder, setting)
    scores_path = folder / "scores.json"
    if scores_path.is_file():
        _LOG.info("%s: finished (%s), skipped", variant.name, scores_path)
        return _read_json(scores_path)
    if pretrained is not None:
        cfg = copy.deepcopy(cfg)
        override(cfg, "train.init_checkpoint", str(pretrained_init(cfg, pretrained, folder / "init")))
    workdir = folder / "train"
    t0 = time.perf_counter()
    if not (workdir / "model" / "model.json").is_file():
        _LOG.info("%s: training in %s", variant.name, workdir)
        summary = train(cfg, workdir, progress=False)
        if not (workdir / "model" / "model.json").is_file():  # stopped by a signal before the end
            raise AblateError(f"{workdir}: training stopped at step {summary['step']}; rerun to resume")
    train_s = time.perf_counter() - t0
    _LOG.info("%s: evaluating on %s", variant.name, bench.root)
    scores = evaluate(workdir / "model", variant.name, bench, out / "results", tracker_preset)
    record = {"variant": variant.name, **describe(cfg), **scores, "train_s": round(train_s, 1)}
    _write_json(scores_path, record)
    return record


def table_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Table-3 rows, in grid order."""
    return [
        {
            "variant": r["variant"],
            "levels": r["levels"],
            "RD levels": r["RD levels"],
            "heads": r["heads"],
            "training": r["training"],
            "success AUC": f"{r['success_auc']:.3f}",
            "precision@20px": f"{r['precision']:.3f}",
        }
        for r in records
    ]


def markdown(rows: Sequence[dict[str, str]]) -> str:
    keys = list(rows[0])
    numeric = {"success AUC", "precision@20px"}
    lines = [
        "| " + " | ".join(keys) + " |",
        "|" + "|".join("---:" if k in numeric else "---" for k in keys) + "|",
    ]
    lines += ["| " + " | ".join(r[k] for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_tables(out: Path, records: Sequence[dict[str, Any]], caption: str) -> str:
    """``table.md`` (caption + Markdown table), ``table.csv`` and ``table.json`` (the full records),
    each written atomically; returns the Markdown."""
    rows = table_rows(records)
    text = f"{caption}\n\n{markdown(rows)}"
    with atomic_output(out / "table.md") as tmp:
        tmp.write_text(text)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_output(out / "table.csv") as tmp:
        tmp.write_text(buf.getvalue())
    _write_json(out / "table.json", {"caption": caption, "variants": list(records)})
    return text


def select(grid: str, names: Sequence[str] | None) -> tuple[Variant, ...]:
    """The variants of ``grid`` (all, or those named, in grid order)."""
    if grid not in GRIDS:
        raise AblateError(f"unknown grid {grid!r} (known: {', '.join(sorted(GRIDS))})")
    variants = GRIDS[grid]
    if names:
        unknown = sorted(set(names) - {v.name for v in variants})
        if unknown:
            raise AblateError(
                f"--variants {unknown}: not in grid {grid} ({', '.join(v.name for v in variants)})"
            )
        variants = tuple(v for v in variants if v.name in names)
    return variants


class Plan(NamedTuple):
    """Everything ``run_grid`` needs, as the command line gives it."""

    config: str
    grid: str
    out: Path
    bench: Benchmark
    variants: tuple[str, ...] | None = None
    common: tuple[tuple[str, Any], ...] = ()
    steps: int | None = None
    epochs: int | None = None
    tracker_preset: str | None = None
    pretrained: Path | None = None


def run_grid(plan: Plan, log: Callable[[str], None] = _LOG.info) -> str:
    """Runs (or resumes) every variant of ``plan``, writes the tables; returns the Markdown table.

    Every variant's config is built and its model checked (``build_model``) before the first one trains,
    so a bad switch is an error before hours of training, not after.
    """
    from siamrn_jax.config import build_model, load_config

    base = load_config(plan.config)
    variants = select(plan.grid, plan.variants)
    configs = [variant_config(base, v, plan.common, plan.steps, plan.epochs) for v in variants]
    for cfg in configs:
        build_model(cfg.model)  # ConfigError: one line, nothing trained yet
    plan.out.mkdir(parents=True, exist_ok=True)
    records = []
    for v, cfg in zip(variants, configs, strict=True):
        setting = {
            "config": plan.config,
            "overrides": {k: _jsonable(x) for k, x in v.overrides.items()},
            "set": [[k, _jsonable(x)] for k, x in plan.common],
            "steps_per_epoch": cfg.train.steps_per_epoch,
            "epochs": cfg.train.epochs,
            "preset": plan.tracker_preset,
            **({} if plan.pretrained is None else {"pretrained": str(plan.pretrained.absolute())}),
            **plan.bench.record(),
        }
        records.append(
            run_variant(cfg, v, plan.out, plan.bench, setting, plan.tracker_preset, plan.pretrained)
        )
        r = records[-1]
        log(f"{v.name}: success AUC {r['success_auc']:.3f}, precision {r['precision']:.3f}")
    steps = configs[0].train.steps_per_epoch * configs[0].train.epochs
    caption = (
        f"Ablation grid `{plan.grid}`, config `{plan.config}` ({steps} steps x batch "
        f"{configs[0].train.batch_per_device} per device), evaluated on {plan.bench.name} "
        f"`{plan.bench.root}` ({records[0]['sequences']} sequences, {records[0]['frames']} frames; OPE, "
        "pysot rules)."
    )
    return write_tables(plan.out, records, caption)


def _jsonable(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x


if __name__ == "__main__":  # the command lives in siamrn_jax.cli
    import sys

    from siamrn_jax.cli.commands import ablate

    sys.exit(ablate())
