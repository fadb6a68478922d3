"""``python -m siamrn_jax.bench suite``: a tiny version of the one-shot accelerator suite on this CPU."""

from __future__ import annotations

import json

import pytest

from siamrn_jax.cli.bench import main as bench_main

TINY = ["--quick", "--dtypes", "float32", "--sizes", "1,2", "--train-batches", "1", "--phases", "0"]
TINY += ["--train-steps", "1", "--runs", "1", "--workers", "0"]


@pytest.mark.slow
def test_tiny_suite_writes_every_figure(tmp_path, capsys):
    assert bench_main(["suite", *TINY, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "suite.json").read_text())
    md = (tmp_path / "suite.md").read_text()
    assert capsys.readouterr().out.strip() == md.strip()
    benches = [r["bench"] for r in result["tracking"]]
    assert benches[:3] == ["B8 template init", "B2 end to end (Crossing)", "B1 network-only step"]
    assert [r["S"] for r in result["tracking"] if r["bench"].startswith("B3")] == [2]
    for r in result["tracking"][2:]:
        assert r["ms"] > 0 and r["compile_s"] > 0 and r["gflop_per_frame"] > 0 and r["total_mb"] > 0
        assert r["mfu"] is None  # no known peak for a CPU
    train = {r["bench"]: r for r in result["training"]}
    assert set(train) == {"B4 train step", "B5 train step + data"}
    for r in train.values():
        assert r["pairs_s"] > 0 and r["gflop_per_pair"] > 0 and 0 <= r["data_wait_frac"] <= 1
    assert "| B1 network-only step | float32 | 1 |" in md and "n/a" in md


def test_budget_marks_what_it_skipped(tmp_path):
    args = ["suite", *TINY, "--sizes", "1", "--out", str(tmp_path), "--budget-s", "0"]
    assert bench_main(args) == 0
    result = json.loads((tmp_path / "suite.json").read_text())
    skipped = [r for r in result["tracking"] + result["training"] if "skipped" in r]
    assert [r["bench"] for r in skipped] == ["B1/B3 network-only step", "B4 train step"]
    assert "skipped: time budget" in (tmp_path / "suite.md").read_text()


def test_bad_suite_flags_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        bench_main(["suite", "--phases", "3"])
    assert e.value.code == 2 and "phases are 0, 1, 2" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.heavy  # ~2.5 min on 2 cores: 6 train/track compiles for their memory analysis
def test_memory_tables_on_the_smoke_model(capsys):
    from siamrn_jax.cli.bench_memory import main as memory_main

    # One tracking size (each size is two more compiles); the train table is the full 2 dtypes x 2 remat.
    assert memory_main(["--config", "smoke", "--batch", "2", "--sizes", "1"]) == 0
    out = capsys.readouterr().out
    track, train = out.strip().split("\n\n")
    assert len(track.splitlines()) == 2 + 2 and len(train.splitlines()) == 2 + 4
    rows = [line.split(" | ") for line in train.splitlines()[2:]]
    assert [(r[0].strip("| "), r[1]) for r in rows] == [
        ("float32", "off"),
        ("float32", "on"),
        ("bfloat16", "off"),
        ("bfloat16", "on"),
    ]
    saved = {(r[0].strip("| "), r[1]): float(r[-1].strip(" |")) for r in rows}
    assert saved["float32", "on"] < saved["float32", "off"]  # remat keeps fewer activations
    assert saved["bfloat16", "off"] < saved["float32", "off"]  # and so does bf16
