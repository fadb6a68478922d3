"""Binary inputs, fuzzed: ``.pth`` files (zip and legacy pickle), the TFDS track index, frames (JPEG / PNG
/ BMP, 8- and 16-bit, one, three and four channels) through every image reader, and videos."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import cv2
import numpy as np
from hypothesis import strategies as st

from siamrn_jax.convert.torch_pickle import load_pth, save_pth
from siamrn_jax.data import source as data_source
from siamrn_jax.data.tfds_builders import image_size, read_image_bytes
from siamrn_jax.data.track_index import IndexWriter, TrackIndex
from siamrn_jax.io import sources
from tests.fuzz.fuzzing import Mutation, mutations, outcome, scratch, twin

STATE = {"conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "bn.num": np.int64(3)}


def _pth_seeds() -> dict[str, bytes]:
    import torch  # the [convert] extra: only to write the legacy-format seed

    with scratch() as d:
        save_pth(STATE, d / "zip.pth")
        zipped = (d / "zip.pth").read_bytes()
    buf = io.BytesIO()
    legacy = {"conv.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2), "n": torch.tensor(3)}
    torch.save(legacy, buf, _use_new_zipfile_serialization=False)
    return {"zip": zipped, "legacy": buf.getvalue()}


PTH = _pth_seeds()


def check_pth(kind: str, m: Mutation) -> None:
    with scratch() as d:
        path = d / "model.pth"
        path.write_bytes(m(PTH[kind]))
        got = outcome(lambda: load_pth(path), [path])
        assert got is None or isinstance(
            got, dict | list | tuple | np.ndarray | int | float | str | type(None)
        )


test_pth, test_pth_long = twin(st.sampled_from(sorted(PTH)), mutations(4096))(check_pth)


def _index_seed() -> bytes:
    w = IndexWriter()
    for t in range(2):
        for f in range(3):
            w.add_frame(np.array([1, 2, 30, 40]) + f, f != 1, (64, 48), 1000 + f)
        w.end_track(f"video{t}/00")
    with scratch() as d:
        w.finish().save(d / "index.npz")
        return (d / "index.npz").read_bytes()


INDEX = _index_seed()


def check_track_index(m: Mutation) -> None:
    with scratch() as d:
        path = d / "index.npz"
        path.write_bytes(m(INDEX))
        got = outcome(lambda: TrackIndex.load(path), [path])
        assert got is None or got.boxes.shape == (got.num_records, 4)


test_track_index, test_track_index_long = twin(mutations(len(INDEX)))(check_track_index)


def _image_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    out = {}
    for name, ext, img in [
        ("jpeg", ".jpg", rgb),
        ("jpeg-gray", ".jpg", rgb[..., 0]),
        ("png", ".png", rgb),
        ("png-16bit-gray", ".png", rng.integers(0, 65535, (12, 16), dtype=np.uint16)),
        ("png-16bit-rgba", ".png", rng.integers(0, 65535, (12, 16, 4), dtype=np.uint16)),
        ("bmp", ".bmp", rgb),
    ]:
        ok, enc = cv2.imencode(ext, img)
        assert ok
        out[name] = enc.tobytes()
    return out


IMAGES = _image_seeds()
SUFFIX = {"jpeg": ".jpg", "jpeg-gray": ".jpg", "png": ".png", "png-16bit-gray": ".png", "bmp": ".bmp"}


def check_image(kind: str, m: Mutation) -> None:
    with scratch() as d:
        path = d / f"00000001{SUFFIX.get(kind, '.png')}"
        path.write_bytes(m(IMAGES[kind]))
        for read in (sources.read_image, data_source.read_image):
            frame = outcome(lambda read=read: read(path), [path])
            assert frame is None or (frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8)
        data = outcome(lambda: read_image_bytes(path), [path])
        if data is not None:
            size = outcome(lambda: image_size(data, path), [path])
            assert size is None or len(size) == 2


test_image, test_image_long = twin(st.sampled_from(sorted(IMAGES)), mutations(4096))(check_image)


def _video_seed() -> bytes:
    with scratch() as d:
        w = cv2.VideoWriter(str(d / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
        rng = np.random.default_rng(0)
        for _ in range(6):
            w.write(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
        w.release()
        return (d / "v.avi").read_bytes()


VIDEO = _video_seed()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def check_video(m: Mutation) -> None:
    with scratch() as d:
        path = d / "v.avi"
        path.write_bytes(m(VIDEO))
        log, records = logging.getLogger(sources.__name__), _Records()
        log.addHandler(records)
        try:
            frames = outcome(lambda: _decode(path), [path])
        finally:
            log.removeHandler(records)
        assert frames is None or all(f.ndim == 3 and f.shape[2] == 3 and f.dtype == np.uint8 for f in frames)
        assert all(str(path) in msg for msg in records.messages), records.messages


def _decode(path: Path) -> list[np.ndarray]:
    src = sources.open_input(path)
    frames = list(src)
    if frames:
        src[len(frames) - 1]  # random access to the last decodable frame too
    return frames


test_video, test_video_long = twin(mutations(len(VIDEO)))(check_video)
