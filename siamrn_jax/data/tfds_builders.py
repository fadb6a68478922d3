"""TFDS builders (array_record, no TensorFlow) for the raw training datasets of SiamRN (SPEC 8.1).

Each builder turns a raw dataset the user already downloaded (``MANUAL_DOWNLOAD_INSTRUCTIONS``) into one
record per *annotated frame*, so that a training sample reads only the frames it uses (format 2.0.0):

    track:   Text, the track key ``<video>/<track id>`` (a track = one target through one video; a DET /
             COCO object is a one-frame track)
    frame:   int32, the frame's position in the track as annotated (0-based)
    image:   Tensor((), object), the image file's bytes as stored (never re-encoded; decoded with
             ``cv2.imdecode`` only when sampled)
    box:     Tensor((4,), float32), target (x1, y1, x2, y2) in frame pixels, as annotated (NaN kept)
    visible: bool, False where the dataset says the target is absent / occluded / out of view

Records are written in track order (``disable_shuffling``), so the frames of a track are one contiguous
record range. Beside the records the builder writes ``track_index.<split>.npz`` (``TrackIndex``): per
track its key and record range, per frame its box, visibility, image size and byte count. ``TfdsSource``
opens a dataset by reading that index only. Frames whose file is missing or not an image are left out of
the records and logged (the build goes on); boxes are kept as annotated and judged when read
(``usable_frames``).

Build one with::

    python -m siamrn_jax.data.tfds_builders got10k --manual-dir /data/GOT-10k --data-dir ~/tensorflow_datasets

The builders are not registered in TFDS's global registry (``skip_registration``): several names (``coco``)
collide with TFDS's own datasets, and ``python -m`` would import this module twice. Read the result with
``TfdsSource`` (``tfds.builder_from_directory``) or ``tfds.data_source(name, data_dir=...)``.

Box conventions: ``xyxy`` = corners, ``xywh`` = top-left + size, pixels of the original frame (pysot
continuous coordinates: x2 = x + w, no -1).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image  # image headers (frame size) without decoding the pixels
import tensorflow_datasets as tfds

from siamrn_jax.atomic import atomic_directory
from siamrn_jax.data.source import DataError
from siamrn_jax.data.tfds_source import TfdsSource
from siamrn_jax.data.track_index import FORMAT, IndexWriter, index_path
from siamrn_jax.errors import one_line
from siamrn_jax.format_json import read_json, read_text
from siamrn_jax.io.annotations import split_fields

VERSION = tfds.core.Version(FORMAT)
_LOG = logging.getLogger(__name__)
_IMAGE_MAGIC = (b"\xff\xd8", b"\x89PNG", b"BM")  # JPEG, PNG, BMP: what cv2.imdecode reads here
_RECORDS_PER_SHARD = 20_000  # array_record files of ~0.1-1 GB for 5-50 KB frames


def read_image_bytes(path: Path) -> bytes:
    """The file's bytes, checked to look like an image; one-line errors naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file not found") from None
    if not data.startswith(_IMAGE_MAGIC):
        raise DataError(f"{path}: not a JPEG/PNG/BMP image ({len(data)} bytes)")
    return data


def image_size(data: bytes, where: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as im:
            return im.size
    # What PIL raises on a bad header: ValueError for a cut-short chunk ("Truncated IHDR chunk"),
    # DecompressionBombError (no ValueError) for a header claiming billions of pixels.
    except (
        PIL.UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        PIL.Image.DecompressionBombError,
    ) as e:
        raise DataError(f"{where}: unreadable image header ({e})") from None


def read_box_lines(path: Path) -> np.ndarray:
    """``x,y,w,h`` per line (comma, tab or space separated) as [n, 4] float32 xyxy."""
    try:
        lines = read_text(path, DataError).splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: annotation file not found") from None
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        parts = split_fields(line)
        try:
            row = [float(p) for p in parts]
        except ValueError:
            raise DataError(f"{path}: line {i + 1}: cannot parse {line!r} as x,y,w,h") from None
        if len(row) != 4:
            raise DataError(f"{path}: line {i + 1}: expected 4 numbers x,y,w,h, got {len(row)}")
        rows.append(row)
    xywh = np.asarray(rows, np.float64).reshape(-1, 4)  # NaN rows kept: the source drops them, counted
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)


