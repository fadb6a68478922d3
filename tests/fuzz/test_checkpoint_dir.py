"""Every file of an orbax checkpoint directory (the embedded demo), truncated, emptied, replaced by random
bytes, bit-flipped, deleted or made a directory: ``checkpoint.load`` returns the model or raises our
``CheckpointError`` / an ``OSError`` naming the checkpoint. Cases run in worker processes
(``checkpoint_worker``); the bounded test takes every file once (rotating through the modes), the ``fuzz``
one every file in every mode plus random cuts and flips."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.checkpoint_worker import DEMO

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(str(p.relative_to(DEMO)) for p in DEMO.rglob("*") if p.is_file())
MODES = ("cut", "empty", "random", "flip", "delete", "dir")


def _run(tmp_path: Path, cases: list) -> list[dict]:
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps(cases))
    r = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.checkpoint_worker", str(spec)],
        capture_output=True,
        text=True,
        timeout=60 + 5 * len(cases),
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(results) == len(cases), r.stderr[-3000:]
    return results


def _check(cases: list, results: list[dict]) -> None:
    bugs = [(cases[r["case"]], r["message"]) for r in results if r["outcome"] == "bug"]
    assert not bugs, bugs
    unnamed = [
        (cases[r["case"]], r["message"]) for r in results if r["outcome"] == "error" and not r["names"]
    ]
    assert not unnamed, unnamed


def _size(rel: str) -> int:
    return (DEMO / rel).stat().st_size


def test_every_file_damaged_once(tmp_path):
    cases = [[rel, MODES[i % len(MODES)], _size(rel) // 2] for i, rel in enumerate(FILES)]
    results = _run(tmp_path, cases)
    _check(cases, results)
    # The weights and their metadata are what the load reads: damaging them is an error, never "ok".
    for case, r in zip(cases, results, strict=True):
        if case[0] in ("model.json", "variables/_METADATA"):
            assert r["outcome"] == "error", (case, r)


@pytest.mark.fuzz
def test_every_file_every_way(tmp_path):
    rng = random.Random()
    cases = [[rel, mode, _size(rel) // 2] for rel in FILES for mode in MODES]
    cases += [[rng.choice(FILES), rng.choice(["cut", "flip"]), rng.randrange(1 << 30)] for _ in range(60)]
    cases = [[rel, mode, arg % (_size(rel) + 1) if mode == "cut" else arg] for rel, mode, arg in cases]
    _check(cases, _run(tmp_path, cases))
