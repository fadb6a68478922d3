"""The official training step (``../shared/fixtures/train_step``) fed to ``train.step.reference_step``, and
the comparisons the fixture's README prescribes. Used by ``test_official_step.py`` (float32, in process) and
by ``tests/official_x64.py`` (float64, in a subprocess with 64-bit JAX).

Official keys and layouts throughout: our trees go through ``convert.flax_to_torch``; tensors over 65536
elements are compared through the fixture's sketches (``fixture_io.sketch``: 1024 sampled values plus
per-output-channel sums, sums of squares and per-input-channel sums, so every element counts).
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import numpy as np

from siamrn_jax.checkpoint import abstract_variables
from siamrn_jax.config import build_model, load_config
from siamrn_jax.convert.convert import flax_to_torch, torch_to_flax
from siamrn_jax.train.step import reference_step
from tests.conftest import SHARED, parity_state_dict

TRAIN_STEP = SHARED / "fixtures" / "train_step"
sys.path.insert(0, str(SHARED / "tools" / "official_train"))
import fixture_io  # noqa: E402  (NumPy-only reader shipped with the fixture)

# Gradients that are zero in exact arithmetic (README "Reading the table"): a bias feeding a train-mode BN,
# a bias shifting softmax(.) g by a constant that BN removes, a bias shifting each softmax row.
STRUCTURAL_ZERO = tuple(
    f"multi_det.non_local{lvl}.{name}.0.bias" for lvl in (2, 3, 4) for name in ("W", "g", "phi")
)
PHASES = ("a", "b")


def load(x64: bool) -> dict:
    return fixture_io.load(TRAIN_STEP / ("train_seed0_f64.npz" if x64 else "train_seed0.npz"))


def paper_model(x64: bool):
    """The full paper model (``vot`` config) with the fixture's seed-0 official weights, as float64 model
    and variables under x64."""
    model = build_model(load_config("vot").model, dtype="float64" if x64 else None)
    variables, _ = torch_to_flax(parity_state_dict(0), abstract_variables(model))
    if x64:
        variables = jax.tree.map(lambda a: np.asarray(a, np.float64), variables)
    return model, variables


def run_phase(model, variables, fx: dict, phase: str, x64: bool) -> dict[str, Any]:
    """``reference_step`` on the fixture's batch with its recorded proposals; results by official key."""
    e = fixture_io.expected(fx, phase)
    batch = fixture_io.jax_batch(fx, phase, x64=x64)
    batch["pos_proposals"], batch["neg_proposals"] = batch["pos_gauss"], batch["neg_uniform"]
    out = jax.device_get(reference_step(model, variables, batch, epoch=int(e["epoch"]), lr=float(e["lr"][1])))
    return {
        "losses": {k: float(v) for k, v in out["losses"].items()},
        "grad_norm": float(out["metrics"]["grad_norm"]),
        "grad": flax_to_torch({"params": out["grads"]}, with_bn_counters=False),
        "after": flax_to_torch({"params": out["params"], "batch_stats": out["batch_stats"]}, False),
        "before": flax_to_torch({"params": variables["params"]}, with_bn_counters=False),
    }


