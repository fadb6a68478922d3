"""Export the weights of a training checkpoint as a tracker checkpoint.

``python -m siamrn_jax.train.export WORKDIR OUT [--step N]``: the params and BatchNorm statistics of
``WORKDIR/checkpoints/<N>`` (default: the latest) written to ``OUT`` in the format ``track.py
--checkpoint`` and ``python -m siamrn_jax.eval`` read. Restores as host NumPy arrays from the checkpoint's
own metadata, so it needs neither the devices nor the optimiser of the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from siamrn_jax import checkpoint as model_ckpt
from siamrn_jax.config import build_model


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


if __name__ == "__main__":  # the command lives in siamrn_jax.cli
    import sys

    from siamrn_jax.cli.train_export import main

    sys.exit(main())
