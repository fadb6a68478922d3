"""Export the weights of a training checkpoint as a tracker checkpoint.

``python -m siamrn_jax.train.export WORKDIR OUT [--step N]``: the params and BatchNorm statistics of
``WORKDIR/checkpoints/<N>`` (default: the latest) written to ``OUT`` in the format ``track.py
--checkpoint`` and ``python -m siamrn_jax.eval`` read. Restores as host NumPy arrays from the checkpoint's
own metadata, so it needs neither the devices nor the optimiser of the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from siamrn_jax import checkpoint as model_ckpt
from siamrn_jax.cli_args import positive_int
from siamrn_jax.config import build_model
from siamrn_jax.errors import SiamrnError, one_line


def export(workdir: str | Path, out: str | Path, step: int | None = None, overwrite: bool = False) -> Path:
    """Writes ``OUT``; returns it. Raises ``CheckpointError`` for a missing run, step or config."""
    workdir = Path(workdir)
    cfg_path = workdir / "config.json"
    if not cfg_path.is_file():
        raise model_ckpt.CheckpointError(f"{workdir}: not a training workdir (no config.json)")
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit())
    if not steps:
        raise model_ckpt.CheckpointError(f"{workdir}/checkpoints: no checkpoint")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise model_ckpt.CheckpointError(f"{workdir}/checkpoints: no step {step} (have {steps})")
    path = (workdir / "checkpoints" / str(step) / "state").absolute()
    ckptr = ocp.PyTreeCheckpointer()
    meta = ckptr.metadata(path).item_metadata.tree
    wanted = {k: meta[k] for k in ("params", "batch_stats")}
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
    state = ckptr.restore(
        path, args=ocp.args.PyTreeRestore(item=wanted, restore_args=args, partial_restore=True)
    )
    model = build_model(json.loads(cfg_path.read_text())["model"])
    variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
    return model_ckpt.save(
        out, model, variables, source={"train": str(workdir), "step": step}, overwrite=overwrite
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m siamrn_jax.train.export", description=__doc__.splitlines()[0])
    p.add_argument("workdir")
    p.add_argument("out")
    p.add_argument("--step", type=positive_int, help="checkpoint step (default: the latest)")
    p.add_argument("--force", action="store_true", help="overwrite OUT")
    a = p.parse_args(argv)
    try:
        out = export(a.workdir, a.out, a.step, a.force)
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
