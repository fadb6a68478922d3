"""VOT supervised evaluation (siamrn_jax.eval.vot) against EVALUATION.md §11.3-§11.6."""

from __future__ import annotations

import numpy as np
import pytest

from siamrn_jax.eval import vot

TOL = 1e-6

# ------------------------------------------------------------------------------------------------
# §11.3 overlaps
# ------------------------------------------------------------------------------------------------

G1 = [10, 10, 50, 10, 50, 40, 10, 40]
G_EDGE = [295, 195, 335, 195, 335, 245, 295, 245]
G_ROT = [98.2, 95.1, 151.7, 104.3, 146.9, 132.0, 93.4, 122.8]

OVERLAP_ROWS = [
    # pred, gt, bounds, pysot raster, continuous (clipped)
    ([10, 10, 40, 30], G1, (320, 240), 1.000000, 1.000000),
    ([10.5, 10.5, 40, 30], G1, (320, 240), 0.894188, 0.943713),
    ([12.3, 8.7, 35.2, 33.9], G1, (320, 240), 0.808316, 0.789663),
    ([300, 200, 40, 50], G_EDGE, (320, 240), 0.719900, 0.711111),
    ([300, 200, 40, 50], G_EDGE, (319, 239), 0.711111, 0.701705),
    ([100, 100, 50, 30], G_ROT, (320, 240), 0.769231, 0.778348),
    ([0, 0, 10, 10], [10, 0, 20, 0, 20, 10, 10, 10], (320, 240), 0.000000, 0.000000),
    ([-20, -10, 60, 40], [0, 0, 30, 0, 30, 20, 0, 20], (320, 240), 0.512195, 0.500000),
]


@pytest.mark.parametrize(("pred", "gt", "bounds", "raster", "cont"), OVERLAP_ROWS)
def test_overlap_table(pred, gt, bounds, raster, cont):
    assert vot.region_overlap(pred, gt, bounds) == pytest.approx(raster, abs=TOL)
    assert vot.continuous_overlap(pred, gt, bounds) == pytest.approx(cont, abs=TOL)


@pytest.mark.parametrize(
    ("a", "b", "bounds", "expected"),
    [
        ([0.5, 0.5, 10, 10], [0, 0, 10, 10], None, 0.704225),
        ([1.5, 2.5, 10, 10], [0, 0, 10, 10], None, 0.423529),
        ([0, 0, 0, 10], [0, 0, 10, 10], None, 0.0),
        ([-5, -5, 20, 20], [0, 0, 10, 10], (8, 8), 1.0),
        ([90, 70, 20, 20], [85, 65, 20, 20], (100, 80), 0.472656),
        ([90, 70, 20, 20], [85, 65, 20, 20], (99, 79), 0.444444),
    ],
)
def test_overlap_extra_pairs(a, b, bounds, expected):
    assert vot.region_overlap(a, b, bounds) == pytest.approx(expected, abs=TOL)


def test_overlap_codes_are_nan():
    assert np.isnan(vot.region_overlap(1, [0, 0, 10, 10]))
    assert np.isnan(vot.region_overlap([2], [0, 0, 10, 10]))
    assert np.isnan(vot.region_overlap([0, 0, 10, 10], [0]))


