"""The cases the fuzzers found, kept as plain tests (issue 29): each was a traceback or a message that did
not name its file before the fix named in its docstring."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from siamrn_jax import checkpoint
from siamrn_jax.cli.ablate import parse_set
from siamrn_jax.convert import addon
from siamrn_jax.data import source as data_source
from siamrn_jax.data.hnm_index import HardNegativeIndex
from siamrn_jax.data.source import DataError
from siamrn_jax.data.tfds_builders import image_size, read_box_lines, read_flag_lines
from siamrn_jax.data.tfds_source import TfdsSource
from siamrn_jax.data.track_index import FORMAT, IndexWriter, TrackIndex
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.eval.benchmarks import got10k, otb, read_flags
from siamrn_jax.eval.benchmarks import vot as vot_bench
from siamrn_jax.eval.report import load_results, vot_runs
from siamrn_jax.eval.sequence import Sequence
from siamrn_jax.eval.trax_server import serve
from siamrn_jax.export import onnx, stablehlo
from siamrn_jax.io import sources
from siamrn_jax.io.results import vot_result_path
from siamrn_jax.io.sources import InputError
from siamrn_jax.tracking import onnx_backend
from siamrn_jax.tracking.params import PresetFileError, read_preset_file
from tests.fuzz.test_checkpoint_dir import _run
from tests.fuzz.test_trax import Region, StandInTracker, trax_image
from tests.fuzz.test_trax import Server as TraxServer
from tests.tracking.test_cli import otb_sequence

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "siamrn_jax" / "assets" / "demo_resnet"
ADDON = ROOT / "siamrn_jax" / "assets" / "nano_rd_v2"


def _demo(tmp: Path) -> Path:
    d = tmp / "ckpt"
    shutil.copytree(DEMO, d)
    return d


def test_checkpoint_with_damaged_orbax_metadata(tmp_path):
    """orbax returns no item metadata (None) for a cut-short _METADATA or root manifest, or a missing
    metadata data file: was AttributeError 'NoneType' object has no attribute 'tree'. In a worker process
    (orbax's failed reads leave asyncio callbacks behind)."""
    cases = [
        ["variables/_METADATA", "cut", 40],
        ["variables/manifest.ocdbt", "cut", 40],
        ["variables/d", "delete", 0],
    ]
    for r in _run(tmp_path, cases):
        assert r["outcome"] == "error" and "variables: unreadable orbax tree" in r["message"], r


def test_track_with_cut_metadata_is_one_error_line(tmp_path):
    """The issue's case end to end: ``track.py --checkpoint DIR`` with ``_METADATA`` cut short."""
    d = _demo(tmp_path)
    meta = d / "variables" / "_METADATA"
    meta.write_bytes(meta.read_bytes()[:100])
    otb_sequence(tmp_path / "seq", 3, seed=0)
    argv = [
        sys.executable,
        str(ROOT / "track.py"),
        "--input",
        str(tmp_path / "seq"),
        "--checkpoint",
        str(d),
    ]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == [lines[-1]] and str(d / "variables") in lines[-1], lines
    assert all(line.startswith("warning: ") for line in lines[:-1]), lines


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m.update(channels=None), "channels = None is not a positive integer"),
        (lambda m: m.update(levels="abc"), "levels = 'abc'"),
        (lambda m: m.update(exemplar_size=1), "cannot be built"),
    ],
    ids=["null-int", "string-levels", "crop-too-small"],
)
def test_model_json_with_wrong_field_types(tmp_path, edit, fragment):
    """A model field of the wrong kind or a size the network cannot take reached the shape arithmetic:
    was TypeError 'Shapes must be 1D sequences of concrete values of integer type'."""
    d = _demo(tmp_path)
    meta = json.loads((d / "model.json").read_text())
    edit(meta["model"])
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match="model.json") as e:
        checkpoint.load(d, inference=False)
    assert fragment in str(e.value)


@pytest.mark.parametrize(
    "edit",
    [lambda m: m["model"].update(exemplar_size=None), lambda m: m.update(modules=5)],
    ids=["null", "modules"],
)
def test_addon_json_with_wrong_types(tmp_path, edit):
    """Was TypeError from the shape arithmetic / ``k in 5``."""
    d = tmp_path / "addon"
    shutil.copytree(ADDON, d)
    meta = json.loads((d / "addon.json").read_text())
    edit(meta)
    (d / "addon.json").write_text(json.dumps(meta))
    with pytest.raises(addon.AddonError, match="addon.json"):
        addon.load(d)


