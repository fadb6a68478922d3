"""``eval run`` across devices (a lockstep batch sharded over a 1-D ``data`` mesh) and processes
(``jax.distributed``, each process tracking its share of the sequences into one results folder).

The demo model on 5 short synthetic scenes (4-8 frames, 320x240). A JAX process's device count is fixed at
start-up, so the runs on 4 fake CPU devices and the 2-process runs are subprocesses
(``tests/processes.py``); the 1-device reference runs in this process with ``--devices 1``.

Tolerances: the 2-process results (1 device each, the same XLA:CPU set-up as the reference) are
byte-identical to the reference. On 4 fake devices the sharded run is byte-identical to an unsharded
(``--devices 1``) run in the same 4-device process, but both differ from a 1-device process by float32
rounding (measured <= 1.6e-5 px over 8 frames: XLA:CPU started with 4 host devices evaluates the same
program with a different rounding, not the sharding), so that comparison allows 1e-3 px, as
``tests/tracking/test_tracker.py::test_batched_equals_single`` does for the differences that feed back
into the next frame's crop.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from siamrn_jax.cli.eval import main
from siamrn_jax.data.synthetic import SyntheticConfig
from siamrn_jax.eval.runner import process_share
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.io.results import read_boxes
from siamrn_jax.tracking.demo import write_scene
from tests.processes import ROOT, run_group
from tests.processes import device_env as env

LENGTHS = (8, 5, 7, 4, 6)
NAMES = tuple(f"s{i}" for i in range(len(LENGTHS)))
DEMO = str(ROOT / "siamrn_jax" / "assets" / "demo_resnet")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    for i, n in enumerate(LENGTHS):
        write_scene(root / NAMES[i], SyntheticConfig(num_videos=1, frames=n, seed=10_000 + i))
    return root


def run_args(scenes: Path, results: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--checkpoint",
        DEMO,
        "--benchmark",
        "folder",
        "--root",
        str(scenes),
        "--results",
        str(results),
        "--name",
        "D",
        # demo_resnet's default preset before issue 27 (its own is now "demo_resnet"): the box bounds below
        # (bf16 vs fp32) were set with it.
        "--preset",
        "otb",
        *extra,
    ]


@pytest.fixture(scope="module")
def reference(scenes, tmp_path_factory) -> Path:
    """One process, one device: the results every other layout must reproduce."""
    results = tmp_path_factory.mktemp("reference")
    assert main(run_args(scenes, results, "--devices", "1")) == 0
    return results / "D"


def _boxes(folder: Path) -> dict[str, np.ndarray]:
    return {n: read_boxes(folder / f"{n}.txt") for n in NAMES}


def _texts(folder: Path) -> dict[str, str]:
    return {n: (folder / f"{n}.txt").read_text() for n in NAMES}


def _python(code: str, devices: int, timeout: int = 120) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [sys.executable, "-c", code],
        env=env(devices),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, f"rc {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    return p


def _sharding_probe() -> dict:
    """In a 4-device process: the jitted init / step of a 4-device mesh run sharded (compiled HLO without
    collectives, outputs split over the 4 devices)."""
    import jax

    from siamrn_jax import checkpoint, sharding
    from siamrn_jax.tracking import runner
    from siamrn_jax.tracking.params import TrackerParams

    model, variables, _ = checkpoint.load(DEMO)
    params = TrackerParams.for_model(model, "otb")
    mesh = sharding.local_data_mesh()
    rep, data = sharding.shardings(mesh)
    init, step = runner.compiled(model, params, mesh)
    frames = [np.full((64, 64, 3), 100 + 20 * i, np.uint8) for i in range(4)]
    geo = [runner.template_geometry(f, np.array([16.0, 16, 32, 32]), params) for f in frames]
    v = jax.device_put(variables, rep)
    args = [jax.device_put(x, data) for x in runner.init_args(frames, geo, params)]
    state = init(v, *args)
    crops = jax.device_put(np.zeros((4, 255, 255, 3), np.uint8), data)
    hlo = init.lower(v, *args).compile().as_text() + step.lower(v, state, crops).compile().as_text()
    _, out = step(v, state, crops)
    collectives = ("all-reduce", "all-gather", "all-to-all", "collective-permute", "reduce-scatter")
    return {
        "devices": mesh.size,
        "state_spec": list(state.center.sharding.spec),
        "box_spec": list(out.box.sharding.spec),
        "box_devices": len(out.box.sharding.device_set),
        "box_shard_rows": sorted({s.data.shape[0] for s in out.box.addressable_shards}),
        "collectives": [c for c in collectives if c in hlo],
    }


@pytest.mark.multidevice
def test_four_devices_match_one_device(scenes, reference, tmp_path):
    """4 fake devices, default flags: batches of 4 sharded one sequence per device (the 5th sequence padded
    with 3 blanks, whose results are dropped); same result files as ``--devices 1`` in that process, and as
    the 1-device process to float32 rounding; init / step compiled sharded, with no collective."""
    code = f"""
