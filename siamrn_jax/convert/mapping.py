"""Declarative PyTorch-key <-> Flax-path mapping for the official SiamRN / SiamBAN / pysot checkpoints.

The Flax tree mirrors the PyTorch module paths exactly (``head.box2.cls.head.3`` <->
``head/box2/cls/head/3``), so the mapping is a table of *module kinds* (regex on the module path) plus one
layout transform per leaf. Nothing here is imported by the models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np


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

_L = r"\d+"


def _indices(period: int, offsets: tuple[int, ...], layers: int = 6) -> str:
    """Regex alternation of the Sequential indices ``period * i + offset`` (NanoTrack's head towers)."""
    return "(" + "|".join(str(period * i + o) for i in range(layers) for o in offsets) + ")"


# NanoTrack's keys (MobileNetV3-small backbone, V2/V3 heads: siamrn_jax.models.mobilenet_v3 / nano_head)
# after the converter's ``ban_head.`` -> ``head.`` rename. Block 1 is the only inverted residual without
# an expansion conv (ratio 1), hence its own indices.
_BLOCK = r"backbone\.features\.([2-9]|\d\d+)\.conv"
_CORR = r"head\.corr_(pw|dw)_(reg|cls)"
# (regex on the PyTorch *module* path, kind). First match wins; anchored at both ends.
MODULE_KINDS: list[tuple[str, dict]] = [
    (rf"backbone\.(conv1|layer{_L}\.{_L}\.conv{_L}|layer{_L}\.{_L}\.downsample\.0)", CONV),
    (rf"backbone\.(bn1|layer{_L}\.{_L}\.bn{_L}|layer{_L}\.{_L}\.downsample\.1)", BN),
    (rf"neck\.downsample{_L}\.downsample\.0", CONV),
    (rf"neck\.downsample{_L}\.downsample\.1", BN),
    (rf"head\.box{_L}\.(cls|loc)\.(conv_kernel|conv_search|head)\.0", CONV),
    (rf"head\.box{_L}\.(cls|loc)\.(conv_kernel|conv_search|head)\.1", BN),
    (rf"head\.box{_L}\.(cls|loc)\.head\.3", CONV_BIAS),
    (r"head\.(cls_weight|loc_weight|loc_scale)", VECTOR),
    (r"rd_neck\.downsample\.0", CONV),  # SiamRN-Nano's adjust layer ahead of its relation detector
    (r"rd_neck\.downsample\.1", BN),
    (r"multi_det\.matching_weight", VECTOR),
    (rf"multi_det\.global_det{_L}\.(MLP\.0|MLP\.2|fc)", LINEAR),
    (rf"multi_det\.(local_det|patch_det){_L}\.fc", LINEAR),
    (rf"multi_det\.local_det{_L}\.conv", CONV),
    (rf"multi_det\.patch_det{_L}\.conv_[123]", CONV),
    (rf"multi_det\.non_local{_L}\.(theta|phi\.0|g\.0|W\.0)", CONV_BIAS),
    (rf"multi_det\.non_local{_L}\.W\.1", BN),
    (r"backbone\.features\.0\.0", CONV),
    (r"backbone\.features\.0\.1", BN),
    (r"backbone\.features\.1\.conv\.[04]", CONV),
    (r"backbone\.features\.1\.conv\.[15]", BN),
    (r"backbone\.features\.1\.conv\.3\.fc\.[02]", LINEAR),
    (rf"{_BLOCK}\.[037]", CONV),
    (rf"{_BLOCK}\.[148]", BN),
    (rf"{_BLOCK}\.5\.fc\.[02]", LINEAR),
    (rf"{_CORR}\.(conv_kernel|conv_search)\.0", CONV_BIAS),
    (rf"{_CORR}\.(conv_kernel|conv_search)\.1", BN),
    (rf"{_CORR}\.CA_layer\.fc[12]", CONV_BIAS),
    (rf"{_CORR}\.conv\.0", CONV),
    (rf"{_CORR}\.conv\.[14]", BN),
    (rf"{_CORR}\.conv\.3", CONV_BIAS),
    (rf"head\.(cls|bbox)_pw_tower\.{_indices(4, (0, 1))}", CONV),
    (rf"head\.(cls|bbox)_pw_tower\.{_indices(4, (2,))}", BN),
    (rf"head\.(cls|bbox)_tower\.{_indices(5, (0, 3))}", CONV),
    (rf"head\.(cls|bbox)_tower\.{_indices(5, (1, 4))}", BN),
    (r"head\.(cls_pred|bbox_pred|cls_logits|down_reg|down_cls)\.0", CONV_BIAS),
]
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
