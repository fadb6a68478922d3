"""Shared test fixtures: paths to ../shared, the official parity weights, small models."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest

from siamrn_jax.xla_flags import apply_default_xla_flags

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PARITY = SHARED / "fixtures" / "parity"
# Third-party NanoTrack weights (Apache-2.0): read from ../shared only, never copied into the repository.
NANOTRACK = SHARED / "models" / "nanotrack"
needs_nanotrack = pytest.mark.skipif(
    not (NANOTRACK / "v2.pth").is_file(),
    reason=f"{NANOTRACK}: NanoTrack weights not here (third-party files, never in the repository)",
)

# The XLA flags users get from track.py (parity holds with and without them; see siamrn_jax/xla_flags.py).
apply_default_xla_flags()

# Persistent XLA cache: the full-size model compiles once per machine, not once per test run.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")


def require_parity_fixtures() -> Path:
    if not (PARITY / "expected.npz").is_file():
        pytest.fail(f"{PARITY}: parity fixtures not found (tests expect ../shared beside the repo)")
    return PARITY


def parity_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    """The official-code random weights of ``fixtures/parity/README.md`` ("Weights: recipe")."""
    rows = [line.split("\t") for line in (require_parity_fixtures() / "keys.txt").read_text().splitlines()]
    keys_shapes = [(k, tuple(int(d) for d in re.findall(r"\d+", s))) for k, s, _ in rows]
    bn = {k[: -len(".running_mean")] for k, _ in keys_shapes if k.endswith(".running_mean")}
    level_vectors = {"head.cls_weight", "head.loc_weight", "head.loc_scale", "multi_det.matching_weight"}
    bn_ranges = {
        "weight": (0.5, 1.5),
        "bias": (-0.1, 0.1),
        "running_mean": (-0.1, 0.1),
        "running_var": (0.5, 1.5),
    }
    sd = {}
    for i, (k, shape) in enumerate(keys_shapes):
        rs = np.random.RandomState(seed * 100000 + i)
        parent, leaf = k.rsplit(".", 1)

        def u(a, b, rs=rs, shape=shape):
            return rs.uniform(a, b, size=shape)

        if leaf == "num_batches_tracked":
            sd[k] = np.zeros((), np.int64)
            continue
        if k == "backbone.bn1.running_var":
            a = u(0.5, 1.5) * 1e4
        elif re.match(r"backbone\.layer\d\.\d+\.bn3\.weight$", k):
            a = u(0.1, 0.3)
        elif k in level_vectors:
            a = u(0.5, 1.5)
        elif parent in bn:
            a = u(*bn_ranges[leaf])
        elif leaf == "weight":
            a = u(-1, 1) * np.sqrt(3) * np.sqrt(2 / np.prod(shape[1:]))
            if re.match(r"head\.box\d\.cls\.head\.3\.weight$", k):
                a *= 2e-3
            if re.match(r"head\.box\d\.loc\.head\.3\.weight$", k):
                a *= 5e-4
            if re.match(r"multi_det\.\w+\.fc\.weight$", k):
                a *= 1e-4
        elif re.match(r"head\.box\d\.loc\.head\.3\.bias$", k):
            a = u(2.5, 3.0)
        else:
            a = u(-0.1, 0.1)
        sd[k] = a.astype(np.float32)
    return sd


@pytest.fixture(scope="session")
def parity_expected():
    return dict(np.load(require_parity_fixtures() / "expected.npz"))


@pytest.fixture(scope="session")
def parity_sd():
    return parity_state_dict(0)


@pytest.fixture(autouse=True)
def _restore_logging():
    """Commands run in-process configure console logging for the whole process (``log_config.configure``:
    root handler and level, absl / orbax / jax levels); put it back after each test so that one command's
    INFO console does not leak into the next test's captured stderr."""
    names = ("", "absl", "orbax", "jax")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level) for n in names}
    yield
    for n, (handlers, level) in saved.items():
        logging.getLogger(n).handlers[:] = handlers
        logging.getLogger(n).setLevel(level)
