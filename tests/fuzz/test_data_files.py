"""Training-data files, fuzzed: the raw annotations the TFDS builders read (box and flag lines), a built
dataset's ``dataset_info.json`` and track index, the hard-negative index (``table.npz`` / ``meta.json``)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import strategies as st

from siamrn_jax.data.hnm_index import META_FILE, TABLE_FILE, HardNegativeIndex
from siamrn_jax.data.tfds_builders import read_box_lines, read_flag_lines
from siamrn_jax.data.tfds_source import TfdsSource
from siamrn_jax.data.track_index import FORMAT, IndexWriter, index_path
from tests.fuzz.fuzzing import Mutation, json_mutations, mutations, outcome, scratch, text_mutations, twin

BOXES = "1,2,30,40\n2\t3\t31\t41\n3 4 32 42\n"
FLAGS = "0,1,0"


def check_box_lines(m: Mutation) -> None:
    with scratch() as d:
        path = d / "groundtruth.txt"
        path.write_bytes(m(BOXES.encode()))
        got = outcome(lambda: read_box_lines(path), [path])
        assert got is None or (got.ndim == 2 and got.shape[1] == 4)


test_box_lines, test_box_lines_long = twin(text_mutations(BOXES))(check_box_lines)


def check_flag_lines(m: Mutation) -> None:
    with scratch() as d:
        path = d / "full_occlusion.txt"
        path.write_bytes(m(FLAGS.encode()))
        got = outcome(lambda: read_flag_lines(path, 3), [path])
        assert got is None or got.shape == (3,)


test_flag_lines, test_flag_lines_long = twin(text_mutations(FLAGS))(check_flag_lines)

INFO = {"name": "got10k", "version": FORMAT, "splits": [{"name": "train", "numBytes": "10"}]}


def check_dataset_info(which: str, m: Mutation) -> None:
    with scratch() as d:
        version = d / "got10k" / FORMAT
        version.mkdir(parents=True)
        w = IndexWriter()
        w.add_frame(np.array([1, 2, 30, 40]), True, (64, 48), 100)
        w.end_track("v/00")
        w.finish().save(index_path(version, "train"))
        info = json.dumps(INFO, indent=2).encode()
        index = index_path(version, "train").read_bytes()
        (version / "dataset_info.json").write_bytes(m(info) if which == "info" else info)
        index_path(version, "train").write_bytes(m(index) if which == "index" else index)
        outcome(lambda: TfdsSource(version, "train"), [version])


test_dataset_info, test_dataset_info_long = twin(st.sampled_from(["info", "index"]), json_mutations(INFO))(
    check_dataset_info
)

META = {"ndim": 8, "metric": "cos", "pool": "avg", "neighbours_k": 0, "track_keys": [[]]}


def _table() -> bytes:
    with scratch() as d:
        empty = np.zeros(0, np.int32)
        np.savez(d / "t.npz", source=empty, track=empty, frame=empty)
        return (d / "t.npz").read_bytes()


TABLE = _table()


def check_hnm_index(which: str, meta: Mutation, table: Mutation) -> None:
    with scratch() as d:
        (d / META_FILE).write_bytes(
            meta(json.dumps(META, indent=2).encode()) if which == "meta" else json.dumps(META).encode()
        )
        (d / TABLE_FILE).write_bytes(table(TABLE) if which == "table" else TABLE)
        got = outcome(lambda: HardNegativeIndex.load(d), [d])
        assert got is None or got.ndim >= 0


test_hnm_index, test_hnm_index_long = twin(
    st.sampled_from(["meta", "table"]), json_mutations(META), mutations(len(TABLE))
)(check_hnm_index)
