"""Run ``train.py`` in subprocesses (the device count of a JAX process is fixed at start-up)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT
from tests.processes import device_env as env

__all__ = ["ROOT", "TINY", "env", "run_train", "train_cmd"]

# A tiny run of the smoke config: 4 steps per epoch, batch 1 per device, no worker processes.
TINY = {
    "train.steps_per_epoch": 4,
    "train.epochs": 1,
    "train.log_every": 1,
    "train.checkpoint_every": 2,
    "data.synthetic.num_videos": 40,
}


def train_cmd(workdir: Path, overrides: dict, extra: list[str] = ()) -> list[str]:
    args = [f"--config.{k}={v}" for k, v in {**TINY, **overrides}.items()]
    return [
        sys.executable,
        str(ROOT / "train.py"),
        f"--config={ROOT / 'configs/siamrn_r50.py'}:smoke",
        f"--workdir={workdir}",
        "--progress=false",
        *args,
        *extra,
    ]


def run_train(workdir: Path, overrides: dict, devices: int = 1, extra: list[str] = (), timeout: int = 600):
    """Run to completion; returns the CompletedProcess (asserting rc 0 with the output in the message)."""
    p = subprocess.run(
        train_cmd(workdir, overrides, extra),
        env=env(devices),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert p.returncode == 0, f"train.py failed (rc {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    return p