def read_flag_lines(path: Path, n: int) -> np.ndarray:
    """One 0/1 flag per line (or comma separated on one line, as LaSOT does) as [n] bool."""
    try:
        text = read_text(path, DataError)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: flag file not found") from None
    try:
        flags = np.asarray([int(float(v)) for v in split_fields(text)], np.int64)
    except (ValueError, OverflowError):  # OverflowError: int(inf)
        raise DataError(f"{path}: expected 0/1 flags") from None
    if len(flags) != n:
        raise DataError(f"{path}: {len(flags)} flags for {n} boxes")
    return flags != 0


def _xml_boxes(path: Path) -> list[tuple[str, np.ndarray]]:
    """ImageNet VID/DET annotation: [(trackid or object index, [4] float32 xyxy)] of each <object>."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: annotation file not found") from None
    except ET.ParseError as e:
        raise DataError(f"{path}: corrupt XML ({e})") from None
    out = []
    for i, obj in enumerate(root.iter("object")):
        tid = obj.findtext("trackid")
        bb = obj.find("bndbox")
        if bb is None:
            raise DataError(f"{path}: object {i} has no <bndbox>")
        try:
            box = [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            raise DataError(f"{path}: object {i}: <bndbox> needs numeric xmin, ymin, xmax, ymax") from None
        out.append((tid.strip() if tid is not None else f"{i:02d}", np.asarray(box, np.float32)))
    return out


class _TrackBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared features and split plumbing; subclasses implement ``_splits`` and ``_tracks``."""

    VERSION = VERSION
    RELEASE_NOTES = {
        "1.0.0": "One record per track: raw frame bytes, xyxy boxes, visibility.",
        "2.0.0": "One record per frame, in track order, and a per-track index file (random access).",
    }
    SOURCE_NAME = ""  # the TrackSource name (NUM_USE / FRAME_RANGE key of SPEC 8.1)

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
        # TFDS looks for a checksums file beside the builder's code through importlib_resources, which is not
        # installed (and not needed: nothing is downloaded). No code path = no checksums file.
        return None

    def _info(self) -> tfds.core.DatasetInfo:
        # DatasetInfo directly: dataset_info_from_configs needs a package dir with README/CITATIONS.
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip().splitlines()[0],
            features=tfds.features.FeaturesDict(
                {
                    "track": tfds.features.Text(),
                    "frame": tfds.features.Scalar(dtype=np.int32),
                    "image": tfds.features.Tensor(shape=(), dtype=np.object_),
                    "box": tfds.features.Tensor(shape=(4,), dtype=np.float32),
                    "visible": tfds.features.Scalar(dtype=np.bool_),
                }
            ),
            disable_shuffling=True,  # track order: a track's frames are one record range
            metadata=tfds.core.MetadataDict(format=FORMAT, index="track_index.<split>.npz"),
        )

    def _split_generators(self, dl_manager):
        # TFDS's own pipeline (download_and_prepare, `tfds build`) sorts through buckets that need TensorFlow
        # once a split passes 1 GB, and writes no track index: ``build`` writes the records instead.
        raise DataError(f"build {self.name} with python -m siamrn_jax.data.tfds_builders {self.name}")

    def _generate_examples(self, root: Path, split: str):
        raise DataError(f"build {self.name} with python -m siamrn_jax.data.tfds_builders {self.name}")

    def examples(self, root: Path, split: str, index: IndexWriter) -> Iterator[dict]:
        """The records of ``split``, in track order, while filling ``index``. A frame whose file is missing
        or not an image is left out (logged); the build goes on."""
        skipped = n = 0
        for name, paths, boxes, visible in self._tracks(root, split):
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            visible = np.asarray(visible, bool).reshape(-1)
            for f, path in enumerate(paths):
                try:
                    data = read_image_bytes(path)
                    size = image_size(data, path)
                except (DataError, OSError) as e:  # a missing or broken file costs one frame, not the build
                    _LOG.warning("%s: frame %d of track %s left out: %s", self.name, f, name, one_line(e))
                    skipped += 1
                    continue
                index.add_frame(boxes[f], visible[f], size, len(data))
                yield {"track": name, "frame": f, "image": data, "box": boxes[f], "visible": visible[f]}
                n += 1
            index.end_track(name)
        if skipped:
            msg = "%s %s: %d of %d frames left out (missing or not an image)"
            _LOG.warning(msg, self.name, split, skipped, n + skipped)

    def _splits(self, root: Path) -> list[str]:
        raise NotImplementedError

    def _tracks(self, root: Path, split: str) -> Iterator[tuple[str, list[Path], np.ndarray, np.ndarray]]:
        """Yields (track key, frame files, [n, 4] xyxy boxes, [n] visible)."""
        raise NotImplementedError


