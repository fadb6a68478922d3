"""Per-attribute VOT scores (siamrn_jax.eval.vot.tags): a constructed run with hand-computed values, and
the shared VOT ``bag`` sequence, where tag ``all`` must reproduce the overall scores."""

from __future__ import annotations

import numpy as np
import pytest

from siamrn_jax.eval import vot
from siamrn_jax.eval.registry import load_benchmark
from siamrn_jax.eval.vot import tags as vot_tags
from tests.conftest import SHARED

N, SIZE = 30, (100, 100)
GT = [[10, 10, 20, 20]] * N  # x, y, w, h
HALF = [20, 10, 20, 20]  # shifted by half a width
# VOT rasterises a box x .. x + w inclusive (21 x 21 pixels here): intersection 11 x 21, union 31 x 21.
H = 11 / 31


def _trajectory():
    """init 0, exact boxes 1-11, failure at 12, skipped 13-16, re-init 17, half-overlapping boxes 18-29."""
    traj = [[vot.CODE_INIT]] + [list(GT[0])] * 11 + [[vot.CODE_FAILURE]] + [[vot.CODE_SKIP]] * 4
    return traj + [[vot.CODE_INIT]] + [list(HALF)] * 12


def _mask(frames):
    m = np.zeros(N, bool)
    m[list(frames)] = True
    return m


TAGS = {
    "occlusion": _mask([11, 12, 13, 27]),
    "size_change": _mask([28, 29]),
    "motion_change": _mask([10]),
    "camera_motion": _mask(range(14, 21)),
    # illum_change: no file, no frame
}


def _eao_by_hand(w_a: float, w_b: float, lo: int = 2, hi: int = N) -> float:
    """Fragment A = frames 0-17 (overlaps 1 at 1-11, 0 elsewhere, zero-extended), weight w_a; fragment B =
    frames 17-29 (H after its init frame, unknown past 13 frames), weight w_b. Phi(n) for n = i + 1;
    a length whose alive rows all weigh 0 is unknown (NaN) and skipped by the EAO mean."""
    phi = []
    for n in range(lo, hi + 1):
        i = n - 1
        mean_a = min(i, 11) / i
        if i <= 12:
            phi.append((w_a * mean_a + w_b * H) / (w_a + w_b))
        else:
            phi.append(mean_a if w_a > 0 else np.nan)
    return float(np.nanmean(phi))


def test_constructed_case_hand_computed():
    assert vot.region_overlap(HALF, GT[0], SIZE) == pytest.approx(H, abs=1e-7)
    assert vot.region_overlap(HALF, GT[0], (SIZE[0] - 1, SIZE[1] - 1)) == pytest.approx(H, abs=1e-7)
    scores = vot_tags.tag_scores([[_trajectory()]], [GT], [SIZE], [TAGS], (2, N))
    # accuracy frames (burn-in 10 after each init): 10, 11 (overlap 1) and 27-29 (H)
    assert scores["all"] == pytest.approx((N, (2 + 3 * H) / 5, 1.0, 100 / N, _eao_by_hand(1.0, 1.0)))
    occ = scores["occlusion"]  # frames 11 (1), 12 (failure), 13 (skipped), 27 (H)
    assert (occ.frames, occ.failures) == (4, 1.0)
    assert occ.accuracy == pytest.approx((1 + H) / 2) and occ.robustness == pytest.approx(25.0)
    assert occ.eao == pytest.approx(_eao_by_hand(3 / 18, 1 / 13))  # 3 of A's 18 frames, 1 of B's 13
    size = scores["size_change"]
    assert (size.frames, size.failures, size.robustness) == (2, 0.0, 0.0)
    assert size.accuracy == pytest.approx(H)
    assert size.eao == pytest.approx(_eao_by_hand(0.0, 2 / 13))  # only fragment B: Phi = H, then NaN
    assert scores["motion_change"].accuracy == pytest.approx(1.0)
    cam = scores["camera_motion"]  # frames 14-20: skipped / burn-in only
    assert cam.frames == 7 and np.isnan(cam.accuracy) and cam.failures == 0.0
    illum = scores["illum_change"]
    assert illum.frames == 0 and all(np.isnan(v) for v in (illum.accuracy, illum.robustness, illum.eao))
    empty = scores["empty"]  # 0-9 and 21-26: burn-in, no accuracy frame, no failure
    assert empty.frames == 16 and np.isnan(empty.accuracy) and empty.failures == 0.0


def test_frame_tags_completes_all_and_empty():
    masks = vot_tags.frame_tags({"occlusion": [1, 0, 0], "size_change": [0, 0, 1]}, 3)
    assert list(masks) == list(vot_tags.TAG_NAMES)
    assert masks["all"].tolist() == [True] * 3 and masks["illum_change"].tolist() == [False] * 3
    assert masks["empty"].tolist() == [False, True, False]


def test_bag_tag_all_is_the_overall_score_and_tags_partition_failures():
    root = SHARED / "data" / "vot"
    assert root.is_dir(), f"{root}: shared VOT data not found (CI always has ../shared)"
    (bag,) = load_benchmark("vot2018", root, ["bag"])
    gt = list(bag.groundtruth)
    traj = [list(r) for r in gt]  # a perfect run with two injected failures and their restarts
    traj[0] = [vot.CODE_INIT]
    for f in (60, 140):
        traj[f : f + 6] = [[vot.CODE_FAILURE]] + [[vot.CODE_SKIP]] * 4 + [[vot.CODE_INIT]]
    size = bag.frame_size()
    scores = vot_tags.tag_scores([[traj]], [gt], [size], [bag.tags], "VOT2018")
    ar = vot.accuracy_robustness([[traj]], [gt], [size])
    overall_eao = vot.eao([[traj]], [gt], [size], "VOT2018")
    assert scores["all"] == pytest.approx((196, ar["accuracy"], 2.0, ar["robustness"], overall_eao))
    for tag in vot_tags.TAG_NAMES[1:-1]:
        assert scores[tag].frames == int(bag.tags[tag].sum())
        expected = sum(bool(bag.tags[tag][f]) for f in (60, 140))
        assert scores[tag].failures == expected
    masks = vot_tags.frame_tags(bag.tags, 196)
    assert scores["empty"].frames == int(masks["empty"].sum())
    assert scores["empty"].failures == sum(bool(masks["empty"][f]) for f in (60, 140))
