"""Whole commands on fuzzed inputs (few examples: each runs a command): the output is a result, or exit
status 2 with one ``error: FILE: problem`` line last, no traceback, every other stderr line an INFO line
or a ``warning:``, and no output left under its final name by a failed run."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from siamrn_jax import log_config
from siamrn_jax.cli.convert import main as convert_main
from siamrn_jax.cli.eval import main as eval_main
from siamrn_jax.convert.torch_pickle import save_pth
from siamrn_jax.io import sources
from tests.fuzz.fuzzing import FEW, SOME, Mutation, mutations, scratch, text_mutations, twin, within
from tests.tracking.test_cli import otb_sequence

BOXES = "".join(f"{10 + i},{12 + i},20,24\n" for i in range(4))


def _stderr_ok(err: str, code: int, names: list[str]) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert code in (0, 2), (code, err)
    errors = [line for line in lines if line.startswith("error: ")]
    if code == 2:
        assert errors == [lines[-1]] and any(n in lines[-1] for n in names), lines
    else:
        assert not errors, lines
    assert not [
        line
        for line in lines
        if line.lower().startswith(("warning", "warn:")) and not line.startswith("warning: ")
    ]


def _run(main, argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), within():
        code = main(argv)
    return code, err.getvalue()


def check_eval_report(m: Mutation) -> None:
    with scratch() as d:
        otb_sequence(d / "seqs" / "A", 4, seed=1)
        (d / "res" / "ours").mkdir(parents=True)
        result = d / "res" / "ours" / "A.txt"
        result.write_bytes(m(BOXES.encode()))
        out = d / "report"
        argv = ["report", "--benchmark", "folder", "--root", str(d / "seqs"), "--results", str(d / "res")]
        code, err = _run(eval_main, [*argv, "--trackers", "ours", "--out", str(out)])
        _stderr_ok(err, code, [str(result)])
        if code == 2:
            assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


test_eval_report, test_eval_report_long = twin(text_mutations(BOXES), bounded=FEW, long=SOME)(
    check_eval_report
)


def check_convert(m: Mutation) -> None:
    with scratch() as d:
        src, out = d / "model.pth", d / "ckpt"
        src.write_bytes(m(PTH))
        code, err = _run(convert_main, ["--config", "smoke", str(src), str(out)])
        _stderr_ok(err, code, [str(src)])
        if code == 2:
            assert not out.exists() and not [p for p in d.iterdir() if p.name.startswith(".")], list(
                d.iterdir()
            )


def _pth_seed() -> bytes:
    with scratch() as d:
        save_pth({"backbone.conv1.weight": np.zeros((8, 3, 7, 7), np.float32)}, d / "m.pth")
        return (d / "m.pth").read_bytes()


PTH = _pth_seed()
test_convert, test_convert_long = twin(mutations(len(PTH)), bounded=FEW, long=SOME)(check_convert)


def test_truncated_video_warning_is_labelled(tmp_path, capsys):
    """The known case of issue 29: the truncated-video warning line carried no ``warning:`` label."""
    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(12):
        w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    log_config.configure(argparse.Namespace())
    try:
        frames = list(sources.open_input(path))
    finally:
        logging.getLogger().handlers.clear()
    lines = capsys.readouterr().err.strip().splitlines()
    assert 0 < len(frames) < 12
    assert lines == [line for line in lines if line.startswith(f"warning: {path}: video ended after ")], lines
    assert len(lines) == 1


def _vot_root(t: Path, bad: str) -> Path:
    root = t / "vot"
    (root / "ball" / "color").mkdir(parents=True)
    (root / "ball" / "color" / "00000001.jpg").write_bytes(b"")
    (root / "list.txt").write_text("ball\n")
    (root / "ball" / "groundtruth.txt").write_text("1,2,3,4\n")
    (root / bad).write_bytes(b"\xff\xfe")
    return root


def _otb_json(t: Path) -> Path:
    (t / "otb").mkdir()
    (t / "otb" / "OTB100.json").write_text(json.dumps({"A": {"img_names": "x", "gt_rect": []}}))
    return t / "otb"


# (id, argv builder (tmp) -> (main, argv), fragment of the error line): bad inputs of each fixed reader,
# through its command, with the file named in the one error line.
SWEEP = [
    (
        "eval-report-vot-list-not-utf8",
        lambda t: (eval_main, ["report", "--benchmark", "vot2018", "--root", str(_vot_root(t, "list.txt")),
                               "--results", str(t / "res"), "--trackers", "ours", "--protocol", "vot"]),
        "list.txt: not UTF-8 text",
    ),
    (
        "eval-report-otb-json-structure",
        lambda t: (eval_main, ["report", "--benchmark", "otb100", "--root", str(_otb_json(t)),
                               "--results", str(t / "res"), "--trackers", "ours"]),
        "OTB100.json: A: img_names",
    ),
]  # fmt: skip


@pytest.mark.parametrize("build, fragment", [c[1:] for c in SWEEP], ids=[c[0] for c in SWEEP])
def test_fixed_readers_through_their_commands(tmp_path, build, fragment):
    main, argv = build(tmp_path)
    code, err = _run(main, argv)
    lines = err.strip().splitlines()
    assert code == 2 and lines and fragment in lines[-1] and lines[-1].startswith("error: "), lines
    assert "Traceback" not in err