import json
from siamrn_jax.cli.eval import main
from tests.eval.test_sharded_eval import _sharding_probe, run_args
from pathlib import Path
scenes, out = Path({str(scenes)!r}), Path({str(tmp_path)!r})
codes = [main(run_args(scenes, out / "d4")), main(run_args(scenes, out / "d1", "--devices", "1")),
         main(run_args(scenes, out / "bad", "--batch", "6"))]
print("PROBE", json.dumps({{"codes": codes, **_sharding_probe()}}))
"""
    p = _python(code, devices=4)
    probe = json.loads(p.stdout.split("PROBE", 1)[1])
    assert probe["codes"] == [0, 0, 2]
    assert "error: --batch 6 does not split over 4 device(s)" in p.stderr
    # Default: all 4 devices, one sequence each; 5 sequences -> a group of 4 and one padded with 3 blanks.
    assert p.stderr.count("in lockstep batches of 4 over 4 device(s)") == 1
    assert probe["devices"] == 4 and probe["collectives"] == []
    assert probe["state_spec"] == probe["box_spec"] == ["data"]
    assert probe["box_devices"] == 4 and probe["box_shard_rows"] == [1]
    sharded, unsharded = _texts(tmp_path / "d4" / "D"), _texts(tmp_path / "d1" / "D")
    assert sharded == unsharded  # sharding itself changes nothing
    assert sorted(p.name for p in (tmp_path / "d4" / "D").iterdir()) == sorted(
        p.name for p in reference.iterdir()
    )
    ref = _boxes(reference)
    for name, boxes in _boxes(tmp_path / "d4" / "D").items():
        assert boxes.shape == (LENGTHS[NAMES.index(name)], 4)
        np.testing.assert_allclose(boxes, ref[name], atol=1e-3, rtol=0, err_msg=name)


def _two_processes(scenes: Path, results: Path, extra: tuple[list[str], list[str]] = ([], [])) -> list:
    """``eval run`` as 2 processes x 1 device on localhost; returns [(rc, stdout, stderr)] by process."""
    cmd = [sys.executable, "-m", "siamrn_jax.eval", *run_args(scenes, results)]
    return run_group([[*cmd, *extra[0]], [*cmd, *extra[1]]], timeout=120)


def test_two_processes_match_one_process(scenes, reference, tmp_path):
    runs = _two_processes(scenes, tmp_path)
    for rc, out, err in runs:
        assert rc == 0, f"{out[-2000:]}\n{err[-4000:]}"
    folder = tmp_path / "D"
    assert _texts(folder) == _texts(reference)  # same XLA set-up as the reference: byte-identical
    # provenance.json written once (by process 0), the same record as a single process writes.
    assert (folder / "provenance.json").read_text() == (reference / "provenance.json").read_text()
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in reference.iterdir())
    # Each process tracked its share (balanced by frames), and only process 0 reports, once all are done.
    seqs = [Sequence(n, [Path("x")] * k, np.zeros((k, 4))) for n, k in zip(NAMES, LENGTHS, strict=True)]
    for i, (_, _, err) in enumerate(runs):
        mine = {s.name for s in process_share(seqs, i, 2)}
        assert {n for n in NAMES if f"{n}: {LENGTHS[NAMES.index(n)]} frames" in err} == mine
    assert "all 2 processes done; 5 sequence(s) tracked (per process: 3, 2), 0 had results" in runs[0][1]
    assert "processes done" not in runs[1][1]


@pytest.mark.multidevice
def test_two_processes_resume(scenes, reference, tmp_path):
    """A folder with 2 results missing (an interrupted run): the 2 processes track just those; then a
    second run skips everything and changes no result file."""
    import shutil

    folder = tmp_path / "D"
    shutil.copytree(reference, folder)
    for n in ("s0", "s4"):  # one in each process's share
        (folder / f"{n}.txt").unlink()
    runs = _two_processes(scenes, tmp_path)
    assert [r[0] for r in runs] == [0, 0], runs
    assert _texts(folder) == _texts(reference)
    assert "2 sequence(s) tracked (per process: 1, 1), 3 had results" in runs[0][1]
    # Result files untouched (provenance.json is rewritten, with the same record, by every claim).
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != "provenance.json"}
    runs = _two_processes(scenes, tmp_path)
    assert [r[0] for r in runs] == [0, 0], runs
    assert "0 sequence(s) tracked (per process: 0, 0), 5 had results" in runs[0][1]
    assert sum(err.count("result exists, skipped") for _, _, err in runs) == 5
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name != "provenance.json"} == stamps


@pytest.mark.multidevice
def test_a_process_started_for_another_run_stops_both(scenes, tmp_path):
    """Process 1 with other tracker parameters: it fails process 0's provenance check before tracking,
    and both processes end with exit 2; process 0's line names process 1."""
    (rc0, _, err0), (rc1, _, err1) = _two_processes(scenes, tmp_path, ([], ["--preset", "vot"]))
    assert (rc0, rc1) == (2, 2)
    assert "different tracker_params" in err1.strip().splitlines()[-1]
    assert err0.strip().splitlines()[-1].startswith("error: process 1 failed: ")
    assert sorted(p.name for p in (tmp_path / "D").iterdir()) == ["provenance.json"]


