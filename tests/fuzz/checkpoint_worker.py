"""Loads damaged copies of the demo checkpoint in a process of its own and prints one JSON line per case.

orbax's failed asynchronous reads leave asyncio callbacks behind in the process that read them (they
report "Event loop is closed" as it shuts down), so the fuzz tests of checkpoint directories run their
cases here, many per process, and judge the printed outcomes.

Usage: ``python -m tests.fuzz.checkpoint_worker CASES.json`` where each case is ``[relative file, mode,
argument]``: mode "cut" (keep ``argument`` bytes), "empty", "random" (``argument`` random bytes, seeded by
the case index), "flip" (XOR byte ``argument % size`` with 0xFF), "delete" or "dir" (a folder in its
place). Each output line: ``{"case": i, "outcome": "ok" | "error" | "bug", "message": ...}``.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

from siamrn_jax import checkpoint
from siamrn_jax.errors import SiamrnError, one_line

DEMO = Path(__file__).resolve().parents[2] / "siamrn_jax" / "assets" / "demo_resnet"


def damage(path: Path, mode: str, arg: int, seed: int) -> None:
    if mode == "delete" or mode == "dir":
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        if mode == "dir":
            path.mkdir()
        return
    data = path.read_bytes()
    if mode == "cut":
        data = data[:arg]
    elif mode == "empty":
        data = b""
    elif mode == "random":
        data = random.Random(seed).randbytes(arg)
    elif mode == "flip" and data:
        i = arg % len(data)
        data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
    path.write_bytes(data)


def run(cases: list) -> None:
    for i, (rel, mode, arg) in enumerate(cases):
        with tempfile.TemporaryDirectory(prefix="siamrn-fuzz-ckpt-") as tmp:
            d = Path(tmp) / "ckpt"
            shutil.copytree(DEMO, d)
            damage(d / rel, mode, arg, i)
            try:
                checkpoint.load(d, inference=False)
                out = {"outcome": "ok", "message": ""}
            except (SiamrnError, OSError) as e:
                out = {"outcome": "error", "message": one_line(e), "names": str(d) in one_line(e)}
            except Exception as e:  # noqa: BLE001 (the worker reports the bug for the test to fail on)
                out = {"outcome": "bug", "message": f"{type(e).__name__}: {e}"}
        print(json.dumps({"case": i, **out}), flush=True)


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()))