def test_overlap_properties():
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = np.r_[rng.uniform(-20, 300, 2), rng.uniform(1, 80, 2)]
        b = np.r_[a[:2] + rng.uniform(-30, 30, 2), rng.uniform(1, 80, 2)]
        for bounds in (None, (320, 240)):
            ab, ba = vot.region_overlap(a, b, bounds), vot.region_overlap(b, a, bounds)
            assert ab == ba
            assert 0.0 <= ab <= 1.0
        assert vot.continuous_overlap(a, b, (320, 240)) == pytest.approx(
            vot.continuous_overlap(b, a, (320, 240)), abs=1e-12
        )
    # identical boxes inside the bounds -> 1; also for polygons
    for box in ([10, 10, 40, 30], [12.3, 8.7, 35.2, 33.9], G_ROT):
        assert vot.region_overlap(box, box, (320, 240)) == 1.0
        assert vot.continuous_overlap(box, box, (320, 240)) == pytest.approx(1.0, abs=1e-12)
    # disjoint -> 0
    assert vot.region_overlap([0, 0, 10, 10], [50, 50, 10, 10], (320, 240)) == 0.0
    assert vot.region_overlap([0, 0, 10, 10], [0, 30, 10, 10]) == 0.0
    assert vot.continuous_overlap([0, 0, 10, 10], [50, 50, 10, 10], (320, 240)) == 0.0


def test_region_overlaps_vectorises_pairs():
    traj = [1, [10.5, 10.5, 40, 30], [0], [12.3, 8.7, 35.2, 33.9]]
    ov = vot.region_overlaps(traj, [G1] * 4, (320, 240))
    assert ov.dtype == np.float64 and ov.shape == (4,)
    assert np.isnan(ov[0]) and np.isnan(ov[2])
    np.testing.assert_allclose(ov[[1, 3]], [0.894188, 0.808316], atol=TOL)


# ------------------------------------------------------------------------------------------------
# §11.6 polygon -> init box
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "cxcywh", "init"),
    [
        (G_ROT, (122.55, 113.55, 50.103697, 32.079355), (97.998151, 98.010322, 50.103697, 32.079355)),
        (G1, (30, 25, 41, 31), (10, 10, 41, 31)),
        ([10, 10, 40, 30], (30, 25, 40, 30), (10.5, 10.5, 40, 30)),
    ],
)
def test_polygon_to_init_box(region, cxcywh, init):
    np.testing.assert_allclose(vot.polygon_to_center_size(region), cxcywh, atol=TOL)
    np.testing.assert_allclose(vot.polygon_to_init_box(region), init, atol=TOL)


# ------------------------------------------------------------------------------------------------
# §11.4 toy supervised run
# ------------------------------------------------------------------------------------------------

N_TOY = 40
SIZE_TOY = (320, 240)


def _toy_gt():
    out = []
    for i in range(N_TOY):
        x, y, w, h = 20 + 7 * i, 30 + 2 * i, 40, 30
        out.append([x, y, x + w, y, x + w, y + h, x, y + h])
    return out


def _toy_track(i):
    if i in (12, 30, 37):
        return [5, 200, 20, 20]
    x, y = 20 + 7 * i, 30 + 2 * i
    d = (i % 4) - 1.5
    return [x + d, y - d / 2, 40 + (i % 3), 30 - (i % 2)]


def _toy_run():
    inits, tracked = [], []

    def init_fn(t, box):
        inits.append((t, np.asarray(box).copy()))

    def track_fn(t):
        tracked.append(t)
        return _toy_track(t)

    traj = vot.run_supervised(init_fn, track_fn, N_TOY, _toy_gt(), SIZE_TOY)
    return traj, inits, tracked


def _codes(traj):
    return "".join(str(r) if isinstance(r, int) else "." for r in traj)


def test_toy_trajectory_codes():
    traj, inits, tracked = _toy_run()
    assert _codes(traj) == "1...........200001............200001.200"
    assert [t for t, _ in inits] == [0, 17, 35]
    gt = _toy_gt()
    for t, box in inits:
        np.testing.assert_allclose(box, vot.polygon_to_init_box(gt[t]))
    # tracker never called on init or skipped frames
    assert set(tracked) == {t for t, r in enumerate(traj) if not isinstance(r, int) or r == 2}
    assert traj[1] == [26.5, 32.25, 41.0, 29.0]
    assert vot.failure_frames(traj) == [12, 30, 37]


