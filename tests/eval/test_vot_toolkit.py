"""vot-toolkit (Python 0.7.x-0.9.0) variants (siamrn_jax.eval.vot.toolkit) vs EVALUATION.md §11.3-§11.5."""

from __future__ import annotations

import numpy as np
import pytest

from siamrn_jax.eval.vot import toolkit as vt
from tests.eval.test_vot import G1, G_EDGE, G_ROT, N_TOY, SIZE_TOY, _synthetic, _toy_gt, _toy_run

TOL = 1e-6

# ------------------------------------------------------------------------------------------------
# §11.3 overlaps, column "vot-toolkit raster"
# ------------------------------------------------------------------------------------------------

TOOLKIT_ROWS = [
    ([10, 10, 40, 30], G1, (320, 240), 0.944138),
    ([10.5, 10.5, 40, 30], G1, (320, 240), 0.944138),
    ([12.3, 8.7, 35.2, 33.9], G1, (320, 240), 0.788517),
    ([300, 200, 40, 50], G_EDGE, (320, 240), 0.711111),
    ([300, 200, 40, 50], G_EDGE, (319, 239), 0.701705),
    ([100, 100, 50, 30], G_ROT, (320, 240), 0.778736),
    ([0, 0, 10, 10], [10, 0, 20, 0, 20, 10, 10, 10], (320, 240), 0.000000),
    ([-20, -10, 60, 40], [0, 0, 30, 0, 30, 20, 0, 20], (320, 240), 0.542500),
]


@pytest.mark.parametrize(("pred", "gt", "bounds", "expected"), TOOLKIT_ROWS)
def test_toolkit_overlap_table(pred, gt, bounds, expected):
    assert vt.region_overlap_toolkit(pred, gt, bounds) == pytest.approx(expected, abs=TOL)


def test_toolkit_overlap_rules():
    # box = round(w) x round(h) pixels from round(x), round(y); polygon corners inclusive
    assert vt.region_overlap_toolkit([0, 0, 10, 10], [0, 0, 10, 10], (320, 240)) == 1.0
    assert vt.region_overlap_toolkit([0, 0, 10, 10], [0, 0, 10, 0, 10, 10, 0, 10]) == pytest.approx(100 / 121)
    # half-to-even: 0.5 -> 0, 1.5 -> 2
    assert vt.region_overlap_toolkit([0.5, 0.5, 10, 10], [0, 0, 10, 10]) == 1.0
    assert vt.region_overlap_toolkit([1.5, 0, 10, 10], [0, 0, 10, 10]) == pytest.approx(80 / 120)
    # codes overlap 0; two empty regions overlap 1; one empty region overlaps 0
    assert vt.region_overlap_toolkit(1, [0, 0, 10, 10]) == 0.0
    assert vt.region_overlap_toolkit([0, 0, 10, 10], [2]) == 0.0
    assert vt.region_overlap_toolkit([0, 0, 0, 10], [5, 5, 10, 0], (320, 240)) == 1.0
    assert vt.region_overlap_toolkit([0, 0, 0, 10], [0, 0, 10, 10], (320, 240)) == 0.0
    ov = vt.region_overlaps_toolkit([1, [10.5, 10.5, 40, 30], [0]], [G1] * 3, (320, 240))
    assert ov.dtype == np.float64
    np.testing.assert_allclose(ov, [0.0, 0.944138, 0.0], atol=TOL)


def test_toolkit_overlap_symmetric_and_bounded():
    rng = np.random.default_rng(0)
    for _ in range(40):
        a = np.r_[rng.uniform(-20, 300, 2), rng.uniform(1, 80, 2)]
        b = np.r_[a[:2] + rng.uniform(-30, 30, 2), rng.uniform(1, 80, 2)]
        for bounds in (None, (320, 240)):
            ab = vt.region_overlap_toolkit(a, b, bounds)
            assert ab == vt.region_overlap_toolkit(b, a, bounds)
            assert 0.0 <= ab <= 1.0
    assert vt.region_overlap_toolkit(G_ROT, G_ROT, (320, 240)) == 1.0


# ------------------------------------------------------------------------------------------------
# §11.4 toy supervised run, column "vot-toolkit"
# ------------------------------------------------------------------------------------------------


def test_toy_accuracy_robustness_toolkit():
    traj, _, _ = _toy_run()
    res = vt.accuracy_robustness_toolkit([[traj]], [_toy_gt()], [SIZE_TOY])
    assert res["sequence_failures"].tolist() == [3.0]
    assert res["lengths"].tolist() == [N_TOY]
    assert res["accuracy"] == pytest.approx(0.886764, abs=TOL)
    assert res["robustness"] == pytest.approx(3.0, abs=TOL)
    acc, kept = vt.sequence_accuracy_toolkit(traj, _toy_gt(), SIZE_TOY)
    assert acc == pytest.approx(0.886764, abs=TOL)
    assert kept == 5  # frames 10, 11, 27, 28, 29


def test_toy_eao_toolkit():
    traj, _, _ = _toy_run()
    curve = vt.eao_curve_toolkit([[traj]], [_toy_gt()], [SIZE_TOY])
    assert curve.shape == (13,)  # longest fragment: [17, 30)
    assert vt.eao_from_curve_toolkit(curve, (5, 30)) == pytest.approx(0.628937, abs=TOL)
    assert vt.eao_toolkit([[traj]], [_toy_gt()], [SIZE_TOY], (5, 30)) == pytest.approx(0.628937, abs=TOL)


# ------------------------------------------------------------------------------------------------
# §11.5 full-size EAO, column "vot-toolkit Python EAO"
# ------------------------------------------------------------------------------------------------

SPECS = [(300, [50, 180]), (500, []), (200, [120])]


def _inits(n, failures):
    return [0] + [f + 5 for f in failures if f + 5 < n]


@pytest.mark.parametrize(("interval", "expected"), [("VOT2018", 0.365764), ("VOT2019", 0.431054)])
def test_full_size_eao_toolkit(interval, expected):
    ovs, fls, its = [], [], []
    for n, fails in SPECS:
        ov, fl = _synthetic(n, fails)
        ovs.append(ov)
        fls.append(fl)
        its.append(_inits(n, fails))
    curve = vt.eao_curve_toolkit_from_overlaps(ovs, fls, its)
    assert curve.shape == (500,)
    assert vt.eao_from_curve_toolkit(curve, interval) == pytest.approx(expected, abs=TOL)
