"""Where a results folder came from: ``<results>/<tracker>/provenance.json``.

``eval run`` records the weights (checkpoint path and a SHA-256 of its files, or the config and seed of
random weights), the tracker parameters, the protocol and the siamrn-jax version before it tracks anything.
Resuming into a folder made with other weights, parameters or protocol would silently mix two trackers'
results, so it is an error unless ``--overwrite`` (which starts the folder afresh).

In a multi-process run process 0 alone ``claim``s the folder (it may empty it); after a barrier the other
processes ``check`` that the record it wrote is the one they would have written, so a process started with
other weights or parameters stops before it writes anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from siamrn_jax.atomic import atomic_output
from siamrn_jax.io.sources import InputError
from siamrn_jax.tracking.params import TrackerParams

FILE = "provenance.json"
_COMPARED = ("weights", "tracker_params", "protocol")  # what must match to resume (not the version)


def checkpoint_digest(directory: str | os.PathLike) -> str:
    """SHA-256 over a checkpoint directory's files (relative paths and contents, in sorted order)."""
    root = Path(directory)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def record(weights: dict[str, Any], params: TrackerParams, protocol: str, origin: str = "") -> dict[str, Any]:
    """The provenance of a run: ``weights`` (what identifies them: ``{"checkpoint_sha256": ...}``), the
    tracker parameters, the protocol, the package version and ``origin`` (e.g. the checkpoint path: shown,
    not compared, so a moved checkpoint still resumes)."""
    import siamrn_jax

    return {
        "weights": weights,
        "tracker_params": dataclasses.asdict(params),
        "protocol": protocol,
        "siamrn_jax": siamrn_jax.__version__,
        "origin": origin,
    }


def claim(folder: str | os.PathLike, new: dict[str, Any], overwrite: bool = False) -> None:
    """Makes ``folder`` the results folder of the run ``new`` describes.

    Raises:
      InputError: the folder holds results of another run (other weights, parameters or protocol) or of
        unknown provenance, and ``overwrite`` is False. With ``overwrite`` the folder is emptied first.
    """
    folder = Path(folder)
    path = folder / FILE
    old = _read(path)
    has_results = folder.is_dir() and any(p.name != FILE for p in folder.iterdir())
    if not overwrite:
        if old is not None:
            _compare(folder, old, new)
        elif has_results:
            raise InputError(f"{folder}: holds results without {FILE}; pass --overwrite or another --name")
    elif folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(new, indent=2, sort_keys=True))


def check(folder: str | os.PathLike, new: dict[str, Any]) -> None:
    """Checks, without writing, that ``folder`` was claimed for the run ``new`` describes (the other
    processes of a multi-process run, after process 0's ``claim``).

    Raises:
      InputError: no record (e.g. ``--results`` is not on a filesystem every process sees), a corrupt one,
        or the record of another run.
    """
    folder = Path(folder)
    old = _read(folder / FILE)
    if old is None:
        raise InputError(
            f"{folder}: no {FILE} after process 0 claimed the folder; every process must see the same "
            "--results (a shared filesystem)"
        )
    _compare(folder, old, new, "this process was started for another run")


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as e:  # not JSON, or not UTF-8 text
        raise InputError(f"{path}: corrupt provenance record ({e}); use --overwrite") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: corrupt provenance record (not a JSON object); use --overwrite")
    return data


def _compare(folder: Path, old: dict[str, Any], new: dict[str, Any], hint: str = "") -> None:
    diff = [k for k in _COMPARED if old.get(k) != new.get(k)]
    if diff:
        why = hint or "pass --overwrite to start it afresh, or another --name"
        raise InputError(f"{folder}: results of another run (different {', '.join(diff)}); {why}")
