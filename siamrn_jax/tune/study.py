"""The tuning study: Optuna TPE over (penalty_k, window_influence, lr), batches of trials, ``best.json``.

Optuna (a dependency for this) keeps the study in an RDB storage (``sqlite:///study.db``, or any
SQLAlchemy URL), so a study resumes after a kill and several processes or hosts can work on it at once:
each asks for a batch of trials, tracks it (``siamrn_jax.tune.trials``) and tells the values back, until
the study holds ``target`` finished trials. Trial 0 is the preset the study starts from, so the best
found can never be worse than it on the tuning set.

The search space is the official ``tools/tune.py``'s: the three values uniform in [0.01, 1].
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy.exc  # Optuna's RDB storage is SQLAlchemy: its errors name a bad storage

from siamrn_jax.atomic import atomic_output
from siamrn_jax.errors import SiamrnError
from siamrn_jax.tune.trials import HYPER_NAMES

_LOG = logging.getLogger(__name__)

# Official tools/tune.py: trial.suggest_uniform(name, 0.01, 1.0) for all three.
SEARCH_RANGE = (0.01, 1.0)


def search_space(preset: dict[str, float]) -> dict[str, optuna.distributions.FloatDistribution]:
    """The official ranges, widened where the preset lies outside them (it is trial 0)."""
    lo, hi = SEARCH_RANGE
    return {
        n: optuna.distributions.FloatDistribution(min(lo, preset[n]), max(hi, preset[n])) for n in HYPER_NAMES
    }


_OPEN_ATTEMPTS = 5


def _schema_race(e: sqlalchemy.exc.SQLAlchemyError) -> bool:
    return isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)


class StudyError(SiamrnError, ValueError):
    """A storage that cannot be opened, or a study made for another objective or tuning set."""


def open_study(storage: str, name: str, setup: dict[str, Any], seed: int | None) -> optuna.Study:
    """Creates or loads study ``name`` in ``storage``; ``setup`` (checkpoint digest, objective, sequences,
    base preset) is stored with a new study and must match a loaded one, so trials of different setups
    never mix.

    TPE with ``constant_liar``: the trials of a batch (and of other processes) that are still running
    count as bad ones, so the batch spreads out instead of asking k times for the same point.
    """
    sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            # A generous SQLite lock timeout: processes sharing one file wait for each other's writes.
            rdb = optuna.storages.RDBStorage(storage, engine_kwargs=_engine_kwargs(storage))
            study = optuna.create_study(
                storage=rdb, study_name=name, direction="maximize", sampler=sampler, load_if_exists=True
            )
            break
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as e:
            # Processes started together race to create the schema (or the study): the loser gets an
            # IntegrityError (a row the other made) or "table ... already exists" (a table it made) and
            # opens what is there on the next attempt. Other operational errors (an unopenable file) are
            # not a race: reported at once.
            if not _schema_race(e):
                raise StudyError(
                    f"{storage}: cannot open the study storage ({type(e).__name__}: {e})"
                ) from None
            if attempt == _OPEN_ATTEMPTS - 1:
                raise StudyError(f"{storage}: the study storage stayed inconsistent") from None
            time.sleep(0.5 * (attempt + 1))
        except (ImportError, optuna.exceptions.OptunaError, sqlalchemy.exc.SQLAlchemyError) as e:
            # A missing database driver, a bad URL, an unreadable or foreign database file.
            raise StudyError(f"{storage}: cannot open the study storage ({type(e).__name__}: {e})") from None
    have = study.user_attrs.get("setup")
    if have is None:
        study.set_user_attr("setup", setup)
    elif have != setup:
        diff = sorted(k for k in set(have) | set(setup) if have.get(k) != setup.get(k))
        raise StudyError(
            f"{storage}: study {name!r} was made for another setup (differs in {', '.join(diff)}); "
            "use another --study-name or storage"
        )
    return study


def _engine_kwargs(storage: str) -> dict[str, Any]:
    return {"connect_args": {"timeout": 120}} if storage.startswith("sqlite") else {}


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's complete trials (of every process)."""
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def _pending(study: optuna.Study) -> int:
    states = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    return len(study.get_trials(deepcopy=False, states=states))


