"""Run ``train.py`` in subprocesses (the device count of a JAX process is fixed at start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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


def env(devices: int) -> dict[str, str]:
    e = dict(os.environ)
    flags = [f for f in e.get("XLA_FLAGS", "").split() if "device_count" not in f]
    e["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
    return e


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