def test_process_share_is_a_balanced_partition():
    seqs = [Sequence(f"q{i}", [Path("x")] * k, np.zeros((k, 4))) for i, k in enumerate([9, 1, 5, 5, 3, 7, 2])]
    shares = [process_share(seqs, i, 3) for i in range(3)]
    names = [s.name for share in shares for s in share]
    assert sorted(names) == sorted(s.name for s in seqs)  # each sequence exactly once
    loads = [sum(len(s) for s in share) for share in shares]
    assert loads == [11, 11, 10]  # longest first to the least loaded: q0+q6 | q5+q4+q1 | q2+q3
    assert all(share == [s for s in seqs if s in share] for share in shares)  # benchmark order
    assert process_share(seqs, 0, 1) == seqs
    with pytest.raises(ValueError, match="process index 3"):
        process_share(seqs, 3, 3)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--devices", "5"], "error: --devices 5: this process has 1 device(s)"),
        (["--protocol", "vot", "--devices", "2"], "error: --devices 2: the VOT protocol tracks one sequence"),
        (["--batch", "3", "--devices", "2"], "error: --batch 3 does not split over 2 device(s)"),
        (["--num_processes", "2"], "error: --num_processes / --process_id need --coordinator_address"),
        (["--coordinator_address", "127.0.0.1:1"], "error: --coordinator_address needs --num_processes"),
        (
            ["--coordinator-address", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"],
            "error: --process_id 2 is not in 0 .. 1",
        ),
    ],
)
def test_bad_device_and_process_flags_are_one_line_errors(extra, message, scenes, tmp_path, capsys):
    assert main(run_args(scenes, tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err
    assert not (tmp_path / "D").exists()  # refused before the folder was claimed


def test_vot_protocol_one_device(scenes, tmp_path):
    """The VOT path through the same stages: one device, a result file, then a resume that skips it."""
    from siamrn_jax.eval.vot import parse_vot_results

    args = run_args(scenes, tmp_path, "--protocol", "vot", "--sequences", "s3")
    assert main(args) == 0
    path = tmp_path / "D" / "baseline" / "s3" / "s3_001.txt"
    assert len(parse_vot_results(path.read_text())) == LENGTHS[3]
    stamp = path.stat().st_mtime_ns
    assert main(args) == 0 and path.stat().st_mtime_ns == stamp


def test_bf16_run_is_its_own_run(scenes, reference, tmp_path, capsys):
    """``eval run --dtype bfloat16``: provenance records the dtype, so it cannot resume an fp32 folder;
    its boxes stay near the fp32 ones on these easy scenes."""
    import shutil

    results = tmp_path / "r"
    shutil.copytree(reference, results / "D")
    assert main(run_args(scenes, results, "--devices", "1", "--dtype", "bfloat16")) == 2
    assert "results of another run (different weights)" in capsys.readouterr().err
    assert main(run_args(scenes, results, "--devices", "1", "--dtype", "bfloat16", "--overwrite")) == 0
    record = json.loads((results / "D" / "provenance.json").read_text())
    assert record["weights"]["dtype"] == "bfloat16"
    ref, got = _boxes(reference), _boxes(results / "D")
    for n in NAMES:  # bf16 rounding moves boxes by pixels, not by targets (320x240 scenes)
        assert np.abs(got[n] - ref[n]).max() < 8, n