def enqueue_preset(study: optuna.Study, values: dict[str, float]) -> None:
    """The preset as the study's first trial (once, even when several processes start together: Optuna
    skips an enqueue whose values a trial of the study already has)."""
    study.enqueue_trial(values, user_attrs={"preset": True}, skip_if_exists=True)


def run(
    study: optuna.Study,
    space: dict[str, optuna.distributions.FloatDistribution],
    evaluate: Callable[[np.ndarray], list[float]],
    target: int,
    batch: int,
    on_batch: Callable[[optuna.Study], None] = lambda s: None,
    progress: Any = None,
) -> int:
    """Asks, evaluates and tells batches of up to ``batch`` trials until the study holds ``target``
    finished trials (counting those of other processes, and leaving room for their running ones).

    Args:
      space: ``search_space(preset)``.
      evaluate: [k, 3] (penalty_k, window_influence, lr) -> k objective values (NaN: failed trial).
      on_batch: called after every told batch (``write_outputs``: nothing is lost on a kill).
      progress: a tqdm-like bar (``update(n)``), or None.

    Returns:
      The number of trials this call evaluated.
    """
    done = 0
    while True:
        k = min(batch, target - len(finished(study)) - _pending(study))
        if k <= 0:
            return done
        trials = [study.ask(space) for _ in range(k)]
        for t in trials:  # who ran it: several processes or hosts may share the study
            t.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        hypers = np.array([[t.params[n] for n in HYPER_NAMES] for t in trials], np.float64)
        # skip_if_finished: two processes can both pop the same enqueued (WAITING) trial from one SQLite
        # study (seen in CI: the second tell raised "Cannot tell a COMPLETE trial" and killed its process);
        # the first tell stands, the same values evaluated twice.
        try:
            values = evaluate(hypers)
        except BaseException:
            for t in trials:  # a crash (or Ctrl-C) leaves no trial RUNNING forever
                study.tell(t, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
        for t, v in zip(trials, values, strict=True):
            if math.isfinite(v):
                study.tell(t, float(v), skip_if_finished=True)
            else:
                study.tell(t, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        done += k
        if progress is not None:
            progress.update(k)
        on_batch(study)


def best_record(study: optuna.Study) -> dict[str, Any]:
    """``best.json``: the preset-file format ``{"base", "params"}`` (read by ``track.py --preset FILE``
    and ``eval run --preset FILE``) plus the study's record: objective, best and preset values, trials."""
    setup = study.user_attrs["setup"]
    done = finished(study)
    if not done:
        raise StudyError(f"study {study.study_name!r}: no trial finished (every objective value was NaN)")
    best = max(done, key=lambda t: (t.value, -t.number))
    preset = [t for t in done if t.user_attrs.get("preset")]
    return {
        "base": setup["base"],
        # The preset file's other values (e.g. relation off) too: best.json reproduces the tuned tracker.
        "params": {**setup["fixed"], **{n: best.params[n] for n in HYPER_NAMES}},
        "objective": setup["objective"],
        "value": best.value,
        "trial": best.number,
        "preset_value": preset[0].value if preset else None,
        "trials": len(done),
        "study": study.study_name,
        "setup": setup,
    }


def write_outputs(study: optuna.Study, out: Path, plots: bool = True) -> dict[str, Any]:
    """Writes ``out`` (best.json, atomically) and, with ``plots``, ``history.png`` and
    ``importance.png`` beside it; returns the best record."""
    record = best_record(study)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    if plots:
        write_plots(study, out.parent)
    return record


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optimisation history and parameter importance (fANOVA) as PNG, via Optuna's matplotlib plots."""
    from optuna.visualization import matplotlib as oplt

    from siamrn_jax.eval.report import save_png

    written = []
    with warnings.catch_warnings():
        # Optuna marks its matplotlib backend experimental; the plots are only pictures of the study.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = oplt.plot_optimization_history(study)
        written.append(save_png(ax.figure, folder / "history.png"))
        if len(finished(study)) >= 2 and len({t.value for t in finished(study)}) > 1:
            ax = oplt.plot_param_importances(study)
            written.append(save_png(ax.figure, folder / "importance.png"))
        else:
            _LOG.info("parameter importance needs two trials with different values: importance.png skipped")
    return written
