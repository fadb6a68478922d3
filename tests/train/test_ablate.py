"""``python -m siamrn_jax.train.ablate``: grids, overrides, one-line errors, and a tiny grid end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from siamrn_jax.cli.ablate import main as ablate_main
from siamrn_jax.config import load_config
from siamrn_jax.train import ablate
from tests.conftest import SHARED
from tests.train.runs import ROOT, env

SEQUENCES = SHARED / "data" / "sequences"


def test_table3_grid_has_the_paper_rows():
    rows = {v.name: v.overrides for v in ablate.GRIDS["table3"]}
    assert rows["full"] == {}
    assert [rows[f"rd_{c}"] for c in ("C3", "C4", "C5")] == [{"model.rd_levels": (lv,)} for lv in (2, 3, 4)]
    assert [rows[f"head_{h}"] for h in ("global", "local", "patch")] == [
        {"model.rd_heads": (h,)} for h in ("global", "local", "patch")
    ]
    assert rows["one_way"] == {"train.rd_pairs": "one_way"}


def test_variant_config_and_columns():
    base = load_config("smoke")
    v = ablate.Variant(
        "x", {"model.levels": (3, 4), "model.rd_heads": ("local",), "train.rd_pairs": "one_way"}
    )
    cfg = ablate.variant_config(base, v, [("train.batch_per_device", 2)], steps=3, epochs=1)
    assert (cfg.train.steps_per_epoch, cfg.train.epochs, cfg.train.batch_per_device) == (3, 1, 2)
    assert base.train.steps_per_epoch == 10 and tuple(base.model.levels) == (2, 3, 4)  # base untouched
    assert ablate.describe(cfg) == {
        "levels": "C4+C5",
        "RD levels": "C4+C5",
        "heads": "local",
        "training": "one-way one-shot",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "nope"], "error: unknown grid 'nope' (known: levels, smoke, table3)"),
        (["--grid", "smoke", "--variants", "zz"], "error: --variants ['zz']: not in grid smoke"),
        (["--benchmark", "folder"], "error: --benchmark folder needs --root"),
        (["--benchmark", "otb2"], "error: unknown benchmark 'otb2'"),
        (["--root", "/nonexistent"], "error: /nonexistent: no such folder"),
        (
            ["--root", str(SEQUENCES), "--set", "train.bogus=1"],
            "error: override train.bogus: no such key in the config",
        ),
        (
            ["--root", str(SEQUENCES), "--set", "model.rd_levels=(7,)"],
            "error: model config: model.rd_levels=(7,): expected a non-empty increasing subset",
        ),
        (["--root", str(SEQUENCES), "--config", "nope"], "unknown variant 'nope'"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    argv = ["--config", "smoke", "--out", str(tmp_path / "out"), *args]
    assert ablate_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "out" / "full").exists()  # nothing trained


def test_a_changed_setting_is_refused(tmp_path):
    ablate._claim(tmp_path / "full", {"steps_per_epoch": 2})
    ablate._claim(tmp_path / "full", {"steps_per_epoch": 2})  # the same: fine
    with pytest.raises(ablate.AblateError, match=r"full was run with another setting \(steps_per_epoch\)"):
        ablate._claim(tmp_path / "full", {"steps_per_epoch": 3})


def test_help_runs_as_a_module():
    p = subprocess.run(
        [sys.executable, "-m", "siamrn_jax.train.ablate", "--help"],
        cwd=ROOT,
        env=env(1),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0 and "--grid" in p.stdout and "table3" in p.stdout


@pytest.mark.slow  # two smoke trainings of 2 steps and their tracking: about 80 s on 2 CPU cores
def test_tiny_grid_end_to_end_and_rerun_skips(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ablate"
    argv = [
        "--config", "smoke", "--grid", "smoke", "--steps", "2", "--epochs", "1",
        "--set", "data.synthetic.num_videos=40", "--set", "train.checkpoint_every=2",
        "--benchmark", "folder", "--root", str(SEQUENCES), "--sequences", "Deer", "--out", str(out),
    ]  # fmt: skip
    assert ablate_main(argv) == 0
    lines = (out / "table.md").read_text().splitlines()
    assert lines[0].startswith("Ablation grid `smoke`, config `smoke` (2 steps x batch 1 per device)")
    rows = [line.split(" | ") for line in lines if line.startswith("| full") or line.startswith("| C4_")]
    assert [r[:5] for r in rows] == [
        ["| full", "C3+C4+C5", "C3+C4+C5", "global+local+patch", "contrastive 1:2:1"],
        ["| C4_local_one_way", "C4", "C4", "local", "one-way one-shot"],
    ]
    records = json.loads((out / "table.json").read_text())["variants"]
    assert [r["variant"] for r in records] == ["full", "C4_local_one_way"]
    assert all(0 <= r["success_auc"] <= 1 and r["sequences"] == 1 and r["frames"] == 71 for r in records)
    assert (out / "table.csv").read_text().splitlines()[0].startswith("variant,levels,RD levels,heads")
    model_json = json.loads((out / "C4_local_one_way" / "train" / "model" / "model.json").read_text())
    assert model_json["model"]["levels"] == [3] and model_json["model"]["rd_heads"] == ["local"]
    assert (out / "results" / "full" / "Deer.txt").is_file()

    # A rerun trains and tracks nothing: every variant has its scores.
    def no_training(*_a, **_k):
        raise AssertionError("a finished variant was trained again")

    monkeypatch.setattr("siamrn_jax.train.loop.train", no_training)
    monkeypatch.setattr(ablate, "evaluate", no_training)
    before = (out / "table.md").read_text()
    capsys.readouterr()
    assert ablate_main(argv) == 0
    assert (out / "table.md").read_text() == before
    err = capsys.readouterr().err  # the command's log goes to stderr (log_config)
    assert [line.split(":")[0] for line in err.splitlines() if line.endswith("skipped")] == [
        "full",
        "C4_local_one_way",
    ]


def test_pretrained_backbone_is_converted_into_each_variant(tmp_path):
    """--pretrained: pysot's backbone file into a C3-only variant; its unbuilt stages are ignored."""
    import jax
    import numpy as np

    from siamrn_jax import checkpoint
    from siamrn_jax.config import build_model
    from siamrn_jax.convert.convert import flax_to_torch
    from siamrn_jax.convert.torch_pickle import save_pth

    base = load_config("smoke")
    abstract = checkpoint.abstract_variables(build_model(base.model))
    rng = np.random.default_rng(0)
    full = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(a.dtype), abstract)
    sd = {k.removeprefix("backbone."): v for k, v in flax_to_torch(full).items() if k.startswith("backbone.")}
    save_pth(sd, tmp_path / "resnet50.model")
    cfg = ablate.variant_config(base, ablate.Variant("c3", {"model.levels": (2,)}))
    directory = ablate.pretrained_init(cfg, tmp_path / "resnet50.model", tmp_path / "init")
    model, variables, meta = checkpoint.load(directory, inference=False)
    assert tuple(model.levels) == (2,) and "layer3" not in variables["params"]["backbone"]
    assert [x.split(".")[0] for x in meta["source"]["ignored"]] == ["layer3", "layer4"]
    assert meta["source"]["fresh"] == ["head", "multi_det", "neck"]
    np.testing.assert_array_equal(
        variables["params"]["backbone"]["layer2"]["0"]["conv1"]["kernel"],
        full["params"]["backbone"]["layer2"]["0"]["conv1"]["kernel"],
    )