def test_preset_file_with_a_list_as_base(tmp_path):
    """Was TypeError: unhashable type: 'list' (``base in PRESETS``)."""
    p = tmp_path / "best.json"
    p.write_text(json.dumps({"base": [], "params": {}}))
    with pytest.raises(PresetFileError, match="best.json: unknown base preset"):
        read_preset_file(p)


@pytest.mark.parametrize(
    "meta",
    [
        [1, 2],
        {"A": None},
        {"A": {"img_names": ["A/img/0001.jpg"], "gt_rect": [[{}, 1, 1, 2]]}},
        {"A": {"img_names": ["A/img/0001.jpg"], "gt_rect": None}},
        {"A": {"img_names": ["A/img/0001.jpg"], "gt_rect": [[1, 1, 1, 2]], "absent": [1, 1]}},
    ],
    ids=["list", "null-record", "dict-in-row", "null-gt", "absent-length"],
)
def test_pysot_benchmark_meta_with_wrong_structure(tmp_path, meta):
    """Was TypeError / KeyError / a broadcast ValueError from NumPy in ``load_pysot_json``."""
    (tmp_path / "A" / "img").mkdir(parents=True)
    (tmp_path / "A" / "img" / "0001.jpg").write_bytes(b"")
    (tmp_path / "OTB100.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="OTB100.json"):
        otb.load(tmp_path, layout="json")


def test_onnx_export_json_with_bad_weights_entry(tmp_path):
    """Was TypeError (``weights["file"]`` of a list)."""
    from tests.fuzz.test_json_files import ONNX_JSON

    for name in (*onnx.FILES, onnx.WEIGHTS):
        (tmp_path / name).write_bytes(b"1234")
    (tmp_path / "export.json").write_text(json.dumps({**ONNX_JSON, "weights": [1]}))
    with pytest.raises(onnx_backend.ExportError, match="export.json: 'weights'"):
        onnx_backend.read_meta(tmp_path)


@pytest.mark.parametrize(
    "name, content",
    [("groundtruth.txt", b"\x80"), ("occlusion.tag", b"\xb1"), ("list.txt", b"\xff"), ("sequence", b"\xfe")],
)
def test_vot_files_that_are_not_utf8(tmp_path, name, content):
    """Was an InputError carrying only "'utf-8' codec can't decode byte ..." (no file named) or a bare
    UnicodeDecodeError; now "FILE: not UTF-8 text"."""
    seq = tmp_path / "ball"
    (seq / "color").mkdir(parents=True)
    (seq / "color" / "00000001.jpg").write_bytes(b"")
    (tmp_path / "list.txt").write_text("ball\n")
    (seq / "groundtruth.txt").write_text("1,2,3,4\n")
    (seq / "occlusion.tag").write_text("0\n")
    (seq / "sequence").write_text("width=4\n")
    path = (tmp_path if name == "list.txt" else seq) / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"{path}: not UTF-8 text"):
        vot_bench.load(tmp_path)


def test_label_file_with_a_superscript_digit(tmp_path):
    """``"²".isdigit()`` is True but ``int("²")`` fails: was a bare ValueError from ``read_flags``."""
    path = tmp_path / "absence.label"
    path.write_text("0\n\u00b2\n")
    with pytest.raises(InputError, match="absence.label:2: expected integer labels"):
        read_flags(path, 2)


def test_label_file_with_a_number_past_int64(tmp_path):
    """Found by atheris in seconds: ``np.array([10**31], np.int64)`` raised a bare OverflowError."""
    path = tmp_path / "occlusion.tag"
    path.write_text("1\x0b\n9999999999999999999999999999999\n")
    with pytest.raises(InputError, match=r"occlusion.tag:\d+: expected integer labels"):
        read_flags(path, 3, pad=True)


def test_got10k_resolution_of_infinite_size(tmp_path):
    """``int(float('inf'))`` in ``_image_size``: was OverflowError."""
    seq = tmp_path / "val" / "GOT-10k_Val_000001"
    seq.mkdir(parents=True)
    (seq / "00000001.jpg").write_bytes(b"")
    (seq / "groundtruth.txt").write_text("1,2,3,4\n")
    (seq / "meta_info.ini").write_text("resolution: (1e999, 2)\n")
    with pytest.raises(InputError, match="meta_info.ini: resolution"):
        got10k.load(tmp_path, split="val")