class Got10k(_TrackBuilder, skip_registration=True):
    """GOT-10k: 10 000 training videos, one target each (http://got-10k.aitestunion.com)."""

    SOURCE_NAME = "GOT10K"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download full_data/train_data (and val_data) from http://got-10k.aitestunion.com and unzip into the manual
    dir so that it holds train/GOT-10k_Train_000001/{00000001.jpg, ..., groundtruth.txt, absence.label} (and
    val/GOT-10k_Val_000001/...). groundtruth.txt: x,y,w,h per frame; absence.label (optional): 1 = absent.
    """

    def _splits(self, root):
        return [s for s in ("train", "val") if (root / s).is_dir()]

    def _tracks(self, root, split):
        for seq in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            gt = seq / "groundtruth.txt"
            if not gt.is_file():
                continue  # list.txt or stray folders
            boxes = read_box_lines(gt)
            visible = np.ones(len(boxes), bool)
            if (seq / "absence.label").is_file():
                visible = ~read_flag_lines(seq / "absence.label", len(boxes))
            paths = [seq / f"{i + 1:08d}.jpg" for i in range(len(boxes))]
            yield f"{seq.name}/00", paths, boxes, visible


class Lasot(_TrackBuilder, skip_registration=True):
    """LaSOT: 1 400 long videos of 70 classes, one target each (http://vision.cs.stonybrook.edu/~lasot)."""

    SOURCE_NAME = "LASOT"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download LaSOT and unzip into the manual dir: <class>/<class>-<n>/{img/00000001.jpg, ..., groundtruth.txt,
    full_occlusion.txt, out_of_view.txt}. An optional testing_set.txt (one <class>-<n> per line, the official
    protocol-II test list) moves those videos to the "test" split; everything else is "train".
    """

    def _test_names(self, root):
        path = root / "testing_set.txt"
        return set(read_text(path, DataError).split()) if path.is_file() else set()

    def _splits(self, root):
        return ["train", "test"] if self._test_names(root) else ["train"]

    def _tracks(self, root, split):
        test = self._test_names(root)
        for cls in sorted(p for p in root.iterdir() if p.is_dir()):
            for seq in sorted(p for p in cls.iterdir() if (p / "groundtruth.txt").is_file()):
                if (seq.name in test) != (split == "test"):
                    continue
                boxes = read_box_lines(seq / "groundtruth.txt")
                hidden = np.zeros(len(boxes), bool)
                for flag in ("full_occlusion.txt", "out_of_view.txt"):
                    if (seq / flag).is_file():
                        hidden |= read_flag_lines(seq / flag, len(boxes))
                paths = [seq / "img" / f"{i + 1:08d}.jpg" for i in range(len(boxes))]
                yield f"{cls.name}/{seq.name}/00", paths, boxes, ~hidden


def _xml_dirs(ann_root: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder relative to ann_root, sorted xml stems) of every folder holding .xml files."""
    for folder, _, files in sorted(os.walk(ann_root)):
        stems = sorted(f[:-4] for f in files if f.endswith(".xml"))
        if stems:
            yield Path(folder).relative_to(ann_root), stems


class ImagenetVid(_TrackBuilder, skip_registration=True):
    """ImageNet VID (ILSVRC2015): 3 862 training snippets, several tracked objects each."""

    SOURCE_NAME = "VID"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Unpack ILSVRC2015_VID.tar.gz into the manual dir so that it holds
    ILSVRC2015/Data/VID/train/<...>/<snippet>/000000.JPEG and
    ILSVRC2015/Annotations/VID/train/<...>/<snippet>/000000.xml (val likewise). The manual dir may also be
    the ILSVRC2015 folder itself. A track is one <trackid> of a snippet, over the frames that
    annotate it.
    """

    def _base(self, root):
        return root / "ILSVRC2015" if (root / "ILSVRC2015").is_dir() else root

    def _splits(self, root):
        base = self._base(root)
        return [s for s in ("train", "val") if (base / "Annotations/VID" / s).is_dir()]

    def _tracks(self, root, split):
        base = self._base(root)
        ann, data = base / "Annotations/VID" / split, base / "Data/VID" / split
        for rel, stems in _xml_dirs(ann):
            tracks = defaultdict(list)
            for stem in stems:
                for tid, box in _xml_boxes(ann / rel / f"{stem}.xml"):
                    tracks[tid].append((data / rel / f"{stem}.JPEG", box))
            for tid in sorted(tracks, key=lambda t: (len(t), t)):
                paths, boxes = zip(*tracks[tid], strict=True)
                yield f"{rel.as_posix()}/{tid}", list(paths), np.stack(boxes), np.ones(len(boxes), bool)


class ImagenetDet(_TrackBuilder, skip_registration=True):
    """ImageNet DET (ILSVRC2015): every annotated object of the training images is a one-frame track."""

    SOURCE_NAME = "DET"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Unpack ILSVRC2015_DET into the manual dir so that it holds
    ILSVRC2015/Data/DET/train/<...>/<image>.JPEG and ILSVRC2015/Annotations/DET/train/<...>/<image>.xml
    (the manual dir may be the ILSVRC2015 folder itself). Images without objects are skipped.
    """

    _base = ImagenetVid._base

    def _splits(self, root):
        return ["train"] if (self._base(root) / "Annotations/DET/train").is_dir() else []

    def _tracks(self, root, split):
        base = self._base(root)
        ann, data = base / "Annotations/DET" / split, base / "Data/DET" / split
        for rel, stems in _xml_dirs(ann):
            for stem in stems:
                for i, (_, box) in enumerate(_xml_boxes(ann / rel / f"{stem}.xml")):
                    name = (rel / stem).as_posix() + f"/{i:02d}"
                    yield name, [data / rel / f"{stem}.JPEG"], box[None], np.ones(1, bool)


class Coco(_TrackBuilder, skip_registration=True):
    """COCO 2017 instances: every non-crowd object annotation is a one-frame track."""

    SOURCE_NAME = "COCO"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Unzip train2017.zip (and val2017.zip) and annotations_trainval2017.zip into the manual dir:
    train2017/000000000009.jpg, ..., annotations/instances_train2017.json (bbox = x,y,w,h). iscrowd objects
    are skipped.
    """

    def _splits(self, root):
        return [s for s in ("train", "val") if (root / f"annotations/instances_{s}2017.json").is_file()]

    def _tracks(self, root, split):
        path = root / f"annotations/instances_{split}2017.json"
        data = read_json(path, DataError)
        files = {im["id"]: im["file_name"] for im in data.get("images", [])}
        for ann in sorted(data.get("annotations", []), key=lambda a: a["id"]):
            if ann.get("iscrowd", 0):
                continue
            if ann["image_id"] not in files:
                raise DataError(f"{path}: annotation {ann['id']} refers to unknown image {ann['image_id']}")
            xywh = np.asarray(ann["bbox"], np.float64).reshape(-1)
            if xywh.shape != (4,):
                raise DataError(f"{path}: annotation {ann['id']}: bbox {ann['bbox']} is not 4 numbers")
            box = np.concatenate([xywh[:2], xywh[:2] + xywh[2:]])[None]
            stem = Path(files[ann["image_id"]]).stem
            yield (
                f"{stem}/{ann['id']}",
                [root / f"{split}2017" / files[ann["image_id"]]],
                box,
                np.ones(1, bool),
            )


class YoutubeBb(_TrackBuilder, skip_registration=True):
    """YouTube-BoundingBoxes detection set, from frames already extracted at the annotated timestamps."""

    SOURCE_NAME = "YOUTUBEBB"
    CSV = "youtube_boundingboxes_detection_train.csv"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    The manual dir holds youtube_boundingboxes_detection_train.csv (rows: youtube_id, timestamp_ms, class_id,
    class_name, object_id, object_presence, xmin, xmax, ymin, ymax; coordinates normalised to [0, 1]) and
    frames/<youtube_id>/<timestamp_ms>.jpg, one JPEG per annotated timestamp, extracted by the user (e.g.
    ``ffmpeg -ss <t> -i video.mp4 -frames:v 1``). A track = (youtube_id, class_id, object_id) over its rows
    sorted by timestamp; rows with object_presence != "present" are kept with visible = False. Videos whose
    frames/<youtube_id> folder is missing (unavailable on YouTube) are skipped; a missing frame inside an
    existing folder is left out and logged, like any missing frame.
    """

    def _splits(self, root):
        return ["train"] if (root / self.CSV).is_file() else []

    def _tracks(self, root, split):
        path = root / self.CSV
        tracks = defaultdict(list)
        with path.open(newline="") as f:
            for line, row in enumerate(csv.reader(f), start=1):
                if not row or row[0] == "youtube_id":
                    continue
                if len(row) != 10:
                    raise DataError(f"{path}: line {line}: expected 10 columns, got {len(row)}")
                vid, ts, cls, _, obj, presence = row[:6]
                try:
                    x1, x2, y1, y2 = (float(v) for v in row[6:])
                except ValueError:
                    raise DataError(f"{path}: line {line}: non-numeric box {row[6:]}") from None
                tracks[(vid, cls, obj)].append((int(ts), presence == "present", (x1, y1, x2, y2)))
        for (vid, cls, obj), rows in sorted(tracks.items()):
            folder = root / "frames" / vid
            if not folder.is_dir():
                continue
            rows.sort()
            paths = [folder / f"{ts}.jpg" for ts, _, _ in rows]
            boxes = np.zeros((len(rows), 4), np.float32)
            for i, (p, (_, present, box)) in enumerate(zip(paths, rows, strict=True)):
                if not present:
                    continue  # absent rows carry -1 coordinates: keep a zero box, usable_frames drops it
                try:
                    w, h = image_size(read_image_bytes(p), p)
                except (DataError, OSError):
                    continue  # the frame is left out (and logged) when the records are written
                boxes[i] = np.asarray(box) * (w, h, w, h)
            yield f"{vid}/{cls}_{obj}", paths, boxes, np.asarray([r[1] for r in rows])


BUILDERS: dict[str, type[_TrackBuilder]] = {
    b.name: b for b in (Got10k, Lasot, ImagenetVid, ImagenetDet, Coco, YoutubeBb)
}


def build(name: str, manual_dir: str | os.PathLike, data_dir: str | os.PathLike) -> Path:
    """Builds dataset ``name`` (a key of ``BUILDERS``) from ``manual_dir``; returns its version directory.

    Records are streamed to array_record shards in track order (``tfds.core.SequentialWriter``: no
    shuffling pass, so no TensorFlow and no temporary copy at any size), the track index is written beside
    them, and the version directory appears complete or not at all (``atomic_directory``). A version
    directory that already exists is reused, as TFDS does; delete it to rebuild.
    """
    if name not in BUILDERS:
        raise DataError(f"unknown dataset {name!r} (expected one of {', '.join(BUILDERS)})")
    manual = Path(manual_dir)
    if not manual.is_dir():
        raise FileNotFoundError(f"{manual}: manual directory not found")
    if not any(manual.iterdir()):
        raise FileNotFoundError(f"{manual}: manual directory is empty")
    builder = BUILDERS[name](data_dir=os.fspath(data_dir), file_format="array_record")
    out = Path(os.fspath(builder.data_dir))
    if (out / "dataset_info.json").is_file():
        _LOG.info("%s: already built (delete it to rebuild)", out)
        return out
    splits = builder._splits(manual)
    if not splits:
        raise FileNotFoundError(f"{manual}: no {name} split found ({builder.MANUAL_DOWNLOAD_INSTRUCTIONS})")
    with atomic_directory(out) as tmp:
        # The writer writes where the builder's info points: a builder rooted in the temporary directory.
        staging = BUILDERS[name](data_dir=os.fspath(tmp / "staging"), file_format="array_record")
        inner = Path(os.fspath(staging.data_dir))
        inner.mkdir(parents=True)
        writer = tfds.core.SequentialWriter(
            staging.info, max_examples_per_shard=_RECORDS_PER_SHARD, file_format="array_record"
        )
        for split in splits:
            writer.initialize_splits([split])
            index = IndexWriter()
            for chunk in _chunks(staging.examples(manual, split, index), 1000):
                writer.add_examples({split: chunk})  # also rewrites dataset_info.json: keep chunks large
            writer.close_splits([split])
            index.finish().save(index_path(inner, split))
            _LOG.info("%s %s: %d tracks, %d frames", name, split, len(index), index.frames)
        for f in inner.iterdir():
            f.rename(tmp / f.name)
        shutil.rmtree(tmp / "staging")
    for split in splits:
        TfdsSource(out, split).verify_order()  # records and index agree
    return out


def _chunks(items: Iterator, n: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


if __name__ == "__main__":  # the command lives in siamrn_jax.cli
    import sys

    from siamrn_jax.cli.tfds_builders import main

    sys.exit(main())