def _stored(fx: dict, prefix: str, key: str, mine: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(part, mine, reference) of one key: ``("full", ...)`` for a stored tensor, else the sketch's parts
    (``val``, ``sum0``, ``sq0``, ``sum1``)."""
    full = f"{prefix}/{key}"
    if full in fx:
        return [("full", np.asarray(mine, np.float64), np.asarray(fx[full], np.float64))]
    s = fixture_io.sketch(mine, fx[f"sketch_index/{key}"])
    return [(n, s[n], np.asarray(fx[f"{prefix}_sketch/{key}/{n}"], np.float64)) for n in s]


def keys_of(fx: dict, phase: str, what: str) -> list[str]:
    p, ps = f"{phase}/{what}/", f"{phase}/{what}_sketch/"
    keys = {k[len(p) :] for k in fx if k.startswith(p)}
    keys |= {k[len(ps) : -len("/val")] for k in fx if k.startswith(ps) and k.endswith("/val")}
    return sorted(k for k in keys if not k.endswith("num_batches_tracked"))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.abs(b).max()) if b.size else 0.0
    d = float(np.abs(a - b).max()) if b.size else 0.0
    return d / scale if scale > 0 else d


def grads_f32(fx: dict, phase: str, got: dict) -> dict[str, Any]:
    """Float32 gradient figures: per key the worst ``|dg| / (1e-3 max|g_ref| + 1e-5 grad_norm)`` (README;
    must be <= 1) over the tensor or its sampled values, the sketch's sums held to the sum of their
    values' bounds (``|d sum g| <= n b``, ``|d sum g^2| <= 2 sqrt(n sum g^2) b + n b^2``), and the relative
    L2 error over every stored value (full tensors and sketch samples)."""
    norm = float(fx[f"{phase}/grad_norm"])
    worst, d2, r2 = {}, 0.0, 0.0
    for key in keys_of(fx, phase, "grad"):
        parts = _stored(fx, f"{phase}/grad", key, got["grad"][key])
        b = 1e-3 * float(np.abs(parts[0][2]).max()) + 1e-5 * norm
        shape = np.shape(got["grad"][key])
        ratio = 0.0
        for name, mine, ref in parts:
            if name in ("full", "val"):
                d2 += float(np.sum((mine - ref) ** 2))
                r2 += float(np.sum(ref**2))
                bound = b
            elif name == "sq0":
                n = int(np.prod(shape[1:]))
                bound = 2 * np.sqrt(n * np.abs(ref)) * b + n * b * b
            else:
                bound = b * (np.prod(shape[1:]) if name == "sum0" else np.prod(shape) // shape[1])
            ratio = max(ratio, float((np.abs(mine - ref) / bound).max()))
        worst[key] = ratio
    return {"per_key": worst, "l2": (d2 / r2) ** 0.5}


def updates(fx: dict, phase: str, got: dict, x64: bool) -> dict[str, float]:
    """Per trainable key, the worst ``|d update| / bound`` over the stored values (``after - before``).
    float32 (README): bound = 1 ulp of the parameter + lr_g * c * (1e-3 max|g_ref| + 1e-5 grad_norm),
    elementwise on the tensor or its sampled values (<= 1). float64: the update's scale-relative error
    over every stored part (<= 1e-6)."""
    norm, lr = float(fx[f"{phase}/grad_norm"]), fx[f"{phase}/lr"]
    coef = min(1.0, 10.0 / (norm + 1e-6))
    out = {}
    for key in keys_of(fx, phase, "update"):
        mine = np.asarray(got["after"][key], np.float64) - np.asarray(got["before"][key], np.float64)
        parts = _stored(fx, f"{phase}/update", key, mine)
        if x64:
            out[key] = max(_rel(m, r) for _, m, r in parts)
            continue
        name, m, r = parts[0]
        before = np.asarray(got["before"][key], np.float64).reshape(-1)
        if name == "val":
            before = before[fx[f"sketch_index/{key}"]]
        before = before.reshape(r.shape)
        grad = _stored(fx, f"{phase}/grad", key, np.asarray(got["grad"][key]))[0][2]
        lr_g = float(lr[0] if key.startswith("backbone.") else lr[1])
        ulp = np.spacing(np.abs(before + r).astype(np.float32)).astype(np.float64)
        bound = ulp + lr_g * coef * (1e-3 * float(np.abs(grad).max()) + 1e-5 * norm)
        out[key] = float((np.abs(m - r) / bound).max())
    return out


def after_rel(fx: dict, phase: str, got: dict, running: bool) -> dict[str, float]:
    """Scale-relative error per key of the state after the step: the BatchNorm running statistics
    (``running=True``) or the parameters."""
    out = {}
    for key in keys_of(fx, phase, "after"):
        if key.endswith(("running_mean", "running_var")) != running:
            continue
        out[key] = max(_rel(m, r) for _, m, r in _stored(fx, f"{phase}/after", key, got["after"][key]))
    return out


def losses_rel(fx: dict, phase: str, got: dict) -> dict[str, float]:
    out = {
        k: abs(got["losses"][k] / float(fx[f"{phase}/loss/{k}"]) - 1)
        for k in ("cls", "loc", "match", "total")
    }
    out["grad_norm"] = abs(got["grad_norm"] / float(fx[f"{phase}/grad_norm"]) - 1)
    return out


def grads_f64(fx: dict, phase: str, got: dict) -> dict[str, Any]:
    """Float64: scale-relative error per key (every stored part), and the structurally-zero gradients'
    largest magnitude relative to the global norm."""
    norm = float(fx[f"{phase}/grad_norm"])
    per_key, zero = {}, {}
    for key in keys_of(fx, phase, "grad"):
        if key in STRUCTURAL_ZERO:
            zero[key] = float(np.abs(np.asarray(got["grad"][key], np.float64)).max()) / norm
        else:
            per_key[key] = max(_rel(m, r) for _, m, r in _stored(fx, f"{phase}/grad", key, got["grad"][key]))
    return {"per_key": per_key, "zero": zero}


def worst(d: dict[str, float]) -> tuple[str, float]:
    k = max(d, key=d.get)
    return k, d[k]