@pytest.mark.parametrize("content", [b"\x80", b"1\n2,3\n"], ids=["not-utf8", "short-line"])
def test_report_result_file_that_does_not_parse(tmp_path, content):
    """``load_results`` let read_rows' ValueError (and the decode error) through: was a traceback in
    ``eval report``."""
    (tmp_path / "ours").mkdir()
    path = tmp_path / "ours" / "A.txt"
    path.write_bytes(content)
    seq = Sequence("A", [tmp_path / "0.jpg", tmp_path / "1.jpg"], np.ones((2, 4)))
    with pytest.raises(InputError, match=str(path)):
        load_results(tmp_path, "ours", [seq])


@pytest.mark.parametrize("content", [b"\x80", b"inf\n", b"1,x\n"], ids=["not-utf8", "inf-code", "text"])
def test_vot_result_file_that_does_not_parse(tmp_path, content):
    """``vot_runs``: was UnicodeDecodeError / OverflowError (``int(inf)``) / ValueError."""
    seq = Sequence("ball", [tmp_path / "0.jpg"], np.ones((1, 4)), image_size=(64, 48))
    path = vot_result_path(tmp_path / "res", "ours", seq)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(InputError, match=str(path)):
        vot_runs(tmp_path / "res", "ours", [seq])


def test_track_index_whose_zip_directory_points_outside(tmp_path):
    """A byte cut from the local header makes zipfile seek to an invalid offset: was a bare
    ``OSError: [Errno 22] Invalid argument`` naming no file (and an unclosed-file ResourceWarning)."""
    w = IndexWriter()
    w.add_frame(np.array([1, 2, 3, 4]), True, (64, 48), 10)
    w.end_track("v/00")
    path = tmp_path / "index.npz"
    w.finish().save(path)
    data = path.read_bytes()
    path.write_bytes(data[:4] + data[5:])
    with pytest.raises(DataError, match=f"{path}: corrupt track index"):
        TrackIndex.load(path)


@pytest.mark.parametrize(
    "script, fragment",
    [
        ([("frame", "good", None)], "frame request before initialize"),
        ([("state", "good", None)], "unexpected request 'state'"),
        ([("initialize", "empty-list", [(Region([1, 1, 9, 9]), {})])], "without a colour image path"),
        ([("initialize", "good", [])], "initialize request without a region"),
        ([("initialize", "missing", [(Region([1, 1, 9, 9]), {})])], "nope.png"),
        ([("initialize", "good", [(Region([1, 1, 0, 9]), {})])], "at least 1 px"),
    ],
    ids=["frame-first", "unknown-type", "no-image", "no-region", "missing-image", "empty-box"],
)
def test_trax_requests_that_cannot_be_answered(tmp_path, script, fragment):
    """A ``frame`` before ``initialize`` reached ``Tracker.track`` (RuntimeError), an unknown request type
    was tracked as a frame, an empty image list raised StopIteration, a missing region IndexError, and
    our errors escaped without telling the client: now a TraX quit carrying the reason, then the error."""
    cv2.imwrite(str(tmp_path / "f.png"), np.full((48, 64, 3), 100, np.uint8))
    server = TraxServer(
        [SimpleNamespace(type=t, image=trax_image(i, tmp_path), objects=o) for t, i, o in script]
    )
    with pytest.raises(SiamrnError) as e:
        serve(server, StandInTracker(), lambda *b: b)
    assert fragment in str(e.value) and server.quits == [one_line(e.value).removeprefix("error: ")]


def test_set_value_with_an_unhashable_dict_key():
    """``ast.literal_eval("{[]: 0}")`` raises TypeError: was a traceback from ``--set`` parsing; now the
    value is kept as text (as for any other non-literal)."""
    assert parse_set("train.epochs={[]:0}") == ("train.epochs", "{[]:0}")


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m.pop("batch"), "exported for batch None"),
        (lambda m: m["params"].update(wings=2), "unexpected keyword argument 'wings'"),
        (lambda m: m.update(params=[1]), "expected 'model' and 'params' objects"),
        (lambda m: m["params"].update(exemplar_size=128), "tracker parameters are for 128/255 crops"),
    ],
    ids=["no-batch", "unknown-param", "params-list", "params-misfit"],
)
def test_stablehlo_export_json_fields(tmp_path, edit, fragment):
    """``ExportedTracker`` indexed export.json directly: was KeyError 'batch', TypeError from
    ``TrackerParams(**params)``; crops that do not fit the model failed later, inside tracking."""
    from tests.fuzz.test_json_files import EXPORT_JSON, JAXEXPORT

    meta = json.loads(json.dumps(EXPORT_JSON))
    edit(meta)
    (tmp_path / "export.json").write_text(json.dumps(meta))
    for name in ("template", "step"):
        (tmp_path / f"{name}.jaxexport").write_bytes(JAXEXPORT)
    with pytest.raises(stablehlo.ExportError, match=fragment):
        stablehlo.ExportedTracker(tmp_path)