def test_supervised_run_by_hand_equals_run_supervised_and_refuses_frames_out_of_order():
    # The tuner drives SupervisedRun frame by frame for each row of a batch; that must give the trajectory
    # run_supervised gives, and a skipped or repeated frame must not pass silently.
    run = vot.SupervisedRun(_toy_gt(), SIZE_TOY)
    actions = []
    for t in range(N_TOY):
        actions.append(run.action(t))
        if actions[-1] == "track":
            run.record(t, _toy_track(t))
    assert run.trajectory == _toy_run()[0]
    assert "".join(a[0] for a in actions) == "i" + "t" * 12 + "ssss" + "i" + "t" * 13 + "ssss" + "ittss"
    with pytest.raises(RuntimeError, match="out of order"):
        vot.SupervisedRun(_toy_gt(), SIZE_TOY).action(1)


def test_toy_accuracy_robustness():
    traj, _, _ = _toy_run()
    res = vot.accuracy_robustness([[traj]], [_toy_gt()], [SIZE_TOY])
    assert res["failures"].tolist() == [[3]]
    assert res["lost_number"] == 3
    assert res["accuracy"] == pytest.approx(0.877333, abs=TOL)
    assert res["robustness"] == pytest.approx(7.5, abs=TOL)
    assert vot.vot_toolkit_robustness(res["failures"], [N_TOY]) == pytest.approx(3.0, abs=TOL)
    # the listed accuracy frames; every other frame is excluded
    ov = res["frame_overlaps"][0]
    listed = {10: 0.930233, 11: 0.790909, 27: 0.825547, 28: 0.915860, 29: 0.924117}
    for t, v in listed.items():
        assert ov[t] == pytest.approx(v, abs=TOL)
    valid = set(np.flatnonzero(~np.isnan(ov)).tolist())
    assert valid == set(listed)
    np.testing.assert_allclose(vot.accuracy_overlaps(traj, _toy_gt(), SIZE_TOY), ov, atol=0, equal_nan=True)


EAO_INPUTS = (
    "nan .945427 .909091 .825547 .915860 .924117 .952381 .807857 .895196 .967742 .930233 .790909 "
    + "nan " * 6
    + ".952381 .807857 .895196 .967742 .930233 .790909 .894188 .945427 .909091 .825547 .915860 .924117 "
    + "nan " * 6
    + ".894188 nan nan nan"
)

PHI = (
    "1 .930665 .751491 .692187 .676107 .907345 .901395 .894199 .897463 .902013 .899601 .895400 .859288 "
    ".793189 .736532 .687430 .644466 .606556 .572859 .542708 .515573 .491022 .468702 .448324 .429644 "
    ".412458 .396594 .381906 .368266 .355567 .343715 .332628 .322233 .312468 .303278 .294613 .286429 "
    ".278688 .271354 .264396"
)


def test_toy_eao_inputs():
    traj, _, _ = _toy_run()
    expected = np.array([float(v) for v in EAO_INPUTS.split()])
    assert expected.shape == (N_TOY,)
    got = vot.eao_overlaps(traj, _toy_gt(), SIZE_TOY)
    np.testing.assert_allclose(got, expected, atol=TOL, equal_nan=True)


def test_toy_phi_and_eao():
    traj, _, _ = _toy_run()
    expected = np.array([float(v) for v in PHI.split()])
    phi = vot.expected_overlap_curve([[traj]], [_toy_gt()], [SIZE_TOY])
    assert phi.dtype == np.float32 and phi.shape == (N_TOY,)
    np.testing.assert_allclose(phi, expected, atol=TOL)
    assert vot.eao_from_curve(phi, (5, 30)) == pytest.approx(0.641716, abs=TOL)
    assert vot.eao([[traj]], [_toy_gt()], [SIZE_TOY], (5, 30)) == pytest.approx(0.641716, abs=TOL)
    # legacy run weighting is identical with one run per sequence
    legacy = vot.expected_overlap_curve([[traj]], [_toy_gt()], [SIZE_TOY], run_weighting="legacy")
    np.testing.assert_array_equal(phi, legacy)


