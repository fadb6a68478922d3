"""Declarative PyTorch-key <-> Flax-path mapping for the official checkpoints of every architecture.

The Flax tree mirrors the PyTorch module paths exactly (``head.box2.cls.head.3`` <->
``head/box2/cls/head/3``), so the mapping is a table of *module kinds* (regex on the module path, written
beside each model: ``interface.TorchMapping.modules``) plus one layout transform per leaf (here). Nothing
here is imported by the models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from siamrn_jax.models import registry


def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    """Conv2d weight (out, in, kh, kw) -> Flax Conv kernel (kh, kw, in, out)."""
    return np.transpose(w, (2, 3, 1, 0))


def hwio_to_oihw(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (3, 2, 0, 1))


def transpose2d(w: np.ndarray) -> np.ndarray:
    """Linear weight (out, in) <-> Dense kernel (in, out)."""
    return np.transpose(w)


def identity(w: np.ndarray) -> np.ndarray:
    return w


class Leaf(NamedTuple):
    """Where one PyTorch leaf goes: Flax collection, Flax leaf name, forward and inverse transforms."""

    collection: str
    name: str
    to_flax: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]


DROP = None  # leaves with no Flax counterpart (BN ``num_batches_tracked``: an int step counter)

CONV = {"weight": Leaf("params", "kernel", oihw_to_hwio, hwio_to_oihw)}
CONV_BIAS = {**CONV, "bias": Leaf("params", "bias", identity, identity)}
LINEAR = {
    "weight": Leaf("params", "kernel", transpose2d, transpose2d),
    "bias": Leaf("params", "bias", identity, identity),
}
BN = {
    "weight": Leaf("params", "scale", identity, identity),
    "bias": Leaf("params", "bias", identity, identity),
    "running_mean": Leaf("batch_stats", "mean", identity, identity),
    "running_var": Leaf("batch_stats", "var", identity, identity),
    "num_batches_tracked": DROP,
}
# A bare nn.Parameter owned by its parent module (softmax level weights, loc scales).
VECTOR = {"": Leaf("params", "", identity, identity)}

# Layout kinds by the names the architectures' ``TorchMapping`` rules use (``interface.LAYOUTS``).
KINDS = {"conv": CONV, "conv_bias": CONV_BIAS, "linear": LINEAR, "bn": BN, "vector": VECTOR}
# (regex on the PyTorch *module* path, kind) of every registered architecture, each rule once, in
# registration order. First match wins; anchored at both ends.
MODULE_KINDS: list[tuple[str, dict]] = list(
    {p: KINDS[k] for s in registry.SPECS for p, k in s.torch.modules}.items()
)
_COMPILED = [(re.compile(p + r"$"), kind) for p, kind in MODULE_KINDS]


def _kind(module: str) -> dict | None:
    for pattern, kind in _COMPILED:
        if pattern.match(module):
            return kind
    return None


def torch_key_to_flax(key: str) -> tuple[str, tuple[str, ...], Leaf] | None:
    """``'head.box2.cls.head.3.bias'`` -> ``('params', ('head', ..., '3', 'bias'), Leaf)``.

    Returns ``None`` for a key no rule maps, and ``('', (), DROP)`` for a leaf dropped on purpose.
    """
    kind = _kind(key)
    if kind is VECTOR:
        leaf = VECTOR[""]
        return leaf.collection, tuple(key.split(".")), leaf
    module, _, leaf_name = key.rpartition(".")
    kind = _kind(module)
    if kind is None or leaf_name not in kind:
        return None
    leaf = kind[leaf_name]
    if leaf is DROP:
        return "", (), DROP
    return leaf.collection, (*module.split("."), leaf.name), leaf


def flax_path_to_torch(collection: str, path: tuple[str, ...]) -> tuple[str, Leaf]:
    """Inverse of ``torch_key_to_flax`` for one Flax leaf: (PyTorch key, Leaf)."""
    dotted = ".".join(path)
    if _kind(dotted) is VECTOR:
        return dotted, VECTOR[""]
    module, leaf_name = ".".join(path[:-1]), path[-1]
    kind = _kind(module)
    if kind is not None:
        for torch_name, leaf in kind.items():
            if leaf is not DROP and leaf.collection == collection and leaf.name == leaf_name:
                return f"{module}.{torch_name}", leaf
    raise KeyError(f"no PyTorch key for Flax leaf {collection}/{'/'.join(path)}")


def bn_modules(torch_keys) -> list[str]:
    """Module paths that are BatchNorms (they own a ``running_mean``), in key order."""
    return [k[: -len(".running_mean")] for k in torch_keys if k.endswith(".running_mean")]