def test_onnx_export_json_without_input_entries(tmp_path):
    """``onnx.load`` read ``meta["template_inputs"]`` unchecked: was KeyError / TypeError."""
    from tests.fuzz.test_json_files import ONNX_JSON

    for name in (*onnx.FILES, onnx.WEIGHTS):
        (tmp_path / name).write_bytes(b"1234")
    (tmp_path / "export.json").write_text(
        json.dumps({**ONNX_JSON, "step_inputs": [{"name": "x", "dtype": 3}]})
    )
    with pytest.raises(onnx_backend.ExportError, match="'step_inputs' is not a list"):
        onnx_backend.read_meta(tmp_path)


def test_tfds_raw_annotation_files(tmp_path):
    """The TFDS builders' line readers: was UnicodeDecodeError (boxes) and OverflowError (``int(inf)``)."""
    boxes, flags = tmp_path / "groundtruth.txt", tmp_path / "full_occlusion.txt"
    boxes.write_bytes(b"\x80,1,2,3\n")
    flags.write_text("inf,0,1")
    with pytest.raises(DataError, match=f"{boxes}: not UTF-8 text"):
        read_box_lines(boxes)
    with pytest.raises(DataError, match=f"{flags}: expected 0/1 flags"):
        read_flag_lines(flags, 3)


@pytest.mark.parametrize("info", [b"[1]", b"\xff", b'{"splits": [1]}'], ids=["list", "not-utf8", "split-int"])
def test_tfds_dataset_info_that_is_not_an_object(tmp_path, info):
    """Was AttributeError (``info.get`` of a list, ``s.get`` of a number) or a bare UnicodeDecodeError."""
    version = tmp_path / "got10k" / FORMAT
    version.mkdir(parents=True)
    (version / "dataset_info.json").write_bytes(info)
    with pytest.raises(DataError, match="dataset_info.json"):
        TfdsSource(version, "train")


@pytest.mark.parametrize(
    "meta, table", [(b"[]", None), (None, b"PK\x03\x04 cut")], ids=["meta-list", "table-cut"]
)
def test_hard_negative_index_files(tmp_path, meta, table):
    """Was TypeError (``meta["track_keys"]`` of a list) and BadZipFile plus an unclosed-file warning."""
    from tests.fuzz.test_data_files import META, TABLE

    (tmp_path / "meta.json").write_bytes(meta or json.dumps(META).encode())
    (tmp_path / "table.npz").write_bytes(table or TABLE)
    with pytest.raises(DataError, match="meta.json: not a hard-negative|table.npz: corrupt item table"):
        HardNegativeIndex.load(tmp_path)


def test_addon_npz_with_a_damaged_compressed_member(tmp_path):
    """Found by the long run: one flipped bit inside a deflated member of variables.npz made np.load raise
    ``zlib.error: invalid distance too far back``, which ``addon.load`` did not catch; and a file np.load
    fails on was left open (ResourceWarning, an error under the suite's filterwarnings)."""
    d = tmp_path / "addon"
    shutil.copytree(ADDON, d)
    data = bytearray((d / "variables.npz").read_bytes())
    data[203] ^= 128
    (d / "variables.npz").write_bytes(bytes(data))
    with pytest.raises(addon.AddonError, match="variables.npz: unreadable"):
        addon.load(d)
    (d / "variables.npz").write_bytes(b"PK\x03\x04" + bytes(data[4:100]))
    with pytest.raises(addon.AddonError, match="variables.npz: unreadable"):
        addon.load(d)


