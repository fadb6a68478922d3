"""Relation detector (``MultiDetector``): is a proposal RoI the same object as the template support RoI?

Per level l, four sub-modules (names mirror the PyTorch keys ``multi_det.global_det2.MLP.0`` ...):
- ``non_local{l}``: aligns the concatenated pair a0 = [support, proposal] -> a (see ``non_local.py``);
- ``global_det{l}`` (on a): global mean over 7x7 -> ``MLP/0`` 2C->C, ReLU, ``MLP/2`` C->C, ReLU, ``fc`` C->2;
- ``local_det{l}`` (on the *raw* support and proposal, not on a): shared 1x1 ``conv`` C->C (no bias),
  per-channel correlation of the two 7x7 maps -> [..., C], ReLU, ``fc`` C->2;
- ``patch_det{l}`` (on a): ``conv_1`` 1x1 2C->C/4, ReLU, 3x3/1 average pool (7 -> 5), ``conv_2`` 3x3 valid
  (5 -> 3), ReLU, ``conv_3`` 1x1 C/4->C, ReLU, global mean, ``fc`` C->2.
Level score = global + local + patch (2-way logits); output = sum_l softmax(matching_weight)_l * score_l.
Logit index 1 = "same target", 0 = "different". Inputs may have any leading shape ([N] pairs, or [N, R]
proposals against supports of leading shape [N, 1]).

Ablations (``heads``, the paper's Table 3): the level score is the sum of the chosen heads only, in the
order global, local, patch; the modules of the others are not created, and ``non_local{l}`` exists only
when a head that reads its output (global or patch) does: the local head alone has no alignment block.

Two evaluation orders of the same function:
- reference (training, and inference without a cache): as written above, with a0 and a materialised;
- fused (inference with a ``prepare``-d cache): the support's terms are computed once per template; every
  layer that reads a proposal RoI first is linear, so only the proposal halves of theta/phi/g/local/conv_1
  are computed per proposal;
  and in eval mode BN(W y) is affine, so ``a`` is never formed: mean(a) uses mean(y), and
  conv_1(a) = conv_1(a0) + y (W' K_1). Identical up to float rounding; about 3x fewer multiply-adds than
  the reference for 625 proposals.

Mixed precision (``dtype=bfloat16``): every conv / Linear / einsum runs in ``dtype`` (float32 RoIs from
PrRoIPool are cast at each layer's input); the non-local softmax, the eval-mode BN fold of the fused order
and the level fusion are float32, and so are the returned logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from siamrn_jax.models.layers import Dtype, SplitLinear, accum_dtype, conv, rd_dense_init
from siamrn_jax.models.non_local import NonLocalBlock, NonLocalSupport


class LevelSupport(NamedTuple):
    """Support-side terms of one level, with the support's leading shape.

    Attributes:
      support: [..., 7, 7, C] the support RoI.
      non_local: its theta / phi / g terms.
      local: [..., 7, 7, C] the local detector's conv of the support.
    """

    support: jax.Array
    non_local: NonLocalSupport | None
    local: jax.Array | None


SupportCache = tuple[LevelSupport, ...]

# The relation heads, in the order their logits are summed (the official ``global + local + patch``).
HEADS = ("global", "local", "patch")
# The official MultiDetector's PyTorch module paths and their layout kinds (``interface.TorchMapping``), for
# the ``.pth`` mappings of every architecture with a relation detector.
TORCH_MODULES: tuple[tuple[str, str], ...] = (
    (r"multi_det\.matching_weight", "vector"),
    (r"multi_det\.global_det\d+\.(MLP\.0|MLP\.2|fc)", "linear"),
    (r"multi_det\.(local_det|patch_det)\d+\.fc", "linear"),
    (r"multi_det\.local_det\d+\.conv", "conv"),
    (r"multi_det\.patch_det\d+\.conv_[123]", "conv"),
    (r"multi_det\.non_local\d+\.(theta|phi\.0|g\.0|W\.0)", "conv_bias"),
    (r"multi_det\.non_local\d+\.W\.1", "bn"),
)


def _linear(features: int, in_features: int, dtype: Dtype) -> SplitLinear:
    return SplitLinear(features, in_features, conv=False, kernel_init=rd_dense_init, dtype=dtype)


class _MLP(nn.Module):
    """``MLP``: ``0`` Linear 2C->C, ReLU (``1``), ``2`` Linear C->C, ReLU (``3``)."""

    features: int
    dtype: Dtype

    def setup(self):
        setattr(self, "0", _linear(self.features, 2 * self.features, self.dtype))
        setattr(self, "2", _linear(self.features, self.features, self.dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.relu(getattr(self, "2")(nn.relu(getattr(self, "0")(x))))


class GlobalDetector(nn.Module):
    channels: int
    dtype: Dtype = jnp.float32

    def setup(self):
        self.MLP = _MLP(self.channels, self.dtype)
        self.fc = _linear(2, self.channels, self.dtype)

    def from_mean(self, mean_a: jax.Array) -> jax.Array:
        """mean_a [..., 2C] (the 7x7 mean of a) -> logits [..., 2]."""
        return self.fc(self.MLP(mean_a))

    def __call__(self, a: jax.Array) -> jax.Array:
        """a [..., 7, 7, 2C] -> logits [..., 2]."""
        return self.from_mean(a.mean(axis=(-3, -2)))


class LocalDetector(nn.Module):
    channels: int
    dtype: Dtype = jnp.float32

    def setup(self):
        self.conv = SplitLinear(self.channels, self.channels, use_bias=False, dtype=self.dtype)
        self.fc = _linear(2, self.channels, self.dtype)

    def prepare(self, support: jax.Array) -> jax.Array:
        return self.conv(support)

    def from_convs(self, support_conv: jax.Array, proposal_conv: jax.Array) -> jax.Array:
        """Per-channel correlation of the convolved 7x7 maps -> ReLU -> fc: [..., 2]."""
        corr = jnp.einsum(
            "...hwc,...hwc->...c", jnp.broadcast_to(support_conv, proposal_conv.shape), proposal_conv
        )
        return self.fc(nn.relu(corr))

    def __call__(self, proposal: jax.Array, support_conv: jax.Array) -> jax.Array:
        return self.from_convs(support_conv, self.conv(proposal))

    def from_support_conv(self, support_conv: jax.Array, proposal: jax.Array) -> jax.Array:
        """Same as ``__call__``, contracting (h, w, k) in one GEMM against per-support weights
        M[h, w, k, c] = conv(s)[h, w, c] K[k, c]: sum_hwc conv(s) conv(r) = sum_hwk r[h, w, k] M[h, w, k, c].
        One [R, 49 C] x [49 C, C] product per support beats the 1x1 conv + reduction on XLA:CPU.

        Args:
          support_conv: [N, 1, 7, 7, C] (``prepare`` of supports with leading shape [N, 1]).
          proposal: [N, R, 7, 7, C].
        """
        m = support_conv[..., None, :] * self.conv.matrix()  # [N, 1, 7, 7, C_in, C]
        n, _, h, w, k, c = m.shape
        r = proposal.astype(m.dtype).reshape(n, -1, h * w * k)
        corr = jnp.einsum("nrk,nkc->nrc", r, m.reshape(n, h * w * k, c))
        return self.fc(nn.relu(corr))


class PatchDetector(nn.Module):
    channels: int
    dtype: Dtype = jnp.float32

    def setup(self):
        hidden = self.channels // 4
        self.conv_1 = SplitLinear(hidden, 2 * self.channels, use_bias=False, dtype=self.dtype)
        self.conv_2 = conv(hidden, 3, name=None, dtype=self.dtype)
        self.conv_3 = SplitLinear(self.channels, hidden, use_bias=False, dtype=self.dtype)
        self.fc = _linear(2, self.channels, self.dtype)

    def from_conv_1(self, h: jax.Array) -> jax.Array:
        """h = conv_1(a) [..., 7, 7, C/4] (before its ReLU) -> logits [..., 2]."""
        *lead, hh, ww, k = h.shape
        x = nn.relu(h).reshape(-1, hh, ww, k)
        x = nn.avg_pool(x, (3, 3), strides=(1, 1), padding="VALID")
        x = nn.relu(self.conv_2(x))
        x = nn.relu(self.conv_3(x))
        # The official AdaptiveAvgPool2d(1) and the paper-time AvgPool2d(3, 1) agree on a 3x3 map.
        return self.fc(x.mean(axis=(1, 2)).reshape(*lead, self.channels))

    def __call__(self, a: jax.Array) -> jax.Array:
        """a [..., 7, 7, 2C] -> logits [..., 2]."""
        return self.from_conv_1(self.conv_1(a))


class MultiDetector(nn.Module):
    """Relation detector over the levels.

    Attributes:
      channels: RoI feature width C (256).
      levels: level ids used in parameter names.
      heads: the relation heads whose logits make the level score, a subset of ``HEADS`` in that order
        (default all three, the paper model).
    """

    channels: int = 256
    levels: Sequence[int] = (2, 3, 4)
    dtype: Dtype = jnp.float32
    heads: Sequence[str] = HEADS

    @property
    def aligned(self) -> bool:
        """Whether a head reads the non-local output (global and patch do, local does not)."""
        return "global" in self.heads or "patch" in self.heads

    def setup(self):
        c, d = self.channels, self.dtype
        for lvl in self.levels:
            # Creation order as in the official __init__ (same parameter tree order for the paper model).
            if "global" in self.heads:
                setattr(self, f"global_det{lvl}", GlobalDetector(c, d))
            if "local" in self.heads:
                setattr(self, f"local_det{lvl}", LocalDetector(c, d))
            if "patch" in self.heads:
                setattr(self, f"patch_det{lvl}", PatchDetector(c, d))
            if self.aligned:
                setattr(self, f"non_local{lvl}", NonLocalBlock(2 * c, d))
        self.matching_weight = self.param("matching_weight", nn.initializers.ones, (len(self.levels),))

    def _parts(self, lvl: int) -> tuple[NonLocalBlock | None, ...]:
        """(non_local, global, local, patch) of a level; None for the modules the ablation left out."""
        return tuple(
            getattr(self, f"{k}{lvl}", None) for k in ("non_local", "global_det", "local_det", "patch_det")
        )

    def prepare(self, support: Sequence[jax.Array]) -> SupportCache:
        """Support terms, per level, from support RoIs [..., 7, 7, C]."""
        out = []
        for lvl, s in zip(self.levels, support, strict=True):
            non_local, _, local, _ = self._parts(lvl)
            out.append(
                LevelSupport(
                    s,
                    None if non_local is None else non_local.prepare(s),
                    None if local is None else local.prepare(s),
                )
            )
        return tuple(out)

    @staticmethod
    def _sum(terms: list[jax.Array]) -> jax.Array:
        """Left-to-right sum: the paper model's ``global + local + patch`` exactly."""
        out = terms[0]
        for t in terms[1:]:
            out = out + t
        return out

    def _reference_level(self, lvl: int, sup: LevelSupport, r: jax.Array, train: bool) -> jax.Array:
        non_local, glob, local, patch = self._parts(lvl)
        a = None if non_local is None else non_local(sup.support, r, sup.non_local, train)
        terms = [glob(a)] if glob is not None else []
        if local is not None:
            terms.append(local(r, sup.local))
        if patch is not None:
            terms.append(patch(a))
        return self._sum(terms)

    def _fused_level(self, lvl: int, sup: LevelSupport, r: jax.Array) -> jax.Array:
        """The same level score in eval mode, without materialising a0 or a (see the module docstring);
        only the terms of the chosen heads are formed."""
        non_local, glob, local, patch = self._parts(lvl)
        terms = []
        if non_local is not None:
            mean_a, h_1 = self._fused_aligned(non_local, patch, sup, r)
            if glob is not None:
                terms.append(glob.from_mean(mean_a))
        if local is not None:
            terms.append(local.from_support_conv(sup.local, r))
        if patch is not None:
            terms.append(patch.from_conv_1(h_1))
        return self._sum(terms)

    def _fused_aligned(
        self, non_local: NonLocalBlock, patch: PatchDetector | None, sup: LevelSupport, r: jax.Array
    ) -> tuple[jax.Array, jax.Array | None]:
        """What the global and patch heads read of a = a0 + BN(W y), in eval mode: mean(a) [..., 2C] and
        conv_1(a) [..., 7, 7, C/4] (None without the patch head)."""
        c, dt = self.channels, self.dtype
        # y = A g is never formed either: it only enters through y @ w_out (its mean) and y @ w_k1, and
        # A (g @ w_k1) is 49 x 9 x C/4 per proposal where (A g) @ w_k1 is 49 x C x C/4.
        attn, g = non_local.attention(sup.non_local, r)
        attn = attn.astype(g.dtype)
        w_out, b_out = non_local.output_affine()  # float32: a = a0 + y @ w_out + b_out
        mean_y = jnp.einsum("...k,...kc->...c", attn.mean(axis=-2), g)
        mean_s = jnp.broadcast_to(sup.support.mean(axis=(-3, -2)), mean_y.shape[:-1] + (c,))
        mean_a = (
            jnp.concatenate([mean_s, r.mean(axis=(-3, -2))], axis=-1)
            + jnp.dot(mean_y, w_out.astype(dt))
            + b_out
        )
        if patch is None:
            return mean_a, None
        k_1 = patch.conv_1.matrix()  # [2C, C/4], dtype
        k_1_f32 = patch.conv_1.matrix(accum_dtype(dt))
        # The folded weights are products of float32 parameters and statistics: form them in float32 and
        # round once to the computation dtype of the per-proposal GEMMs.
        w_k1 = jnp.dot(w_out, k_1_f32)
        gw = jnp.dot(g, w_k1.astype(dt))  # [..., 9, C/4]
        # A (g w_k1) as one batched [49, 9] x [9, C/4] product per proposal: written as 9 broadcast
        # multiply-adds, XLA:CPU fused that C/4-wide elementwise chain into conv_1's product below and ran it
        # slower (SiamRN-Nano's relate 1.33 -> 1.22 ms, demo_resnet's 9.1 -> 8.7 ms with the product).
        y_k1 = jnp.einsum("...qk,...kc->...qc", attn, gw).reshape(*r.shape[:-1], gw.shape[-1])
        h_1 = (
            jnp.dot(sup.support.astype(dt), k_1[:c])
            + jnp.dot(r.astype(dt), k_1[c:])
            + y_k1
            + jnp.dot(b_out, k_1_f32)
        )
        return mean_a, h_1

    def __call__(
        self,
        support: Sequence[jax.Array] | None,
        proposals: Sequence[jax.Array],
        train: bool = False,
        cache: SupportCache | None = None,
    ) -> jax.Array:
        """Scores support/proposal pairs.

        Args:
          support: per level support RoIs [..., 7, 7, C], broadcastable to the proposals (ignored when
            ``cache`` is given).
          proposals: per level proposal RoIs [..., 7, 7, C].
          train: BN batch statistics (only the non-local ``W/1`` BN).
          cache: ``prepare(support)``; with it (and ``train=False``) the fused evaluation order is used.

        Returns:
          [..., 2] float32 fused match logits (index 1 = same target), leading shape of the proposals.
        """
        fused = cache is not None and not train
        if cache is None:
            cache = self.prepare(support)
        acc = accum_dtype(self.dtype)
        weights = jax.nn.softmax(self.matching_weight.astype(acc))
        out = 0.0
        for i, (lvl, sup, r) in enumerate(zip(self.levels, cache, proposals, strict=True)):
            score = self._fused_level(lvl, sup, r) if fused else self._reference_level(lvl, sup, r, train)
            out = out + weights[i] * score.astype(acc)
        return out
