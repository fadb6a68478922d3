"""The official SiamRN learning-rate schedule (SPEC_OFFICIAL_SIAMRN.md §8.6).

pysot-family trainers set the LR once per epoch (``lr_scheduler.step(epoch)`` at each epoch boundary):

- warm-up "step" scheduler for ``warmup_epochs`` (W) epochs:
  ``lr_e = warmup_lr * (base_lr / warmup_lr) ** (e / W)``
  (0.001, 0.00138, 0.00190, 0.00263, 0.00362 with the defaults; 0.005 is never reached during warm-up);
- then "log" for the remaining ``total_epochs - W`` epochs:
  ``lr_e = base_lr * (end_lr / base_lr) ** ((e - W) / (total_epochs - W - 1))`` (``np.logspace`` with both
  end points: 0.005 at epoch 5 ... 0.00005 at epoch 19).

Parameter groups scale these values by their own multiplier (backbone 0.1x, see ``optim.py``).
Epochs past the end keep the last value.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["epoch_lr", "epoch_lr_table", "epoch_phase", "make_schedule"]


def epoch_lr(
    epoch: int,
    *,
    base_lr: float = 0.005,
    warmup_lr: float = 0.001,
    warmup_epochs: int = 5,
    end_lr: float = 0.00005,
    total_epochs: int = 20,
) -> float:
    """The official LR of (0-based) ``epoch`` as a host float (before any per-group multiplier)."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    e = min(int(epoch), total_epochs - 1)
    if e < warmup_epochs:
        return float(warmup_lr * (base_lr / warmup_lr) ** (e / warmup_epochs))
    n_log = total_epochs - warmup_epochs
    if n_log == 1:
        return float(base_lr)
    return float(base_lr * (end_lr / base_lr) ** ((e - warmup_epochs) / (n_log - 1)))


def epoch_phase(
    epoch: int, *, backbone_train_epoch: int = 10, hnm_epoch: int = 3, online_hnm: bool = True
) -> tuple[bool, bool]:
    """(backbone_trainable, hnm) of a (0-based) epoch: layer2-4 train from ``backbone_train_epoch`` (the
    official ``BACKBONE.TRAIN_EPOCH``), proposals are mined from ``hnm_epoch`` (``TRAIN.HNM_EPOCH``) when
    ``online_hnm``. The keyword defaults are the paper config's (``train`` section of the same names); the
    training loop's ``Plan.phase`` follows the same rule per step."""
    return epoch >= backbone_train_epoch, bool(online_hnm) and epoch >= hnm_epoch


def epoch_lr_table(**kwargs) -> np.ndarray:
    """``[epoch_lr(e) for e in range(total_epochs)]`` as float32 (same keyword arguments as ``epoch_lr``)."""
    total = kwargs.get("total_epochs", 20)
    return np.asarray([epoch_lr(e, **kwargs) for e in range(total)], np.float32)


def make_schedule(
    steps_per_epoch: int,
    *,
    base_lr: float = 0.005,
    warmup_lr: float = 0.001,
    warmup_epochs: int = 5,
    end_lr: float = 0.00005,
    total_epochs: int = 20,
    smooth: bool = False,
) -> optax.Schedule:
    """An optax schedule ``step -> lr`` (``step`` = optimizer step count, 0-based, over the whole run).

    ``smooth=False`` (default, exactly the official behaviour): piecewise constant, ``lr(step) =
    epoch_lr(step // steps_per_epoch)``.

    ``smooth=True`` (not official): per-step geometric interpolation between consecutive epoch values,
    ``lr = lr_e * (lr_{e+1} / lr_e) ** (frac)`` with ``e = step // steps_per_epoch`` and ``frac`` the fraction
    of epoch ``e`` done. It equals the step schedule exactly at every epoch start (``frac == 0``), rises
    smoothly through the warm-up (including the 0.00362 -> 0.005 jump into epoch 5) and decays log-linearly
    afterwards; in the last epoch (and beyond) it is constant at the last value.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    tbl = jnp.asarray(
        epoch_lr_table(
            base_lr=base_lr,
            warmup_lr=warmup_lr,
            warmup_epochs=warmup_epochs,
            end_lr=end_lr,
            total_epochs=total_epochs,
        )
    )
    n = total_epochs
    spe = int(steps_per_epoch)

    def step_schedule(count):
        count = jnp.asarray(count)
        e = jnp.clip(count // spe, 0, n - 1)
        return tbl[e]

    def smooth_schedule(count):
        count = jnp.asarray(count)
        e = jnp.clip(count // spe, 0, n - 1)
        frac = jnp.clip((count - e * spe).astype(jnp.float32) / spe, 0.0, 1.0)
        a = tbl[e]
        b = tbl[jnp.minimum(e + 1, n - 1)]
        return a * (b / a) ** frac

    return smooth_schedule if smooth else step_schedule
