"""Offline hard-negative supports (SPEC 8.3): an approximate-nearest-neighbour index over template crops.

The official code queries a 32768-d Annoy index (angular metric) whose items are frames of VID, GOT-10k and
LaSOT; the index, its item list and the embedding recipe were never released. This module rebuilds one:

- item = one frame of one track of a ``TrackSource``; ``items_per_track`` frames are drawn per track;
- its image = the centre 127 template crop of the frame's crop511 image, cut exactly as ``augment`` cuts a
  template with zero shift and scale (``template_crop``);
- its embedding = ``embed_templates``: backbone features [N, h, w, C] (SiamRN's ResNet-50 layer4 by default,
  C = 2048) adaptive-average-pooled to 4x4 and flattened to 4 * 4 * C (= 32768, the official width; our
  reconstruction of the recipe), L2-normalised;
- a usearch HNSW index with the cosine metric (= Annoy's angular up to a monotone map).

``HardNegativeIndex.neighbour`` then does what the official sampler does: draw one item of the sample's track,
query its nearest neighbours and pick one of the first 4 at random, except that all items of the query's
own track are dropped (a design choice; the official dropped only the first hit, assumed to be the item
itself, and could return a frame of the same track). See docs/offline_hnm.md.

CLI (minimal)::

    python -m siamrn_jax.data.hnm_index build --out DIR --checkpoint CKPT_DIR|random \
        --source synthetic:64 --source pysot:VID:ROOT:ANNO --source tfds:DIR[:SPLIT]
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from siamrn_jax.atomic import atomic_output
from siamrn_jax.data.augment import crop_window
from siamrn_jax.data.source import EXEMPLAR, DataError, TrackSource
from siamrn_jax.format_json import read_json, read_npz

INDEX_FILE = "index.usearch"
TABLE_FILE = "table.npz"
META_FILE = "meta.json"
POOL = 4  # 4x4 adaptive average pool: 4 * 4 * 2048 = 32768, the official embedding width


def template_crop(image511: np.ndarray) -> np.ndarray:
    """The un-augmented 127 template crop of a crop511 image.

    The window of side 126 centred at (H // 2, W // 2) is mapped onto [0, 126] (``crop_window``), which is
    ``augment(image, box, 127, aug)`` with zero shift and scale.

    Args:
      image511: [511, 511, 3] uint8 BGR.

    Returns:
      [127, 127, 3] float32 BGR, 0-255.
    """
    c = image511.shape[0] // 2
    half = (EXEMPLAR - 1) / 2
    return crop_window(image511, (c - half, c - half, c + half, c + half), EXEMPLAR).astype(np.float32)


def adaptive_avg_pool(features: np.ndarray, out: int = POOL) -> np.ndarray:
    """PyTorch ``adaptive_avg_pool2d`` on NHWC: bin i spans [floor(i h / out), ceil((i + 1) h / out)).

    Args:
      features: [N, h, w, C].

    Returns:
      [N, out, out, C] float32.
    """
    f = np.asarray(features, np.float32)
    h, w = f.shape[1:3]
    rows = [(i * h // out, -(-(i + 1) * h // out)) for i in range(out)]
    cols = [(j * w // out, -(-(j + 1) * w // out)) for j in range(out)]
    pooled = np.stack(
        [np.stack([f[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in cols], axis=1) for r0, r1 in rows],
        axis=1,
    )
    return pooled


def embed_templates(apply_fn: Callable, images: np.ndarray, pool: int = POOL) -> np.ndarray:
    """Embeddings of template crops.

    Args:
      apply_fn: maps a [N, 127, 127, 3] float32 BGR (0-255) batch to features [N, h, w, C].
      images: [N, 127, 127, 3] float32 BGR.
      pool: side of the adaptive average pool.

    Returns:
      [N, pool * pool * C] float32, each row L2-normalised (a zero row stays zero).
    """
    feats = np.asarray(apply_fn(np.asarray(images, np.float32)))
    if feats.ndim != 4:
        raise RuntimeError(f"embed_templates: apply_fn returned shape {feats.shape}, expected [N, h, w, C]")
    emb = adaptive_avg_pool(feats, pool).reshape(len(feats), -1)
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.maximum(norm, 1e-12)


def backbone_apply_fn(model, variables) -> Callable[[np.ndarray], np.ndarray]:
    """A jitted ``[N, 127, 127, 3] float32 BGR -> [N, h, w, C]``: the SiamRN backbone's last level (layer4),
    BatchNorm in eval mode. For ResNet-50: [N, 15, 15, 2048]. Each new batch size compiles once.
    """
    import jax

    @jax.jit
    def run(v, x):
        return model.apply(v, x, method=lambda m, x: m.backbone(x.astype(m.dtype), train_layers=False)[-1])

    return lambda x: np.asarray(run(variables, x), np.float32)


def _write_atomic(path: Path, write: Callable[[str], None]) -> None:
    """``write(tmp_path)`` (usearch's ``save`` takes a path, not a file) through ``atomic_output``."""
    with atomic_output(path) as tmp:
        write(str(tmp))


class HardNegativeIndex:
    """Item table + usearch index; see the module docstring.

    Attributes:
      item_source, item_track, item_frame: [num_items] int32, item id -> (source index, track, frame).
      track_keys: per source, the ``track_key`` of every track at build time (checked by ``check_sources``).
      neighbours: [num_items, K] int64 or None, precomputed search results (-1 padded). With it, ``neighbour``
        is a table lookup: the usearch index is never opened in loader workers (a 32768-d query costs ~20 ms
        on 2 CPU cores).
    """

    def __init__(
        self,
        item_source: np.ndarray,
        item_track: np.ndarray,
        item_frame: np.ndarray,
        track_keys: list[list[str]],
        ndim: int,
        index=None,
        path: str | None = None,
        neighbours: np.ndarray | None = None,
        neighbours_k: int = 0,
    ):
        self.item_source = np.asarray(item_source, np.int32)
        self.item_track = np.asarray(item_track, np.int32)
        self.item_frame = np.asarray(item_frame, np.int32)
        self.track_keys = track_keys
        self.ndim = int(ndim)
        self._index = index
        self._path = path  # the saved index file, restored lazily (memory-mapped) in each process
        # [num_items, K] int64 nearest items of each item (-1 = none), from ``precompute_neighbours``.
        self.neighbours = None if neighbours is None else np.asarray(neighbours, np.int64)
        self.neighbours_k = int(neighbours_k) if neighbours is not None else 0
        self._by_track = self._group()

    def _group(self) -> dict[tuple[int, int], np.ndarray]:
        order = np.lexsort((self.item_track, self.item_source))
        pairs = np.stack([self.item_source[order], self.item_track[order]], axis=1)
        out = {}
        if len(order):
            starts = np.concatenate([[0], np.nonzero(np.any(pairs[1:] != pairs[:-1], axis=1))[0] + 1])
            for s, e in zip(starts, [*starts[1:], len(order)], strict=True):
                out[(int(pairs[s, 0]), int(pairs[s, 1]))] = order[s:e].astype(np.int64)
        return out

    def __len__(self) -> int:
        return len(self.item_source)

    @staticmethod
    def _new_index(ndim: int, dtype: str):
        from usearch.index import Index

        return Index(ndim=ndim, metric="cos", dtype=dtype)

    @classmethod
    def build(
        cls,
        sources: Sequence[TrackSource],
        embed_fn: Callable[[np.ndarray], np.ndarray],
        items_per_track: int = 4,
        seed: int = 0,
        batch_size: int = 32,
        dtype: str = "f32",
        precompute_k: int | None = 4,
        log: Callable[[str], None] | None = None,
    ) -> HardNegativeIndex:
        """Samples, embeds and indexes ``items_per_track`` frames of every track of every source.

        Args:
          sources: the datasets; an item remembers its source by position in this list.
          embed_fn: [N, 127, 127, 3] float32 BGR -> [N, D] L2-normalised (e.g. ``lambda x:
            embed_templates(backbone_apply_fn(model, variables), x)``). Every call gets exactly
            ``batch_size`` images (the last batch is padded by repetition), so a jitted network compiles once.
          items_per_track: frames per track, drawn without replacement (all frames of shorter tracks).
          seed: frame sampling seed.
          batch_size: images per ``embed_fn`` call.
          dtype: usearch storage type (``f32``, ``f16``, ``i8``); ``f16`` halves the memory.
          precompute_k: if set, ``precompute_neighbours(precompute_k)`` runs after indexing.
          log: progress callback.
        """
        rng = np.random.default_rng(seed)
        items = []
        for s, src in enumerate(sources):
            for t in range(len(src)):
                n = src.track_length(t)
                frames = (
                    np.arange(n) if n <= items_per_track else np.sort(rng.choice(n, items_per_track, False))
                )
                items.extend((s, t, int(f)) for f in frames)
        table = np.asarray(items, np.int32).reshape(-1, 3)
        track_keys = [[src.track_key(t) for t in range(len(src))] for src in sources]
        index, ndim = None, 0
        t0 = time.perf_counter()
        for start in range(0, len(table), batch_size):
            rows = table[start : start + batch_size]
            crops = np.stack([template_crop(sources[s].crop511(t, f)[0]) for s, t, f in rows])
            pad = batch_size - len(crops)
            if pad:
                crops = np.concatenate([crops, np.repeat(crops[-1:], pad, axis=0)])
            emb = np.asarray(embed_fn(crops), np.float32)[: len(rows)]
            if index is None:
                ndim = emb.shape[1]
                index = cls._new_index(ndim, dtype)
            index.add(np.arange(start, start + len(rows), dtype=np.uint64), emb)
            if log:
                done = start + len(rows)
                log(f"{done}/{len(table)} items, {(time.perf_counter() - t0) / done * 1e3:.1f} ms/item")
        out = cls(table[:, 0], table[:, 1], table[:, 2], track_keys, ndim, index=index)
        if precompute_k and len(out):
            out.precompute_neighbours(precompute_k)
        return out

    def precompute_neighbours(self, k: int = 4, batch_size: int = 256) -> None:
        """Stores, for every item, its ``k + (most items of one track)`` nearest items, so that ``neighbour``
        with up to ``k`` candidates never needs the index (enough hits survive dropping the own track)."""
        index = self._get_index()
        count = k + max(len(v) for v in self._by_track.values())
        out = np.full((len(self), count), -1, np.int64)
        for start in range(0, len(self), batch_size):
            keys = np.arange(start, min(start + batch_size, len(self)), dtype=np.uint64)
            vectors = np.stack(index.get(keys)).astype(np.float32)
            matches = index.search(vectors, count)
            if hasattr(matches, "counts"):
                found = np.asarray(matches.keys, np.int64).reshape(len(keys), -1)
                counts = np.asarray(matches.counts).reshape(-1, 1)
            else:  # a batch of one comes back as a single Matches, holding only the hits found
                found = np.asarray(matches.keys, np.int64).reshape(1, -1)
                counts = np.array([[found.shape[1]]])
            valid = np.arange(found.shape[1])[None] < counts
            out[start : start + len(keys), : found.shape[1]] = np.where(valid, found, -1)
        self.neighbours = out
        self.neighbours_k = k

    def _get_index(self):
        if self._index is None:
            from usearch.index import Index

            if self._path is None:
                raise DataError("HardNegativeIndex: empty index (no items)")
            self._index = Index.restore(self._path, view=True)
            if self._index is None:
                raise DataError(f"{self._path}: not a usearch index")
        return self._index

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes ``index.usearch``, ``table.npz`` and ``meta.json`` (each atomically) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if len(self):
            _write_atomic(directory / INDEX_FILE, self._get_index().save)

        def table(tmp):
            with open(tmp, "wb") as f:
                extra = {} if self.neighbours is None else {"neighbours": self.neighbours}
                np.savez(f, source=self.item_source, track=self.item_track, frame=self.item_frame, **extra)

        _write_atomic(directory / TABLE_FILE, table)
        meta = {
            "ndim": self.ndim,
            "metric": "cos",
            "pool": POOL,
            "neighbours_k": self.neighbours_k,
            "track_keys": self.track_keys,
        }
        _write_atomic(directory / META_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta)))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> HardNegativeIndex:
        """Reads what ``save`` wrote; the usearch index itself is memory-mapped on first use."""
        directory = Path(directory)
        for name in (TABLE_FILE, META_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name}: hard-negative index file not found")
        meta = read_json(directory / META_FILE, DataError)
        if not (
            isinstance(meta, dict)
            and isinstance(meta.get("ndim"), int)
            and isinstance(meta.get("track_keys"), list)
            and isinstance(meta.get("neighbours_k", 0), int | None)
        ):
            raise DataError(f"{directory / META_FILE}: not a hard-negative index description")
        z = read_npz(directory / TABLE_FILE, DataError, "corrupt item table")
        items = [z.get(k) for k in ("source", "track", "frame")]
        neighbours = z.get("neighbours")
        if (
            any(a is None or a.ndim != 1 or a.dtype.kind not in "iu" for a in items)
            or len({len(a) for a in items}) != 1
            or (neighbours is not None and (neighbours.ndim != 2 or neighbours.dtype.kind not in "iu"))
        ):
            raise DataError(f"{directory / TABLE_FILE}: corrupt item table (not integer item arrays)")
        source, track, frame = items
        path = directory / INDEX_FILE
        if len(source) and not path.is_file():
            raise FileNotFoundError(f"{path}: hard-negative index file not found")
        return cls(
            source,
            track,
            frame,
            meta["track_keys"],
            meta["ndim"],
            path=str(path) if len(source) else None,
            neighbours=neighbours,
            neighbours_k=meta.get("neighbours_k") or 0,
        )

    def check_sources(self, sources: Sequence[TrackSource]) -> None:
        """Raises ValueError unless ``sources`` have the tracks (by key, in order) the index was built on."""
        if len(sources) != len(self.track_keys):
            raise DataError(
                f"hard-negative index built on {len(self.track_keys)} sources, got {len(sources)}"
            )
        for s, (src, keys) in enumerate(zip(sources, self.track_keys, strict=True)):
            if len(src) != len(keys) or any(src.track_key(t) != k for t, k in enumerate(keys)):
                raise DataError(
                    f"hard-negative index: source {s} ({src.name}) has other tracks than at build time"
                )

    def __getstate__(self):
        state = self.__dict__.copy()
        if self._path is not None:
            state["_index"] = None  # restored (memory-mapped) lazily in the worker
        elif self._index is not None:
            state["_index"] = bytes(self._index.save())  # never saved: ship the index itself
        return state

    def __setstate__(self, state):
        index = state["_index"]
        if isinstance(index, bytes):
            from usearch.index import Index

            state["_index"] = Index.restore(index)
        self.__dict__.update(state)

    def neighbour(
        self, source_index: int, track: int, rng: np.random.Generator, k: int = 4
    ) -> tuple[int, int, int] | None:
        """A hard negative for ``track`` of source ``source_index``: (source index, track, frame) or None.

        One item of the track is drawn, its nearest neighbours queried, items of the same track dropped, and
        one of the first ``k`` remaining chosen uniformly. None if the track has no item or no neighbour.
        """
        ids = self._by_track.get((int(source_index), int(track)))
        if ids is None:
            return None
        item = int(ids[rng.integers(len(ids))])
        if self.neighbours is not None and k <= self.neighbours_k:
            keys = self.neighbours[item]
            keys = keys[keys >= 0]
        else:
            index = self._get_index()
            matches = index.search(np.asarray(index.get(item), np.float32), k + len(ids))
            keys = np.asarray(matches.keys, np.int64)  # a single query returns only the hits found
        same = (self.item_source[keys] == source_index) & (self.item_track[keys] == track)
        rest = keys[~same][:k]
        if not len(rest):
            return None
        j = int(rest[rng.integers(len(rest))])
        return int(self.item_source[j]), int(self.item_track[j]), int(self.item_frame[j])


if __name__ == "__main__":  # the command lives in siamrn_jax.cli
    import sys

    from siamrn_jax.cli.hnm_index import main

    sys.exit(main())
