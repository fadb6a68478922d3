"""The data-parallel train step: ``jit`` of a per-device ``shard_map`` over the mesh axis ``DATA_AXIS``.

Why per-device code and not a global-view ``jit``: the official trainer has no SyncBN, so each GPU's
BatchNorm sees only its own samples (SPEC 8.6). Under ``shard_map`` each device normalises with its own
batch statistics, exactly like that; a global-view ``jit`` would silently turn every BN into a SyncBN.

Gradient trap (JAX_STACK.md 2): inside ``shard_map`` the gradient of a replicated (``P()``) parameter is
already reduced over the mesh axis. So we differentiate the *reduced* loss (``pmean`` for the mean,
``psum`` for the official 'sum' semantics) and put no collective on the gradients.

BN groups (``bn_groups`` = G): each device splits its batch into G groups with their own BatchNorm
statistics and averages (or sums) their losses, exactly as G devices would. One device with G = 8
therefore computes the same step as 8 devices with G = 1 (the test of that is
``tests/train/test_step.py``); it is also how to reproduce a many-GPU run's BN semantics on fewer devices.

Running statistics: every group and device updates the running averages from its own batch; the step
returns their mean over groups and devices (the official code keeps rank 0's copy; the mean is the same
in expectation and keeps replicas identical).

``reference_step`` is one official training step on one device, every intermediate returned (losses, raw
gradients, new parameters, BatchNorm statistics): what ``tests/train/test_official_step.py`` compares with
the official code's recorded step. Both go through ``loss_fn`` and ``optim.make_optimizer``.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.sharding import PartitionSpec as P

from siamrn_jax.models.interface import Architecture
from siamrn_jax.models.layers import full_precision
from siamrn_jax.ops.winograd import COLLECTION as WINOGRAD
from siamrn_jax.ops.winograd import transform_params
from siamrn_jax.sharding import DATA_AXIS
from siamrn_jax.train.forward import LossConfig, train_forward
from siamrn_jax.train.optim import guarded_update, is_update_ok, make_optimizer, mask_frozen
from siamrn_jax.train.schedule import epoch_phase

DEFAULT_LOSS = LossConfig()


class TrainState(struct.PyTreeNode):
    """Everything that changes during training (replicated on every device).

    Attributes:
      step: int32 scalar, number of steps run (skipped ones included).
      params, batch_stats: model variables.
      opt_state: optax state of the current phase's optimiser.
      key: PRNG key of the run; step ``s`` uses ``fold_in(key, s)``.
      skipped: int32 scalar, steps whose update was skipped (non-finite or huge loss).
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    key: jax.Array
    skipped: jax.Array

    @classmethod
    def create(cls, variables: dict, tx: optax.GradientTransformation, seed: int) -> TrainState:
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=variables["params"],
            batch_stats=variables["batch_stats"],
            opt_state=tx.init(variables["params"]),
            key=jax.random.key_data(jax.random.key(seed)),
            skipped=jnp.zeros((), jnp.int32),
        )


def winograd_default(model: Architecture) -> bool:
    """Whether a train step runs the large 3x3 convolutions as Winograd products by default: on the CPU
    backend, for float32 / float64 models. Measured on the 2-core development CPU with the paper model
    (batch 2, with the dot-product BatchNorm sums): phase a 2.38 -> 1.89 s per step together with those sums,
    Winograd alone about 10 % of the step's CPU time in both phases. GPU / TPU convolutions are faster
    than these matrix products; bfloat16 would round the transforms coarsely."""
    return jax.default_backend() == "cpu" and full_precision(model.dtype)


def loss_fn(
    model: Architecture, *, loss_cfg: LossConfig = DEFAULT_LOSS, winograd: bool = False, **phase: Any
):
    """``f(params, batch_stats, batch, key) -> (loss, (metrics, new_batch_stats))``: ``train_forward`` (with
    the keyword arguments ``phase``: ``backbone_trainable``, ``hnm``, ``stem_trainable``, ``frozen``,
    ``rd_pairs``) applied with mutable BatchNorm statistics, for ``jax.value_and_grad(has_aux=True)``.

    ``winograd``: the eligible 3x3 convolutions run as Winograd F(2x2, 3x3) products with kernels
    transformed from ``params`` inside ``f`` (``ops.winograd.transform_params``), so their gradients reach
    ``params`` through the transform; same values to float32 rounding (``tests/train/test_official_step.py``
    holds the official step's tolerances either way). A caller that runs ``f`` several times on the same
    parameters (BatchNorm groups) passes the transformed kernels once as ``kernels``."""
    method = functools.partial(train_forward, loss_cfg=loss_cfg, **phase)

    def f(params, batch_stats, batch, key, kernels=None):
        variables = {"params": params, "batch_stats": batch_stats}
        if winograd:
            variables[WINOGRAD] = transform_params(params) if kernels is None else kernels
        (loss, metrics), new = model.apply(variables, batch, key, method=method, mutable=["batch_stats"])
        return loss, (metrics, new["batch_stats"])

    return f


