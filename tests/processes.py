"""Child processes for tests: fake-device environments and jax.distributed groups on localhost.

The device count of a JAX process is fixed at start-up, so runs on several fake CPU devices, and runs of
several cooperating processes, are subprocesses.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def device_env(devices: int) -> dict[str, str]:
    """This environment with ``devices`` fake CPU devices (any device count already set replaced)."""
    e = dict(os.environ)
    flags = [f for f in e.get("XLA_FLAGS", "").split() if "device_count" not in f]
    e["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"])
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_group(commands: Sequence[Sequence[str]], timeout: int) -> list[tuple[int, str, str]]:
    """Start ``commands`` as one jax.distributed group on localhost (process i gets the coordinator
    flags for id i of len(commands), one fake device each), wait for all; returns [(rc, stdout, stderr)].
    A process still running after ``timeout`` seconds is killed (a hung collective must not hang CI)."""
    port = free_port()
    n = len(commands)
    procs = [
        subprocess.Popen(
            [*cmd, f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={n}", f"--process_id={i}"],
            env=device_env(1),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, cmd in enumerate(commands)
    ]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.returncode, o, e) for p, (o, e) in zip(procs, outs, strict=True)]
