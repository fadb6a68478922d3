"""``python -m siamrn_jax.tune``: two processes on one SQLite study, resume, best.json as a preset file,
and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import sqlalchemy

from siamrn_jax import api
from siamrn_jax.cli.tune import main
from siamrn_jax.tracking.params import PRESETS, TrackerParams, read_preset_file
from siamrn_jax.tune import study as st
from tests.conftest import SHARED

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A ``folder`` benchmark of two short real sequences (links to the shared frames, truncated ground
    truth), so that a trial takes a second."""
    root = tmp_path_factory.mktemp("bench")
    for name, n in (("Bolt", 8), ("Deer", 6)):
        src = SHARED / "data" / "sequences" / name
        (root / name / "img").mkdir(parents=True)
        for f in sorted((src / "img").iterdir())[:n]:
            (root / name / "img" / f.name).symlink_to(f)
        lines = (src / "groundtruth_rect.txt").read_text().splitlines()[:n]
        (root / name / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    return root


def _args(bench: Path, out: Path, storage: str, trials: int) -> list[str]:
    return ["--checkpoint", "demo_resnet", "--benchmark", "folder", "--root", str(bench),
            "--trials", str(trials), "--batch", "2", "--storage", storage, "--out", str(out),
            "-q"]  # fmt: skip


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(
        [sys.executable, "-m", "siamrn_jax.tune", *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.slow  # two processes tracking with the demo_resnet model, ~1 min on 2 cores
def test_two_processes_share_one_sqlite_study(bench, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    procs = [_spawn(_args(bench, tmp_path / f"p{i}" / "best.json", storage, 8)) for i in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="siamrn-tune", storage=storage)
    done = st.finished(study)
    # Each process stops once the study holds 8 finished trials; batches asked for at once may add one.
    assert 8 <= len(done) <= 10
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both processes worked on it
    preset = [t for t in done if t.user_attrs.get("preset")]
    assert preset and preset[0].params == pytest.approx(
        {
            k: getattr(PRESETS["demo_resnet"], k) for k in ("penalty_k", "window_influence", "lr")
        }  # the demo's own
    )
    best = max(t.value for t in done)
    model = api.load("demo_resnet", inference=False).model
    values = []
    for i in range(2):
        path = tmp_path / f"p{i}" / "best.json"
        rec = json.loads(path.read_text())
        values.append(rec["value"])
        assert rec["value"] >= rec["preset_value"]
        assert (tmp_path / f"p{i}" / "history.png").stat().st_size > 1000
        base, params = read_preset_file(path)  # the preset-file format track.py / eval run read
        tracker = TrackerParams.for_model(model, str(path))
        assert (
            base == "demo_resnet" and tracker.penalty_k == params["penalty_k"] == rec["params"]["penalty_k"]
        )
    # Each process writes the study's best as of its last batch: the one that finished last has the best.
    assert max(values) == pytest.approx(best) and min(values) <= best

    # Resume: the same study continues up to the new target, trial numbers carry on.
    p = _spawn(_args(bench, tmp_path / "p0" / "best.json", storage, len(done) + 2))
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    again = st.finished(optuna.load_study(study_name="siamrn-tune", storage=storage))
    assert len(again) == len(done) + 2
    assert sorted(t.number for t in again)[: len(done)] == sorted(t.number for t in done)


def test_a_trial_another_process_finished_first_is_not_told_again(tmp_path):
    """Two processes may pop the same enqueued trial from one SQLite study; the one that tells second
    keeps going (the first value stands) instead of dying with optuna's "Cannot tell a COMPLETE trial"."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = st.open_study(storage, "s", {"x": 1}, 0)
    preset = {"penalty_k": 0.1, "window_influence": 0.4, "lr": 0.3}
    st.enqueue_preset(study, preset)
    other = optuna.load_study(study_name="s", storage=storage)

    def evaluate(hypers):  # the other process finishes this batch's trials while we evaluate them
        for t in other.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            other.tell(t.number, 0.25)
        return [0.75] * len(hypers)

    assert st.run(study, st.search_space(preset), evaluate, target=2, batch=2) == 2
    done = st.finished(study)
    assert len(done) == 2 and [t.value for t in done] == [0.25, 0.25]


def test_study_of_another_setup_is_refused(bench, tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    st.open_study(storage, "siamrn-tune", {"sequences": ["Other"]}, 0)
    assert main(_args(bench, tmp_path / "best.json", storage, 2)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "another setup" in err and "\n" not in err
    assert not (tmp_path / "best.json").exists()


@pytest.mark.parametrize(
    "race",
    [
        sqlalchemy.exc.IntegrityError("INSERT INTO version_info", {}, Exception("UNIQUE constraint failed")),
        sqlalchemy.exc.OperationalError(
            "CREATE TABLE studies", {}, Exception("table studies already exists")
        ),
    ],
    ids=["row", "table"],
)
def test_schema_race_is_retried_and_other_storage_errors_are_not(tmp_path, monkeypatch, race):
    # Two processes starting on one new SQLite file race to create its schema; the loser sees one of
    # these two errors (both seen in CI runs of the two-process test) and must open what the winner made.
    real, calls, sleeps = optuna.create_study, [], []

    def flaky(*a, **k):
        calls.append(a)
        if len(calls) == 1:
            raise race
        return real(*a, **k)

    monkeypatch.setattr(optuna, "create_study", flaky)
    monkeypatch.setattr(st.time, "sleep", sleeps.append)
    study = st.open_study(f"sqlite:///{tmp_path / 'a.db'}", "s", {"x": 1}, 0)
    assert len(calls) == 2 and len(sleeps) == 1 and study.user_attrs["setup"] == {"x": 1}
    # An operational error that is not a race (here: the folder is missing) is one line, without retrying.
    with pytest.raises(st.StudyError, match="cannot open the study storage.*unable to open database file"):
        st.open_study(f"sqlite:///{tmp_path / 'missing' / 'b.db'}", "s", {"x": 1}, 0)
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (["--storage", "nosuchdb://x/y"], "cannot open the study storage"),
        (["--benchmark", "nosuch"], "unknown benchmark"),
        (["--checkpoint", "/nonexistent/ckpt"], "/nonexistent/ckpt"),
    ],
)
def test_bad_input_is_one_line(bench, tmp_path, capsys, change, message):
    args = _args(bench, tmp_path / "best.json", f"sqlite:///{tmp_path / 's.db'}", 2)
    flag, value = change
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_best_record_carries_the_preset_files_other_values(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    setup = {"base": "vot", "fixed": {"relation": False}, "objective": "AUC"}
    study = st.open_study(storage, "s", setup, 0)
    space = st.search_space({"penalty_k": 0.005, "window_influence": 0.5, "lr": 0.5})
    assert space["penalty_k"].low == 0.005 and space["lr"].low == 0.01  # widened only to hold the preset
    st.enqueue_preset(study, {"penalty_k": 0.005, "window_influence": 0.5, "lr": 0.5})
    values = [0.25, 0.5, 0.75, float("nan"), 0.1]
    ran = st.run(study, space, lambda h: [values.pop(0) for _ in h], 4, 2)
    assert ran == 5 and len(st.finished(study)) == 4  # the NaN trial is FAIL and does not count
    rec = st.write_outputs(study, tmp_path / "best.json", plots=False)
    assert rec["value"] == 0.75 and rec["preset_value"] == 0.25 and rec["trial"] == 2
    base, values = read_preset_file(tmp_path / "best.json")
    assert base == "vot" and values["relation"] is False
    assert np.isclose(values["lr"], study.trials[2].params["lr"])


@pytest.mark.slow  # two trials on the 196-frame bag sequence, then one eval run, ~40 s on 2 cores
def test_vot_objective_and_best_json_reproduce_with_eval_run(tmp_path, capsys):
    from siamrn_jax.cli.eval import main as eval_main
    from siamrn_jax.eval.registry import load_benchmark
    from siamrn_jax.eval.report import vot_row, vot_runs

    root = SHARED / "data" / "vot"
    out = tmp_path / "best.json"
    args = ["--benchmark", "vot2018", "--root", str(root), "--protocol", "vot", "--trials", "2",
            "--batch", "2", "--out", str(out), "--no-plots", "-q"]  # fmt: skip
    assert main(args) == 0
    assert (tmp_path / "study.db").is_file()  # the default storage: beside --out
    rec = json.loads(out.read_text())
    assert rec["objective"] == "EAO (VOT2018)" and rec["trials"] == 2
    assert rec["value"] >= rec["preset_value"] > 0
    # The single-sequence tracker with best.json scores what the batched trial scored.
    assert eval_main(["run", "--checkpoint", str(api.DEMO), "--benchmark", "vot2018", "--root", str(root),
                      "--results", str(tmp_path / "r"), "--name", "tuned", "--protocol", "vot", "--preset",
                      str(out), "-q"]) == 0  # fmt: skip
    seqs = load_benchmark("vot2018", root)
    row, _ = vot_row("tuned", vot_runs(tmp_path / "r", "tuned", seqs), "VOT2018")
    assert float(row["EAO (VOT2018)"]) == pytest.approx(rec["value"], abs=5e-4)  # the table's 3 decimals


def test_eao_needs_long_enough_sequences(bench, tmp_path, capsys):
    args = _args(bench, tmp_path / "best.json", f"sqlite:///{tmp_path / 's.db'}", 2) + ["--protocol", "vot"]
    assert main(args) == 2
    assert "needs sequences of at least 100 frames" in capsys.readouterr().err
