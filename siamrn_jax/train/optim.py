"""The official SiamRN optimiser in optax (SPEC_OFFICIAL_SIAMRN.md §2, §8.6; JAX_STACK.md §3-4).

PyTorch reference (``tools/train.py``): ``SGD(momentum=0.9, weight_decay=1e-4)`` over the trainable
parameters in two groups (backbone ``layer2-4`` at 0.1x once ``BACKBONE.TRAIN_EPOCH`` (10) is reached; neck,
head and multi_det at 1x), ``clip_grad_norm_(parameters, 10.0)`` before ``optimizer.step()``, and
iterations whose loss is non-finite or > 1e4 skip the update.

Our chain (``make_optimizer``):

1. zero the gradients of frozen parameters (label ``'frozen'``) *first*, so that they neither enter the
   global norm (torch's ``clip_grad_norm_`` ignores parameters whose ``.grad`` is ``None``) nor get updated;
   it also lets XLA prune the frozen part of the backward pass;
2. ``clip_grad_norm(clip_norm)`` on what remains (PyTorch's rule: ``g * min(1, max / (||g|| + 1e-6))``);
3. per group PyTorch SGD: ``add_decayed_weights(wd)`` (coupled decay, before momentum), ``trace(0.9)``,
   then ``-lr * mult`` with ``lr = schedule(start_step + count)``. Frozen parameters get a zero update
   (no weight decay, no momentum state).

Freezing switch. The official code rebuilds the optimiser (``build_opt_lr``) at the unfreeze epoch, which
resets the momentum buffers of *all* parameters. Reproduce it by building a new optimiser with
``backbone_trainable=True`` and ``start_step=<global step at the switch>`` and calling ``tx.init(params)``
again; ``start_step`` keeps the LR schedule on the global step (optax's internal step count restarts at 0
with the new state). The labels are static (a Python bool), so the frozen and unfrozen phases are two
compiled train steps.

Skipping bad iterations. ``optax.apply_if_finite`` is *not* the official rule (it looks at the gradients,
not at a loss threshold). Use ``is_update_ok(loss)`` and ``guarded_update`` in the train step::

    loss, grads = jax.value_and_grad(loss_fn)(params)
    params, opt_state, ok = guarded_update(tx, grads, opt_state, params, loss)

``guarded_update`` returns the old params and optimiser state unchanged (momentum not advanced, schedule
count not advanced) when ``ok`` is False, as ``optimizer.step()`` is simply not called in the official code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "ALWAYS_FROZEN",
    "TRAINABLE_BACKBONE",
    "clip_grad_norm",
    "guarded_update",
    "is_update_ok",
    "make_optimizer",
    "mask_frozen",
    "param_labels",
    "pytorch_sgd",
]

# Backbone submodules that are frozen for the whole training (SPEC §2).
ALWAYS_FROZEN = ("conv1", "bn1", "layer1")
# Backbone submodules that become trainable at BACKBONE.TRAIN_EPOCH (at 0.1x LR).
TRAINABLE_BACKBONE = ("layer2", "layer3", "layer4")


def _key(entry: Any) -> Any:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return entry


def param_labels(
    params: Any, backbone_trainable: bool, stem_trainable: bool = False, frozen: tuple[str, ...] = ()
) -> Any:
    """Pytree like ``params`` of ``'frozen' | 'backbone' | 'rest'``.

    ``backbone/{conv1,bn1,layer1}`` are always ``'frozen'``; the rest of ``backbone`` (``layer2..4``) is
    ``'backbone'`` when ``backbone_trainable`` else ``'frozen'``; everything outside ``backbone`` (``neck``,
    ``head``, ``multi_det``) is ``'rest'``. Top-level modules named in ``frozen`` (``train.frozen``, e.g.
    SiamRN-Nano's pretrained NanoTrack part ``("backbone", "head")``) are ``'frozen'`` throughout.
    """

    def label(path, _leaf):
        keys = [_key(p) for p in path]
        if keys and keys[0] in frozen:
            return "frozen"
        if not keys or keys[0] != "backbone":
            return "rest"
        if len(keys) > 1 and keys[1] in ALWAYS_FROZEN and not stem_trainable:
            return "frozen"
        return "backbone" if backbone_trainable else "frozen"

    return jax.tree_util.tree_map_with_path(label, params)


def mask_frozen(
    grads: Any, backbone_trainable: bool, stem_trainable: bool = False, frozen: tuple[str, ...] = ()
) -> Any:
    """``grads`` with the frozen parameters' (``param_labels``) set to zero: the gradients the official
    step has (``requires_grad=False`` parameters get none), whose global norm is the one it clips with.
    (With the backbone trainable, gradients do reach conv1 / layer1 here; the optimiser drops them.)"""
    labels = param_labels(grads, backbone_trainable, stem_trainable, frozen)
    return jax.tree.map(lambda g, lab: jnp.zeros_like(g) if lab == "frozen" else g, grads, labels)


def pytorch_sgd(learning_rate: optax.ScalarOrSchedule, momentum: float = 0.9, weight_decay: float = 1e-4):
    """``torch.optim.SGD(lr, momentum, weight_decay)`` (dampening 0, no Nesterov): ``g += wd * p``;
    ``buf = momentum * buf + g`` (``buf = g`` on the first step); ``p -= lr * buf``."""
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.trace(decay=momentum, nesterov=False),
        optax.scale_by_learning_rate(learning_rate),
    )


def clip_grad_norm(max_norm: float) -> optax.GradientTransformation:
    """``torch.nn.utils.clip_grad_norm_(parameters, max_norm)``: every gradient times
    ``min(1, max_norm / (||g|| + 1e-6))``, ``||g||`` the global L2 norm. (``optax.clip_by_global_norm``
    rescales to exactly ``max_norm`` and only above it: the official step's coefficient differs from it by
    1e-6 / ||g||, which a float64 comparison sees.)"""

    def update_fn(updates, state, params=None):
        del params
        norm = optax.tree.norm(updates)
        coef = jnp.minimum(1.0, max_norm / (norm + 1e-6)).astype(norm.dtype)
        return jax.tree.map(lambda g: g * coef.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda _params: optax.EmptyState(), update_fn)


def make_optimizer(
    schedule: optax.ScalarOrSchedule,
    backbone_trainable: bool,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    clip_norm: float = 10.0,
    backbone_lr_mult: float = 0.1,
    *,
    start_step: int = 0,
    stem_trainable: bool = False,
    frozen: tuple[str, ...] = (),
) -> optax.GradientTransformation:
    """The official optimiser: zero frozen grads -> ``clip_grad_norm`` -> per-group PyTorch SGD.

    ``schedule`` maps the global step to the base LR (e.g. ``schedule.make_schedule(spe)``) or is a float.
    ``start_step`` is added to optax's step count before calling ``schedule``; pass the global step when
    re-building the optimiser at the unfreeze epoch (see the module docstring). Call ``tx.init(params)``
    after every (re)build.
    """
    offset = int(start_step)

    def lr_fn(mult: float) -> optax.ScalarOrSchedule:
        if callable(schedule):
            return lambda count: mult * schedule(count + offset)
        return mult * float(schedule)

    def labels(params):
        return param_labels(params, backbone_trainable, stem_trainable, tuple(frozen))

    zero_frozen = optax.partition(
        {"frozen": optax.set_to_zero(), "backbone": optax.identity(), "rest": optax.identity()}, labels
    )
    groups = optax.partition(
        {
            "frozen": optax.set_to_zero(),
            "backbone": pytorch_sgd(lr_fn(backbone_lr_mult), momentum, weight_decay),
            "rest": pytorch_sgd(lr_fn(1.0), momentum, weight_decay),
        },
        labels,
    )
    return optax.chain(zero_frozen, clip_grad_norm(clip_norm), groups)


def is_update_ok(loss: jax.Array, limit: float = 1e4) -> jax.Array:
    """Official skip rule as a pure function: ``True`` (bool array) iff ``loss`` is finite and ``<= limit``.

    For a non-scalar ``loss`` every element must pass."""
    loss = jnp.asarray(loss)
    return jnp.all(jnp.isfinite(loss) & (loss <= limit))


def guarded_update(
    tx: optax.GradientTransformation,
    grads: Any,
    opt_state: Any,
    params: Any,
    loss: jax.Array,
    limit: float = 1e4,
    ok_fn: Callable[[jax.Array, float], jax.Array] = is_update_ok,
) -> tuple[Any, Any, jax.Array]:
    """One optimiser step that is skipped (params and state returned unchanged) when the loss fails
    ``is_update_ok``. Jittable; returns ``(new_params, new_opt_state, ok)``.

    Non-finite gradients of a skipped step are computed but discarded by ``jnp.where``, so they do not
    leak into the returned params or momentum."""
    ok = ok_fn(loss, limit)
    updates, new_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)

    def pick(new, old):
        return jnp.where(ok, new, old)

    return jax.tree.map(pick, new_params, params), jax.tree.map(pick, new_state, opt_state), ok