def reference_step(
    model: Architecture,
    variables: dict[str, Any],
    batch: dict[str, jax.Array],
    *,
    epoch: int,
    lr: float,
    key: jax.Array | None = None,
    train_cfg: Any = None,
    loss_cfg: LossConfig = DEFAULT_LOSS,
    winograd: bool | None = None,
) -> dict[str, Any]:
    """One official training step on one device (``tools/train.py``: forward, backward, clip, SGD), from a
    fresh optimiser state as the official code has at epoch 0 and at ``backbone_train_epoch``.

    Args:
      model: the network; it computes in ``model.dtype`` and the variables' dtype (float64 under x64:
        ``build_model(..., dtype="float64")`` with float64 variables).
      variables: ``{"params", "batch_stats"}``.
      batch: the ``forward`` module's batch (one device, one BatchNorm group); explicit ``pos_proposals`` /
        ``neg_proposals`` replace sampling and mining (the mining head pass still runs in HNM epochs).
      epoch: decides the phase as training does (``schedule.epoch_phase`` with ``train_cfg``'s epochs):
        backbone frozen before ``backbone_train_epoch``, hard-negative mining from ``hnm_epoch``.
      lr: the step's base learning rate (neck / head / relation detector); the trainable backbone gets
        ``backbone_lr_mult`` of it (0.1x).
      key: PRNG key of the on-device random choices (used by mining without explicit proposals).
      train_cfg: a config ``train`` section (``backbone_train_epoch``, ``hnm_epoch``, ``online_hnm``,
        ``momentum``, ``weight_decay``, ``clip_norm``, ``backbone_lr_mult``, ``stem_trainable``, ``frozen``,
        ``rd_pairs``); None: the paper config's.
      loss_cfg: loss weights.
      winograd: see ``loss_fn``; None: ``winograd_default(model)``, as ``make_train_step``.

    Returns:
      dict: ``losses`` (cls / loc / match / total), ``metrics`` (``match_acc``; ``grad_norm``, the global
      L2 norm of the raw gradients), ``grads`` (raw, before clipping, a param tree; frozen parameters get
      zeros, as the official step has none), ``params`` (after the update) and ``batch_stats`` (after the
      forward's updates).
    """
    if train_cfg is None:
        from siamrn_jax.config import load_config  # lazily: the packaged paper config, only when asked

        train_cfg = load_config("vot").train
    t = train_cfg
    phase = _phase(epoch, t)
    trainable = phase["backbone_trainable"]
    tx = make_optimizer(
        float(lr),
        trainable,
        t.momentum,
        t.weight_decay,
        t.clip_norm,
        t.backbone_lr_mult,
        stem_trainable=phase["stem_trainable"],
        frozen=phase["frozen"],
    )
    if winograd is None:
        winograd = winograd_default(model)
    f = jax.value_and_grad(loss_fn(model, loss_cfg=loss_cfg, winograd=winograd, **phase), has_aux=True)

    @jax.jit
    def step(variables, batch, key):
        params = variables["params"]
        (total, (metrics, stats)), grads = f(params, variables["batch_stats"], batch, key)
        grads = mask_frozen(grads, trainable, phase["stem_trainable"], phase["frozen"])
        updates, _ = tx.update(grads, tx.init(params), params)
        return {
            "losses": {
                "cls": metrics["cls"],
                "loc": metrics["loc"],
                "match": metrics["match"],
                "total": total,
            },
            "metrics": {"match_acc": metrics["match_acc"], "grad_norm": optax.tree.norm(grads)},
            "grads": grads,
            "params": optax.apply_updates(params, updates),
            "batch_stats": stats,
        }

    return step(variables, batch, jax.random.key(0) if key is None else key)


def _phase(epoch: int, t: Any) -> dict[str, Any]:
    """``train_forward``'s phase switches at ``epoch`` under the config ``train`` section ``t``."""
    trainable, hnm = epoch_phase(
        epoch, backbone_train_epoch=t.backbone_train_epoch, hnm_epoch=t.hnm_epoch, online_hnm=t.online_hnm
    )
    return {
        "backbone_trainable": trainable,
        "hnm": hnm,
        "stem_trainable": bool(t.stem_trainable),
        "frozen": tuple(t.frozen),
        "rd_pairs": t.rd_pairs,
    }


