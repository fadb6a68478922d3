"""The per-track index stored beside a TFDS training dataset (``track_index.<split>.npz``), format 2.0.0.

Written by ``tfds_builders`` while it writes the records, read by ``TfdsSource``, which opens a dataset
from this file alone (no pass over the records). Arrays, with T tracks and N frame records:

    keys:    [T] str, track keys ``<video>/<track id>``, in record order
    offsets: [T + 1] int64, track t is records ``offsets[t] .. offsets[t + 1] - 1``
    boxes:   [N, 4] float32 (x1, y1, x2, y2) in frame pixels, as annotated (NaN kept)
    visible: [N] bool, the dataset's visibility flag
    sizes:   [N, 2] int32 (width, height) of the image, from its header
    nbytes:  [N] int64, bytes of the stored image file
    format:  () str, ``FORMAT``
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from siamrn_jax.data.source import DataError
from siamrn_jax.format_json import read_npz

FORMAT = "2.0.0"


def index_path(directory: str | os.PathLike, split: str) -> Path:
    """Where the index of ``split`` lives in a dataset's version directory."""
    return Path(directory) / f"track_index.{split}.npz"


@dataclasses.dataclass(frozen=True, eq=False)
class TrackIndex:
    """The index arrays (see the module docstring for shapes and conventions)."""

    keys: np.ndarray
    offsets: np.ndarray
    boxes: np.ndarray
    visible: np.ndarray
    sizes: np.ndarray
    nbytes: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def num_records(self) -> int:
        return int(self.offsets[-1])

    def save(self, path: str | os.PathLike) -> None:
        # Written inside TFDS's incomplete directory, which is renamed into place with the records.
        np.savez(path, format=np.asarray(FORMAT), **dataclasses.asdict(self))

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrackIndex:
        """Reads and checks an index; ``DataError`` naming the file if it is missing, corrupt or foreign."""
        path = Path(path)
        fields = [f.name for f in dataclasses.fields(cls)]
        try:
            arrays = read_npz(path, DataError, "corrupt track index")
        except FileNotFoundError:
            raise DataError(f"{path}: no track index") from None
        version = str(arrays.get("format", "?"))
        if version != FORMAT:
            raise DataError(f"{path}: track index format {version}, expected {FORMAT}")
        missing = [k for k in fields if k not in arrays]
        if missing:
            raise DataError(f"{path}: corrupt track index (no {', '.join(missing)})")
        index = cls(**{k: arrays[k] for k in fields})
        index.check(path)
        return index

    def check(self, where: str | os.PathLike) -> None:
        """Shapes agree with each other; ``DataError`` naming ``where`` otherwise."""
        n, t = self.num_records if len(self.offsets) else -1, len(self.keys)
        shapes_ok = (
            self.offsets.shape == (t + 1,)
            and self.offsets[0] == 0
            and bool(np.all(np.diff(self.offsets) >= 0))
            and self.boxes.shape == (n, 4)
            and self.visible.shape == (n,)
            and self.sizes.shape == (n, 2)
            and self.nbytes.shape == (n,)
        )
        if not shapes_ok:
            raise DataError(f"{where}: inconsistent track index ({t} tracks, offsets {self.offsets.shape})")


class IndexWriter:
    """Accumulates the index while the builder yields records, one track at a time."""

    def __init__(self):
        self._keys: list[str] = []
        self._offsets = [0]
        self._boxes: list[np.ndarray] = []
        self._visible: list[bool] = []
        self._sizes: list[tuple[int, int]] = []
        self._nbytes: list[int] = []

    def add_frame(self, box: np.ndarray, visible: bool, size: tuple[int, int], nbytes: int) -> None:
        self._boxes.append(np.asarray(box, np.float32).reshape(4))
        self._visible.append(bool(visible))
        self._sizes.append(size)
        self._nbytes.append(nbytes)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def frames(self) -> int:
        return len(self._boxes)

    def end_track(self, key: str) -> None:
        self._keys.append(key)
        self._offsets.append(len(self._boxes))

    def finish(self) -> TrackIndex:
        n = len(self._boxes)
        return TrackIndex(
            keys=np.asarray(self._keys, dtype=str),
            offsets=np.asarray(self._offsets, np.int64),
            boxes=np.asarray(self._boxes, np.float32).reshape(n, 4),
            visible=np.asarray(self._visible, bool),
            sizes=np.asarray(self._sizes, np.int32).reshape(n, 2),
            nbytes=np.asarray(self._nbytes, np.int64),
        )
