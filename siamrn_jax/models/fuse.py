"""Load-time inference form of a model's convolutions: BatchNorm folded into the convolution before it,
depthwise layers marked for shifted multiply-adds (``siamrn_jax.ops.depthwise``).

Why: on XLA:CPU a small model's frame is dozens of small layers; a grouped (depthwise) convolution there
runs 10-40x slower than the same sum as shifted products, and an eval-mode BatchNorm is one more pass over
each feature map. Folding is the usual exact rewrite of inference:

    BN(conv(x, W) + b) = conv(x, W m) + ((b - mean) m + beta),   m = scale / sqrt(var + eps)  (per channel)

computed once here in float64 and rounded once, so the folded network equals the stored one up to float
rounding (``tests/models/test_fuse.py`` bounds it per model).

Which BatchNorm follows which convolution is read off the model itself: one abstract trace of its
``__call__`` (all stages; no FLOPs) with the calls intercepted, pairing a BatchNorm with the ``Conv`` whose
output object it receives. Every conv -> BN of our models is written ``bn(conv(x))``, so the conv's output
has no other use. The result is stored in the ``fused`` variable collection (``layers.FUSED``), next to the
unchanged ``params`` / ``batch_stats``: training and export never see it (they use the stored variables).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from siamrn_jax.models.layers import FUSED, BatchNorm, Conv
from siamrn_jax.ops import winograd

log = logging.getLogger(__name__)

Path = tuple[str, ...]


class _Calls:
    """Conv outputs and BatchNorm inputs seen during one trace, by module path."""

    def __init__(self):
        self.conv_out: dict[Path, list[Any]] = {}
        self.bn_in: dict[Path, list[Any]] = {}
        self.depthwise: set[Path] = set()
        self.eps: dict[Path, float] = {}

    def __call__(self, next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "__call__" or not isinstance(module, Conv | BatchNorm):
            return next_fun(*args, **kwargs)
        out = next_fun(*args, **kwargs)
        path = tuple(module.path)
        if isinstance(module, Conv):
            outs = self.conv_out.setdefault(path, [])
            if not any(out is o for o in outs):  # ``Conv.__call__`` may call ``nn.Conv.__call__``: one call
                outs.append(out)
            groups = module.feature_group_count
            if groups > 1 and groups == args[0].shape[-1] == module.features:
                self.depthwise.add(path)
        else:
            self.bn_in.setdefault(path, []).append(args[0])
            self.eps[path] = module.epsilon
        return out

    def pairs(self) -> dict[Path, Path]:
        """conv path -> BN path, where every call of the BN got the output of one call of that conv and
        every call of the conv fed that BN."""
        out = {}
        for bn, inputs in self.bn_in.items():
            owners = {
                conv for x in inputs for conv, outs in self.conv_out.items() if any(x is o for o in outs)
            }
            if len(owners) != 1:
                continue
            (conv,) = owners
            if len(self.conv_out[conv]) == len(inputs) and conv not in out:
                out[conv] = bn
        return out


@functools.lru_cache(maxsize=16)
def conv_bn_pairs(model: nn.Module) -> tuple[dict[Path, Path], dict[Path, float], frozenset[Path]]:
    """(conv path -> following BN path, BN path -> epsilon, depthwise conv paths) of ``model`` (a
    ``SiamRN`` or ``NanoTrack``: its ``__call__(z, box, x)`` runs every stage), from one abstract trace."""
    calls = _Calls()
    z = jax.ShapeDtypeStruct((1, model.exemplar_size, model.exemplar_size, 3), jnp.float32)
    x = jax.ShapeDtypeStruct((1, model.instance_size, model.instance_size, 3), jnp.float32)
    box = jax.ShapeDtypeStruct((1, 4), jnp.float32)

    def run(z, box, x):
        variables = model.init(jax.random.key(0), z, box, x)
        with nn.intercept_methods(calls):
            return model.apply(variables, z, box, x)

    jax.eval_shape(run, z, box, x)
    return calls.pairs(), calls.eps, frozenset(calls.depthwise)


def get_at(tree: Mapping[str, Any], path: Path) -> Mapping[str, Any]:
    """The subtree of nested ``tree`` at ``path`` (module names from the root)."""
    for name in path:
        tree = tree[name]
    return tree


def _set(tree: dict[str, Any], path: Path, leaves: dict[str, Any]) -> None:
    for name in path:
        tree = tree.setdefault(name, {})
    tree.update(leaves)


def fold_batch_norm(kernel, bias, scale, beta, mean, var, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """(kernel [..., Co] HWIO, bias [Co] or None) of ``BN(conv(x, kernel) + bias)`` in eval mode, in
    float64 (callers round once)."""
    m = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    b = np.zeros_like(m) if bias is None else np.asarray(bias, np.float64)
    return np.asarray(kernel, np.float64) * m, (b - np.asarray(mean, np.float64)) * m + np.asarray(
        beta, np.float64
    )


def _depthwise_shaped(leaf: Any) -> bool:
    shape = getattr(leaf, "shape", ())
    return len(shape) == 4 and shape[2] == 1 and shape[3] > 1


def with_fused(model: nn.Module, variables: Mapping[str, Any], always: bool = False) -> dict[str, Any]:
    """``variables`` plus the ``fused`` collection: for each conv -> BN pair the folded kernel and bias at
    the conv's path and ``folded`` at the BN's; for each other depthwise conv its kernel (so it runs as
    shifted multiply-adds), in each kernel's stored dtype (float64 for a float64 model); stored values
    unchanged.

    Only models with depthwise convolutions (NanoTrack's MobileNetV3 and heads) get the collection, unless
    ``always``: there it makes the frame several times faster; on the ResNet models folding alone was
    measured at <= 3 % (docs/performance.md, speed levers), not worth moving their float rounding off the
    stored form that the export round trips compare against at 1e-6.
    """
    if not (always or any(_depthwise_shaped(k) for k in jax.tree.leaves(variables["params"]))):
        return dict(variables)  # no trace needed: nothing shaped like a depthwise kernel
    pairs, eps, depthwise = conv_bn_pairs(model)
    if not (depthwise or always):
        return dict(variables)
    params, stats = variables["params"], variables.get("batch_stats", {})
    fused: dict[str, Any] = {}
    folded = 0
    for conv, bn in pairs.items():
        c, p, s = get_at(params, conv), get_at(params, bn), get_at(stats, bn)
        if winograd.eligible_kernel(c["kernel"]):
            continue  # the paper model's large 3x3 layers keep their Winograd form (``ops.winograd``)
        folded += 1
        dtype = np.asarray(c["kernel"]).dtype
        kernel, bias = fold_batch_norm(
            c["kernel"], c.get("bias"), p["scale"], p["bias"], s["mean"], s["var"], eps[bn]
        )
        _set(fused, conv, {"kernel": kernel.astype(dtype), "bias": bias.astype(dtype)})
        _set(fused, bn, {"folded": np.zeros((), np.float32)})
    for conv in depthwise - set(pairs):
        _set(fused, conv, {"kernel": np.asarray(get_at(params, conv)["kernel"])})
    log.debug("folded %d conv -> BN pairs, %d depthwise convs", folded, len(depthwise))
    return {**variables, FUSED: fused}
