"""Float64 comparisons with the official code run in float64, in their own process:
``python -m tests.official_x64 {inference|train} OUT.json`` (from the repository root).

Why a subprocess: 64-bit JAX is a process-wide switch (``JAX_ENABLE_X64``), and the default XLA flag
``--xla_cpu_experimental_ynn_fusion_type=dot`` (``siamrn_jax.xla_flags``) makes float64 convolutions ~100x
slower on CPU, while the test session runs with it; ``run`` starts this module with 64-bit JAX and
``XLA_FLAGS`` empty. The figures go to a JSON file that the calling test asserts on.

- ``inference``: every stage of ``fixtures/parity/expected_f64.npz`` (the official inference stages in
  float64), scaled error ``max |d| / max(1, |ref|)`` per stage, reference and fused relation-detector paths.
- ``train``: ``reference_step`` in float64 for phases a and b against
  ``fixtures/train_step/train_seed0_f64.npz``: losses, grad_norm, per-key gradients (scale-relative over
  every stored part), structurally-zero gradients relative to the global norm, BatchNorm running
  statistics, parameters after, updates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(what: str, out: Path, timeout: float = 1200) -> dict:
    """Runs this module for ``what`` in a 64-bit JAX process and returns its figures."""
    env = {**os.environ, "JAX_ENABLE_X64": "1", "XLA_FLAGS": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.official_x64", what, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"float64 run ({what}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(out.read_text())


def _scaled(ours, ref) -> float:
    import numpy as np

    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float((np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))).max())


def inference() -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from tests.conftest import PARITY
    from tests.train.official_step import paper_model

    model, variables = paper_model(x64=True)
    e32, e = np.load(PARITY / "expected.npz"), np.load(PARITY / "expected_f64.npz")
    z = jnp.asarray(e32["z"].transpose(0, 2, 3, 1), jnp.float64)
    x = jnp.asarray(e32["x"].transpose(0, 2, 3, 1), jnp.float64)
    box = jnp.asarray(e32["template_box"][None], jnp.float64)
    cls = type(model)
    apply = jax.jit(model.apply, static_argnames=("method",))
    t = apply(variables, z, box, method=cls.encode_template)
    search = apply(variables, x, method=cls.encode_search)
    track = apply(variables, t, x, method=cls.track_forward)
    cache = apply(variables, tuple(s[:, None] for s in t.support), method=cls.prepare_support)
    fast = jax.jit(lambda v: model.apply(v, t.kernel, t.support, x, cache, True, method=cls.track_frame))(
        variables
    )
    nchw = lambda a: np.asarray(a).transpose(0, 3, 1, 2)  # noqa: E731
    out = {"dtypes": sorted({str(a.dtype) for a in jax.tree.leaves((t, search, track, fast))})}
    for i, lvl in enumerate((2, 3, 4)):
        out[f"z_neck_crop_l{lvl}"] = _scaled(nchw(t.kernel[i]), e[f"z_neck_crop_l{lvl}"])
        out[f"z_neck_full_l{lvl}"] = _scaled(nchw(t.full[i]), e[f"z_neck_full_l{lvl}"])
        out[f"support_roi_l{lvl}"] = _scaled(nchw(t.support[i]), e[f"support_roi_l{lvl}"])
        out[f"x_neck_l{lvl}"] = _scaled(nchw(search[i]), e[f"x_neck_l{lvl}"])
    out["cls_first"] = _scaled(nchw(track.cls), e["cls_first"])
    out["loc_first"] = _scaled(nchw(track.loc), e["loc_first"])
    out["proposal_rois"] = _scaled(track.proposals[0], e["proposal_rois"])
    out["rd_logits"] = _scaled(track.rd_logits[0], e["rd_logits"])
    out["p_match"] = _scaled(track.p_match[0], e["p_match"])
    out["cls_refined"] = _scaled(nchw(track.cls_refined), e["cls_refined"])
    out["rd_logits (fused)"] = _scaled(fast.rd_logits[0], e["rd_logits"])
    out["cls_refined (fused)"] = _scaled(nchw(fast.cls_refined), e["cls_refined"])
    return out


def train() -> dict:
    from tests.train import official_step as osf

    fx = osf.load(x64=True)
    model, variables = osf.paper_model(x64=True)
    out = {}
    for p in osf.PHASES:
        got = osf.run_phase(model, variables, fx, p, x64=True)
        grads = osf.grads_f64(fx, p, got)
        out[p] = {
            "dtypes": sorted(
                {str(v.dtype) for v in got["grad"].values()} | {str(v.dtype) for v in got["after"].values()}
            ),
            "losses": osf.losses_rel(fx, p, got),
            "grad_keys": len(grads["per_key"]) + len(grads["zero"]),
            "grad": osf.worst(grads["per_key"]),
            "grad_zero": osf.worst(grads["zero"]),
            "bn_keys": len(osf.after_rel(fx, p, got, running=True)),
            "bn": osf.worst(osf.after_rel(fx, p, got, running=True)),
            "params": osf.worst(osf.after_rel(fx, p, got, running=False)),
            "update": osf.worst(osf.updates(fx, p, got, x64=True)),
        }
    return out


def main(argv: list[str]) -> int:
    what, path = argv
    import jax

    assert jax.config.jax_enable_x64, "run through tests.official_x64.run (JAX_ENABLE_X64=1)"
    figures = inference() if what == "inference" else train()
    Path(path).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