def test_train_warnings_are_labelled(tmp_path):
    """train.py logs through absl's handler, whose lines read "W1206 12:00:00.1 loop.py:477] ...": now
    ``warning: ...`` like every other command's. In a process of its own (absl's global flags); the run
    itself is replaced by one that logs the bad-data warning and returns a summary."""
    code = f"""
import logging, sys
import siamrn_jax.train.loop as loop
from siamrn_jax.cli import train as cli
def train(cfg, workdir, stop_after=None, progress=True):
    logging.getLogger(loop.__name__).warning("train: bad training data skipped: %s", "x.jpg: corrupt")
    return {{"last": {{}}, "pairs_per_s": float("nan"), "step": 0, "skipped": 1, "bad_reads": 1}}
loop.train = train
sys.exit(cli.main(["train.py", "--config=smoke", "--workdir={tmp_path}/w", "--progress=false"]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == ["warning: train: bad training data skipped: x.jpg: corrupt"], (
        r.stderr
    )


def _png(width: int, height: int, ihdr_length: int = 13) -> bytes:
    def chunk(kind: bytes, data: bytes, length: int | None = None) -> bytes:
        size = len(data) if length is None else length
        return struct.pack(">I", size) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr, ihdr_length) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "data, fragment",
    [(_png(100_000, 100_000), "decompression bomb"), (_png(16, 12, ihdr_length=5), "Truncated IHDR")],
    ids=["bomb-header", "short-ihdr"],
)
def test_tfds_image_header_that_pil_rejects(tmp_path, data, fragment):
    """Found by the long run (a flipped bit in a PNG's IHDR length): PIL's ValueError, and its
    DecompressionBombError for a header claiming 10^10 pixels, escaped ``image_size``."""
    with pytest.raises(DataError, match=f"x.png: unreadable image header.*{fragment}"):
        image_size(data, tmp_path / "x.png")


@pytest.mark.parametrize(
    "offset, mask, fragment",
    [(8, 64, "encrypt"), (8, 32, "compressed patched"), (6, 64, "zip file version")],
    ids=["encrypted-flag", "patched-flag", "zip-version"],
)
def test_npz_with_unsupported_zip_features(tmp_path, offset, mask, fragment):
    """Found by the long run (one bit of a member's local header): zipfile raised RuntimeError /
    NotImplementedError, which no npz reader caught; ``format_json.read_npz`` now reports them for the
    track index, the hard-negative item table and an add-on's variables."""
    w = IndexWriter()
    w.add_frame(np.array([1, 2, 3, 4]), True, (64, 48), 10)
    w.end_track("v/00")
    path = tmp_path / "index.npz"
    w.finish().save(path)
    data = bytearray(path.read_bytes())
    # the first member's central directory entry: version needed (6), flags (8)
    data[data.index(b"PK\x01\x02") + offset] ^= mask
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f"index.npz: corrupt track index .*{fragment}"):
        TrackIndex.load(path)


def test_model_json_dtype_that_numpy_reads_as_a_structure(tmp_path):
    """``"dtype": {"": ""}``: ``jnp.dtype`` raised ValueError ("entry not a 2- or 3- tuple"), which
    ``compute_dtype`` did not catch (found by the long run)."""
    d = _demo(tmp_path)
    meta = json.loads((d / "model.json").read_text())
    meta["model"]["dtype"] = {"": ""}
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match="model.json: model dtype"):
        checkpoint.load(d, inference=False)


def test_image_header_past_opencv_limits(tmp_path):
    """Found by the long run: a BMP header claiming 2,000,000 rows made ``cv2.imdecode`` raise
    ``cv2.error`` (validateInputImageSize) instead of returning None, through both frame readers."""
    ok, enc = cv2.imencode(".bmp", np.zeros((4, 4, 3), np.uint8))
    data = bytearray(enc.tobytes())
    data[22:26] = struct.pack("<i", 2_000_000)  # BITMAPINFOHEADER height
    path = tmp_path / "00000001.bmp"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="00000001.bmp: unreadable or corrupt image"):
        sources.read_image(path)
    with pytest.raises(DataError, match="00000001.bmp: cannot decode the image"):
        data_source.read_image(path)


@pytest.mark.parametrize("listed", ["/all", "../ball", "gone"])
def test_vot_list_naming_a_path_or_a_missing_folder(tmp_path, listed):
    """A VOT ``list.txt`` line that is a path ('/all' escaped the dataset folder and the message named only
    '/all', found by the long run) or a missing folder: an InputError naming list.txt."""
    (tmp_path / "list.txt").write_text(listed + "\n")
    with pytest.raises(InputError) as e:
        vot_bench.load(tmp_path)
    assert str(tmp_path / "list.txt") in str(e.value) and repr(listed) in str(e.value)
