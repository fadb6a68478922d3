"""Text annotation and result files, fuzzed: OTB / VOT / LaSOT / GOT-10k / UAV ground truth and label
files through each benchmark reader, sequence folders, VOT result (region) text, result files of
``eval report``. Frame files are empty placeholders: the readers check that frames exist, not decode them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from siamrn_jax.eval.benchmarks import got10k, lasot, otb, uav
from siamrn_jax.eval.benchmarks import vot as vot_bench
from siamrn_jax.eval.report import load_results, vot_runs
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.io.results import vot_result_path
from siamrn_jax.io.sources import read_groundtruth, read_sequence_folder
from tests.fuzz.fuzzing import Mutation, outcome, scratch, text_mutations, twin

BOXES = "1,2,30,40\n2,3,31,41\n3,4,32,42\n"
POLYS = "1,2,30,2,30,40,1,40\n2,3,31,41\n3,4,32,4,32,42,3,42\n"
FLAGS = "0\n1\n0\n"
T = 3


def _frames(folder: Path, digits: int, n: int = T) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        (folder / f"{i:0{digits}d}.jpg").write_bytes(b"")


def check_groundtruth(m: Mutation) -> None:
    with scratch() as d:
        path = d / "groundtruth_rect.txt"
        path.write_bytes(m(POLYS.encode()))
        got = outcome(lambda: read_groundtruth(path), [path])
        assert got is None or (got.ndim == 2 and got.shape[1] == 4)


test_groundtruth, test_groundtruth_long = twin(text_mutations(POLYS))(check_groundtruth)


def check_sequence_folder(m: Mutation) -> None:
    with scratch() as d:
        _frames(d / "seq" / "img", 4)
        (d / "seq" / "groundtruth.txt").write_bytes(m(BOXES.encode()))
        outcome(lambda: read_sequence_folder(d / "seq", strict=True), [d / "seq"])


test_sequence_folder, test_sequence_folder_long = twin(text_mutations(BOXES))(check_sequence_folder)


def check_otb(m: Mutation) -> None:
    with scratch() as d:
        _frames(d / "Basketball" / "img", 4)
        (d / "Basketball" / "groundtruth_rect.txt").write_bytes(m(BOXES.encode()))
        got = outcome(lambda: otb.load(d, layout="raw"), [d])
        assert got is None or all(s.groundtruth.shape == (T, 4) for s in got)


test_otb, test_otb_long = twin(text_mutations(BOXES))(check_otb)

VOT_FILES = ("groundtruth.txt", "occlusion.tag", "camera_motion.label", "list.txt", "sequence")
VOT_SEEDS = {"groundtruth.txt": POLYS, "list.txt": "ball\n", "sequence": "width=64\nheight=48\nfps=30\n"}


def check_vot(which: str, m: Mutation) -> None:
    with scratch() as d:
        seq = d / "ball"
        _frames(seq / "color", 8)
        for name in VOT_FILES:
            (seq if name != "list.txt" else d).joinpath(name).write_text(VOT_SEEDS.get(name, FLAGS))
        target = (d if which == "list.txt" else seq) / which
        target.write_bytes(m(VOT_SEEDS.get(which, FLAGS).encode()))
        got = outcome(lambda: vot_bench.load(d), [d])
        assert got is None or all(len(s.frames) == len(s.groundtruth) for s in got)


test_vot, test_vot_long = twin(st.sampled_from(VOT_FILES), text_mutations(POLYS))(check_vot)

LASOT_FILES = {
    "groundtruth.txt": BOXES,
    "full_occlusion.txt": "0,1,0",
    "out_of_view.txt": "0,0,0",
    "nlp.txt": "a cat",
}


def check_lasot(which: str, m: Mutation) -> None:
    with scratch() as d:
        seq = d / "cat" / "cat-1"
        _frames(seq / "img", 8)
        for name, text in LASOT_FILES.items():
            (seq / name).write_text(text)
        (seq / which).write_bytes(m(LASOT_FILES[which].encode()))
        outcome(lambda: lasot.load(d, split="all"), [d])


test_lasot, test_lasot_long = twin(st.sampled_from(sorted(LASOT_FILES)), text_mutations(BOXES))(check_lasot)

GOT_FILES = {
    "groundtruth.txt": BOXES,
    "absence.label": FLAGS,
    "cover.label": "8\n7\n0\n",
    "meta_info.ini": "[METAINFO]\nresolution: (64, 48)\nobject_class: cat\n",
    "list.txt": "GOT-10k_Val_000001\n",
}


def check_got10k(which: str, m: Mutation) -> None:
    with scratch() as d:
        split = d / "val"
        seq = split / "GOT-10k_Val_000001"
        _frames(seq, 8)
        for name, text in GOT_FILES.items():
            (split if name == "list.txt" else seq).joinpath(name).write_text(text)
        target = (split if which == "list.txt" else seq) / which
        target.write_bytes(m(GOT_FILES[which].encode()))
        outcome(lambda: got10k.load(d, split="val"), [d])


test_got10k, test_got10k_long = twin(st.sampled_from(sorted(GOT_FILES)), text_mutations(BOXES))(check_got10k)


def check_uav(m: Mutation) -> None:
    with scratch() as d:
        _frames(d / "data_seq" / "UAV123" / "car99", 6)
        (d / "anno" / "UAV20L").mkdir(parents=True)
        (d / "anno" / "UAV20L" / "car99.txt").write_bytes(m(b"1,2,3,4\nNaN,NaN,NaN,NaN\n5,6,7,8\n"))
        outcome(lambda: uav.load(d, subset="UAV20L"), [d])


test_uav, test_uav_long = twin(text_mutations("1,2,3,4\nNaN,NaN,NaN,NaN\n5,6,7,8\n"))(check_uav)

VOT_RESULTS = "1\n0.0000,1.0000,20.0000,1.0000,20.0000,30.0000,0.0000,30.0000\n2\n0\n5.5,6.5,10,12\n"


def check_vot_result_text(m: Mutation) -> None:
    with scratch() as d:
        seq = Sequence("ball", [d / f"{i}.jpg" for i in range(5)], np.ones((5, 4)), image_size=(64, 48))
        path = vot_result_path(d / "res", "ours", seq)
        path.parent.mkdir(parents=True)
        path.write_bytes(m(VOT_RESULTS.encode()))
        got = outcome(lambda: vot_runs(d / "res", "ours", [seq]), [path])
        assert got is None or len(got[0][0][0]) == 5


test_vot_result_text, test_vot_result_text_long = twin(text_mutations(VOT_RESULTS))(check_vot_result_text)


def check_report_results(m: Mutation) -> None:
    with scratch() as d:
        (d / "res" / "ours").mkdir(parents=True)
        path = d / "res" / "ours" / "Basketball.txt"
        path.write_bytes(m(BOXES.encode()))
        seq = Sequence("Basketball", [d / f"{i}.jpg" for i in range(T)], np.ones((T, 4)))
        got = outcome(lambda: load_results(d / "res", "ours", [seq]), [path])
        assert got is None or got["Basketball"].shape == (T, 4)


test_report_results, test_report_results_long = twin(text_mutations(BOXES))(check_report_results)