def _grouped(group_loss, bn_groups: int, winograd: bool):
    """``local_loss(params, batch_stats, batch, key)``: per-group losses [G], mean metrics and BN statistics
    of this device's batch, split into ``bn_groups`` BatchNorm groups (the Winograd kernels, with
    ``winograd``, transformed once for all groups)."""

    def local_loss(params, batch_stats, batch, key):
        if bn_groups == 1:
            loss, (metrics, stats) = group_loss(params, batch_stats, batch, key)
            return loss[None], metrics, stats
        groups = jax.tree.map(lambda a: a.reshape(bn_groups, a.shape[0] // bn_groups, *a.shape[1:]), batch)
        kernels = transform_params(params) if winograd else None
        loss, (metrics, stats) = jax.lax.map(
            lambda g: group_loss(params, batch_stats, g, key, kernels), groups
        )
        mean0 = functools.partial(jnp.mean, axis=0)
        return loss, jax.tree.map(mean0, metrics), jax.tree.map(mean0, stats)

    return local_loss


def make_train_step(
    model: Architecture,
    tx: optax.GradientTransformation,
    mesh: jax.sharding.Mesh,
    *,
    backbone_trainable: bool,
    hnm: bool,
    loss_cfg: LossConfig = DEFAULT_LOSS,
    reduction: str = "mean",
    bn_groups: int = 1,
    loss_limit: float = 1e4,
    stem_trainable: bool = False,
    frozen: tuple[str, ...] = (),
    rd_pairs: str = "contrastive",
    winograd: bool | None = None,
):
    """A jitted ``step(state, batch) -> (state, metrics)``.

    Args:
      model: the network.
      tx: the phase's optimiser (``optim.make_optimizer``).
      mesh: 1-D mesh with axis ``DATA_AXIS`` (``sharding.data_mesh``).
      backbone_trainable, hnm, loss_cfg, stem_trainable, frozen, rd_pairs: see ``forward.train_forward``.
      reduction: 'mean' (default) averages the per-device (and per-group) losses, hence gradients;
        'sum' sums them, as the official ``reduce_gradients`` does across GPUs (SPEC 8.6).
      bn_groups: BatchNorm groups per device (see the module docstring); must divide the per-device batch.
      loss_limit: updates are skipped when any device's loss is non-finite or above this.
      winograd: large 3x3 convolutions as Winograd products (``loss_fn``); None: ``winograd_default``.

    ``batch`` is a dict of global arrays sharded along axis 0 over ``DATA_AXIS`` (``forward`` module
    docstring). ``metrics`` are replicated scalars: ``loss`` (mean over devices), ``cls``, ``loc``,
    ``match``, ``match_acc``, ``grad_norm`` (of the reduced gradient, before clipping), ``ok``.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    # On a one-device mesh every collective is the identity: the step then runs without ``shard_map``,
    # whose gradient reduction XLA:CPU still executes as a copy of every gradient (~35 ms of a 3.7 s
    # ResNet-50 step on 2 CPU cores, issue 25). Same values: a collective over one device is the identity
    # (one device against eight: tests/train/test_train_runs.py, -m heavy).
    single = mesh.size == 1
    pmean, psum, pmin = (_identity,) * 3 if single else (jax.lax.pmean, jax.lax.psum, jax.lax.pmin)
    reduce = pmean if reduction == "mean" else psum

    winograd = winograd_default(model) if winograd is None else winograd
    group_loss = loss_fn(
        model,
        loss_cfg=loss_cfg,
        winograd=winograd,
        backbone_trainable=backbone_trainable,
        hnm=hnm,
        stem_trainable=stem_trainable,
        frozen=frozen,
        rd_pairs=rd_pairs,
    )
    local_loss = _grouped(group_loss, bn_groups, winograd)

    def per_device(state: TrainState, batch: dict[str, jax.Array]):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)

        def objective(params):
            losses, metrics, stats = local_loss(params, state.batch_stats, batch, key)
            local = jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)
            return reduce(local, DATA_AXIS), (losses, metrics, stats)

        (_, (losses, metrics, stats)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        # Skip when any group's loss fails the official test (each GPU checks its own loss there).
        ok_all = pmin(is_update_ok(losses, loss_limit).astype(jnp.int32), DATA_AXIS) > 0
        params, opt_state, ok = guarded_update(
            tx, grads, state.opt_state, state.params, losses, ok_fn=lambda _loss, _limit: ok_all
        )
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            batch_stats=pmean(stats, DATA_AXIS),
            opt_state=opt_state,
            skipped=state.skipped + (1 - ok.astype(jnp.int32)),
        )
        # Reported loss: the mean per BN group / device, whatever the gradient reduction.
        out = pmean({"loss": jnp.mean(losses), **metrics}, DATA_AXIS)
        # The norm the optimiser clips with: frozen parameters' gradients (conv1 / layer1 once the backbone
        # trains, which the optimiser drops) do not count, as in the official step.
        out["grad_norm"] = optax.tree.norm(mask_frozen(grads, backbone_trainable, stem_trainable, frozen))
        out["ok"] = ok
        return new_state, out

    if single:
        return jax.jit(per_device, donate_argnums=(0,))
    sharded = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=(0,))


def _identity(x, _axis_name):
    """A collective over a one-device mesh."""
    return x