# ------------------------------------------------------------------------------------------------
# §11.5 full-size EAO on synthetic trajectories
# ------------------------------------------------------------------------------------------------


def _synthetic(n, failures):
    ov = np.full(n, 0.6)
    codes = np.full(n, -1)
    codes[0] = 1
    for f in failures:
        codes[f] = 2
        codes[f + 1 : f + 5] = 0
        if f + 5 < n:
            codes[f + 5] = 1
    ov[codes >= 0] = np.nan
    return ov, list(failures)


SYNTH = [_synthetic(300, [50, 180]), _synthetic(500, []), _synthetic(200, [120])]


@pytest.mark.parametrize(
    ("interval", "expected"),
    [("VOT2016", 0.356170), ("VOT2018", 0.366801), ("VOT2019", 0.432272), ((100, 356), 0.366801)],
)
def test_full_size_eao(interval, expected):
    phi = vot.expected_overlap_curve_from_overlaps([o for o, _ in SYNTH], [f for _, f in SYNTH])
    assert phi.shape == (500,)
    assert vot.eao_from_curve(phi, interval) == pytest.approx(expected, abs=TOL)


def test_eao_intervals():
    assert vot.EAO_INTERVALS["VOT2016"] == (108, 371)
    assert vot.EAO_INTERVALS["VOT2017"] == vot.EAO_INTERVALS["VOT2018"] == (100, 356)
    assert vot.EAO_INTERVALS["VOT2019"] == (46, 291)


def test_full_size_via_trajectories():
    # The §11.5 failure pattern end-to-end through trajectories (perfect boxes): lost number 3,
    # robustness 100 * 3 / 1000.
    trajs, gts, sizes = [], [], []
    for n, fails in ((300, [50, 180]), (500, []), (200, [120])):
        t: list = [[0.0, 0.0, 10.0, 10.0]] * n
        t[0] = 1
        for f in fails:
            t[f] = 2
            for k in range(f + 1, min(f + 5, n)):
                t[k] = 0
            if f + 5 < n:
                t[f + 5] = 1
        trajs.append([t])
        gts.append([[0.0, 0.0, 10.0, 10.0]] * n)
        sizes.append((100, 100))
    res = vot.accuracy_robustness(trajs, gts, sizes)
    assert res["lost_number"] == 3
    assert res["robustness"] == pytest.approx(0.3, abs=TOL)
    assert res["accuracy"] == pytest.approx(1.0, abs=TOL)


# ------------------------------------------------------------------------------------------------
# Result text
# ------------------------------------------------------------------------------------------------


def test_format_parse_roundtrip():
    res = [1, [26.5, 32.25, 41.0, 29.0], 2, 0, 0, [0.123456, -1.0, 3.0, 4.5], [1]]
    text = vot.format_vot_results(res)
    assert text == "1\n26.5000,32.2500,41.0000,29.0000\n2\n0\n0\n0.1235,-1.0000,3.0000,4.5000\n1\n"
    back = vot.parse_vot_results(text)
    assert back[0] == 1 and back[2] == 2 and back[3] == 0 and back[6] == 1
    assert back[1] == [26.5, 32.25, 41.0, 29.0]
    assert back[5] == [0.1235, -1.0, 3.0, 4.5]
    assert vot.parse_vot_results("1\n\n1.5\t2,3 4\n") == [1, [1.5, 2.0, 3.0, 4.0]]


def test_toy_results_text_roundtrip_keeps_metrics():
    traj, _, _ = _toy_run()
    back = vot.parse_vot_results(vot.format_vot_results(traj))
    assert _codes(back) == _codes(traj)
    res = vot.accuracy_robustness([[back]], [_toy_gt()], [SIZE_TOY])
    assert res["accuracy"] == pytest.approx(0.877333, abs=TOL)
