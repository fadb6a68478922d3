"""VOT supervised ("baseline") evaluation: region overlap, restart protocol, accuracy, robustness, EAO.

Pure NumPy on the host (EVALUATION.md §3, §6-§8, §10), no file I/O, no compiled extension. pysot's
semantics (= SiamRN's paper numbers, = the legacy MATLAB "pooled" definitions) are the target.

- ``region``: the formats (box, polygon, region, code, trajectory, bounds), codes, pysot's init box;
- ``overlap``: pysot's raster overlap and an exact continuous overlap;
- ``protocol``: the restart rule (``SupervisedRun``, ``run_supervised``);
- ``metrics``: accuracy, robustness, expected-overlap curves and EAO;
- ``formats``: VOT result-file text;
- ``toolkit``: the vot-toolkit (Python) variants, for cross-checks; ``tags``: per-attribute scores.

The public names of the first five are importable from ``siamrn_jax.eval.vot`` itself.
"""

from siamrn_jax.eval.vot.formats import format_vot_results, parse_vot_results
from siamrn_jax.eval.vot.metrics import (
    BURNIN,
    EAO_INTERVALS,
    accuracy_overlaps,
    accuracy_robustness,
    eao,
    eao_from_curve,
    eao_overlaps,
    expected_overlap_curve,
    expected_overlap_curve_from_overlaps,
    expected_overlap_curves,
    vot_toolkit_robustness,
)
from siamrn_jax.eval.vot.overlap import continuous_overlap, region_overlap, region_overlaps
from siamrn_jax.eval.vot.protocol import SKIP_INITIALIZE, SupervisedRun, failure_frames, run_supervised
from siamrn_jax.eval.vot.region import (
    CODE_FAILURE,
    CODE_INIT,
    CODE_SKIP,
    code_value,
    is_code,
    polygon_to_center_size,
    polygon_to_init_box,
)

__all__ = [
    "BURNIN",
    "CODE_FAILURE",
    "CODE_INIT",
    "CODE_SKIP",
    "EAO_INTERVALS",
    "SKIP_INITIALIZE",
    "SupervisedRun",
    "accuracy_overlaps",
    "accuracy_robustness",
    "code_value",
    "continuous_overlap",
    "eao",
    "eao_from_curve",
    "eao_overlaps",
    "expected_overlap_curve",
    "expected_overlap_curve_from_overlaps",
    "expected_overlap_curves",
    "failure_frames",
    "format_vot_results",
    "is_code",
    "parse_vot_results",
    "polygon_to_center_size",
    "polygon_to_init_box",
    "region_overlap",
    "region_overlaps",
    "run_supervised",
    "vot_toolkit_robustness",
]
