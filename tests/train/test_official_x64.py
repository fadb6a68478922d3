"""The official training step in float64 (``train_seed0_f64.npz``: the same step run with ``model.double()``)
reproduced by ``reference_step`` on a float64 model (``build_model(..., dtype="float64")``, float64
variables): the check that sees a wrong small-gradient path, which float32 noise hides.

Tolerances (fixture README: the stored arrays are float32 roundings of float64 values, scalars float64):
every gradient key 1e-6 scale-relative (the small ones included), BatchNorm running statistics, parameters
after and updates 1e-6, losses 1e-10; the nine structurally-zero gradients <= 1e-10 of the global norm.
Measured: gradients <= 6e-8 (the float32 storage), losses <= 3e-16.
"""

from __future__ import annotations

import pytest

from tests.official_x64 import run

pytestmark = [pytest.mark.parity, pytest.mark.slow]


@pytest.mark.parametrize("phase", ["a", "b"])
def test_official_step_float64(figures, phase):
    f = figures[phase]
    print(f"\nofficial step float64, phase {phase}: worst")
    for name in ("grad", "grad_zero", "bn", "params", "update"):
        print(f"  {name:10s} {f[name][1]:.2e}  {f[name][0]}")
    print(f"  losses     {max(f['losses'].values()):.2e}  ({f['losses']})")
    assert f["dtypes"] == ["float64"]
    assert f["grad_keys"] > 100 and f["bn_keys"] == 154
    assert max(v for k, v in f["losses"].items() if k != "grad_norm") <= 1e-10, f["losses"]
    assert f["losses"]["grad_norm"] <= 1e-10
    assert f["grad"][1] <= 1e-6, f["grad"]
    assert f["grad_zero"][1] <= 1e-10, f["grad_zero"]
    assert f["bn"][1] <= 1e-6, f["bn"]
    assert f["params"][1] <= 1e-6, f["params"]
    assert f["update"][1] <= 1e-6, f["update"]


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    return run("train", tmp_path_factory.mktemp("x64") / "train.json")
