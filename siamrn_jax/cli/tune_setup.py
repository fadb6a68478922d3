"""What a tuning run needs from its arguments: the model, the tuning set, the starting preset, the study's
storage and identity (``setup``), and the batched objective."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from siamrn_jax.tune.trials import HYPER_NAMES


class Job(NamedTuple):
    """A prepared tuning run.

    Attributes:
      storage: the Optuna storage URL.
      setup: what identifies the study (stored with it; a study of another setup is refused).
      preset_values: the starting point, trial 0 (``HYPER_NAMES`` -> value).
      evaluate: [k, 3] trial values -> k objective values.
    """

    storage: str
    setup: dict[str, Any]
    preset_values: dict[str, float]
    evaluate: Callable[[np.ndarray], list[float]]


def _base_and_fixed(preset: str | None, model: Any) -> tuple[str, dict[str, Any]]:
    """(base preset name, the other values a preset file sets): what best.json must carry besides the three
    tuned values so that it reproduces the tuning run's tracker."""
    from siamrn_jax.tracking.params import is_preset_file, own_preset, read_preset_file

    if preset is not None and is_preset_file(preset):
        base, values = read_preset_file(preset)
        fixed = {k: v for k, v in values.items() if k not in HYPER_NAMES}
        return base or own_preset(model), fixed
    return preset or own_preset(model), {}


def prepare(a: Any) -> Job:
    """Loads weights and sequences (every error is one of ours, before the study is touched)."""
    from siamrn_jax import checkpoint
    from siamrn_jax.eval import provenance
    from siamrn_jax.eval.registry import available, load_benchmark
    from siamrn_jax.io.sources import InputError
    from siamrn_jax.sharding import ShardingError, local_data_mesh
    from siamrn_jax.tracking.params import TrackerParams
    from siamrn_jax.tune import trials

    if a.protocol == "vot" and a.devices not in (None, 1):
        raise ShardingError(f"--devices {a.devices}: the VOT protocol's batched restarts run on one device")
    mesh = None if a.devices in (None, 1) else local_data_mesh(a.devices)
    if mesh is not None and (a.rows or a.batch) % mesh.size:
        raise ShardingError(f"--rows/--batch must be a multiple of --devices {a.devices}")
    model, variables, _ = checkpoint.load_weights(a.checkpoint)
    params = TrackerParams.for_model(model, a.preset)
    base, fixed = _base_and_fixed(a.preset, model)
    if a.benchmark not in available():
        raise InputError(f"unknown benchmark {a.benchmark!r} (known: {', '.join(available())})")
    seqs = load_benchmark(a.benchmark, a.root, a.sequences)
    if not seqs:
        raise InputError(f"{a.root}: no sequences to tune on")
    if a.protocol == "vot":
        from siamrn_jax.eval.vot import EAO_INTERVALS

        lo = EAO_INTERVALS[a.eao_interval][0]
        if max(len(s) for s in seqs) < lo:
            raise InputError(
                f"{a.root}: EAO ({a.eao_interval}) needs sequences of at least {lo} frames, the longest "
                f"here has {max(len(s) for s in seqs)}"
            )
    path = checkpoint.resolve_spec(a.checkpoint).where
    objective = "EAO" if a.protocol == "vot" else "AUC"
    setup = {
        "checkpoint_sha256": provenance.checkpoint_digest(path),
        "benchmark": a.benchmark,
        "sequences": [s.name for s in seqs],
        "protocol": a.protocol,
        "objective": f"{objective} ({a.eao_interval})" if a.protocol == "vot" else objective,
        "base": base,
        "fixed": fixed,
        # Every tracker setting but the three tuned ones (relation detector, crop geometry ...).
        "tracker": {k: v for k, v in dataclasses.asdict(params).items() if k not in HYPER_NAMES},
    }

    def evaluate(hypers: np.ndarray) -> list[float]:
        if a.protocol == "vot":
            runs = trials.vot_supervised_trials(model, variables, params, seqs, hypers, a.rows)
            return [trials.vot_eao(t, seqs, a.eao_interval) for t in runs]
        boxes = trials.track_ope(model, variables, params, seqs, hypers, a.rows, mesh)
        return [trials.ope_auc(b, seqs) for b in boxes]

    storage = a.storage or f"sqlite:///{(a.out.parent / 'study.db').absolute()}"
    if storage.startswith("sqlite:///"):
        (a.out.parent if a.storage is None else _sqlite_folder(storage)).mkdir(parents=True, exist_ok=True)
    preset_values = {k: float(getattr(params, k)) for k in HYPER_NAMES}
    return Job(storage, setup, preset_values, evaluate)


def _sqlite_folder(url: str):
    from pathlib import Path

    return Path(url.removeprefix("sqlite:///")).absolute().parent
