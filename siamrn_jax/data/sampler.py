"""Training samples: dataset mixture, triplets, negative supports and host-side targets (SPEC 7.3-8.5).

``TripletSampler.sample(index)`` builds global sample ``index`` of the run, deterministically: every random
draw comes from ``np.random.default_rng([seed, index])``, so a sample is the same whichever worker process
builds it, however the run is split over devices and hosts, and after a restart. A bad frame (a
``DataError`` from a source's ``crop511``) makes the sample draw again from ``[seed, index, attempt]``:
skipped, counted in the sample's ``bad_reads`` and reported in ``bad_read_errors``, as deterministic.

Mixture (SPEC 8.1, pysot ``BANDataset``): each dataset contributes ``num_use`` picks per pass (its videos
repeated in shuffled rounds, truncated); the concatenation of all datasets' picks is one pass of
``sum(num_use)`` entries, and the run walks through independently shuffled passes. Pass ``p`` is a pure
function of ``(seed, p)`` (the official code pre-shuffles one 20 M list; no 80 MB list here, and each pass
draws its own ``num_use`` subset where pysot keeps the one drawn at start). Like pysot's ``SubDataset``, a
pick is a video and the sample takes a random track of it (``video_groups``): a video with several tracks
(VID, YouTube-BB, a COCO / DET image with several objects) weighs as much as one with a single track.

Per sample (SPEC 8.1): ``gray`` and ``neg`` coins; a positive triple (template frame t, search frame within
+-``frame_range`` of t, query = any other frame) or, for ``neg``, a positive pair (template t, query within
+-``frame_range`` of t) and a random target of a random dataset as the search image; a negative support
from the offline hard-negative index when available, otherwise a random target; the crops augmented
(``augment``); point labels; gaussian positive and uniform negative proposals on the query; the
permutation of the four pair groups; the batch's coin for group D. ``draw`` makes the choices that come
before the targets (``SampleDraws``), ``build`` makes the sample from them (and the recorded choices of
the official code, ``tests/data/test_official_data.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from siamrn_jax.data import targets
from siamrn_jax.data.augment import SEARCH, TEMPLATE, AugmentDraws, apply_augment, draw_augment
from siamrn_jax.data.source import DataError, TrackSource

EXEMPLAR = 127
INSTANCE = 255
# Draws of one sample before a run of bad frames is an error (a 1 % bad-frame rate, 4 reads per draw:
# 16 failures in a row has probability ~1e-23).
MAX_ATTEMPTS = 16
REPORT_KEYS = ("bad_reads", "bad_read_errors")  # the data report of a sample, not fed to the step


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the mixture.

    Attributes:
      source: the tracks.
      num_use: picks per pass (``NUM_USE``; -1 = one per video).
      frame_range: max template-search frame distance (``FRAME_RANGE``).
      hard_negatives: take negative supports from the offline HNM index (official: VID, GOT10K, LASOT).
    """

    source: TrackSource
    num_use: int
    frame_range: int
    hard_negatives: bool = False

    @functools.cached_property
    def videos(self) -> tuple[np.ndarray, np.ndarray]:
        """``video_groups(self.source)``, computed once."""
        return video_groups(self.source)

    @property
    def picks(self) -> int:
        return len(self.videos[1]) - 1 if self.num_use < 0 else self.num_use

    def track_of(self, video: int, rng: np.random.Generator) -> int:
        """A random track of ``video`` (pysot's ``np.random.choice`` of the video's tracks); no draw for a
        video with one track."""
        order, offsets = self.videos
        lo, n = int(offsets[video]), int(offsets[video + 1] - offsets[video])
        return int(order[lo + (int(rng.integers(n)) if n > 1 else 0)])


def video_groups(source: TrackSource) -> tuple[np.ndarray, np.ndarray]:
    """The source's tracks grouped by video: (tracks in video order [T] int32, offsets [V + 1] int64); the
    tracks of video ``v`` are ``tracks[offsets[v]:offsets[v + 1]]``.

    A source that knows its videos has ``track_videos()`` ([T] ints, equal for the tracks of one video;
    ``PysotSource``, ``TfdsSource``); for any other source every track is a video of its own.
    """
    n = len(source)
    fn = getattr(source, "track_videos", None)
    if fn is None:
        return np.arange(n, dtype=np.int32), np.arange(n + 1, dtype=np.int64)
    _, video = np.unique(np.asarray(fn()).reshape(n), return_inverse=True)
    order = np.argsort(video, kind="stable").astype(np.int32)
    return order, np.concatenate([[0], np.cumsum(np.bincount(video))]).astype(np.int64)


def _xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    return np.concatenate([b[:2], b[2:] - b[:2]])


@dataclasses.dataclass(frozen=True)
class SampleDraws:
    """The random choices of one sample that come before its targets (``TripletSampler.draw``); with a
    generator for the rest, ``TripletSampler.build`` turns them into the sample. Frames are 0-based among
    a track's usable frames; datasets and tracks are positions in the sampler's mixture.

    Attributes:
      index: global sample index (it decides the batch's group-D coin).
      gray, neg: the sample's coins (gray crops; negative BAN pair).
      dataset, track: the track of the positive triple.
      template_frame, search_frame, query_frame: the triple: search within +-frame_range of the template
        (may equal it), query any other frame (the only frame of a one-frame track). A negative pair uses
        (template_frame, search_frame) as its template and query, like pysot's ``get_positive_pair``
        (``query_frame`` is then unused).
      search_target: (dataset, track, frame) of a negative pair's search image; None for a positive pair.
      support: (dataset, track, frame) of the negative support.
      augment: ``AugmentDraws`` of the template, search, query and negative-support crops.
    """

    index: int
    gray: bool
    neg: bool
    dataset: int
    track: int
    template_frame: int
    search_frame: int
    query_frame: int
    search_target: tuple[int, int, int] | None
    support: tuple[int, int, int]
    augment: tuple[AugmentDraws, AugmentDraws, AugmentDraws, AugmentDraws]


class TripletSampler:
    """Deterministic random-access training samples.

    Args:
      datasets: the mixture.
      seed: run seed.
      global_batch: samples per step over all devices (the group-D coin is drawn once per global batch).
      gray: probability of a gray sample (``DATASET.GRAY``: 0 VOT config, 0.2 OTB config).
      neg: probability of a negative BAN pair (``DATASET.NEG`` 0.2).
      hnm_index: optional offline hard-negative index (``hnm_index.HardNegativeIndex``) over ``datasets``
        (its source indices are positions in ``datasets``).
      score_size, stride: score-map geometry for the point labels (25, 8).
    """

    def __init__(
        self,
        datasets: Sequence[DatasetSpec],
        *,
        seed: int,
        global_batch: int,
        gray: float = 0.0,
        neg: float = 0.2,
        hnm_index: Any = None,
        score_size: int = 25,
        stride: int = 8,
    ):
        if not datasets:
            raise ValueError("TripletSampler: no datasets")
        for d in datasets:
            if len(d.source) == 0:
                raise ValueError(f"TripletSampler: dataset {d.source.name} has no usable tracks")
        self.datasets = tuple(datasets)
        self.seed = int(seed)
        self.global_batch = int(global_batch)
        self.gray, self.neg = float(gray), float(neg)
        self.hnm_index = hnm_index
        self.score_size, self.stride = score_size, stride
        self._pass_len = sum(d.picks for d in self.datasets)
        self._cached_pass: tuple[int, np.ndarray, np.ndarray] | None = None

    def __getstate__(self):
        # Worker processes rebuild the pass cache lazily.
        return {**self.__dict__, "_cached_pass": None}

    # --- the mixture -------------------------------------------------------------------------------

    def _pass(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        """(dataset, video) arrays of pass ``p`` in its shuffled order."""
        if self._cached_pass is None or self._cached_pass[0] != p:
            rng = np.random.default_rng([self.seed, 0x5A3D, p])
            ds, tr = [], []
            for i, d in enumerate(self.datasets):
                n = len(d.videos[1]) - 1
                rounds = -(-d.picks // n)
                videos = np.concatenate([rng.permutation(n) for _ in range(rounds)])[: d.picks]
                ds.append(np.full(d.picks, i, np.int32))
                tr.append(videos.astype(np.int64))
            order = rng.permutation(self._pass_len)
            self._cached_pass = (p, np.concatenate(ds)[order], np.concatenate(tr)[order])
        return self._cached_pass[1], self._cached_pass[2]

    def pick(self, index: int) -> tuple[int, int]:
        """(dataset, video) of global sample ``index`` (videos as in ``DatasetSpec.videos``)."""
        ds, tr = self._pass(index // self._pass_len)
        k = index % self._pass_len
        return int(ds[k]), int(tr[k])

    def _random_frame(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(dataset, track, frame) of a random target: a random dataset, video, track of it and frame
        (pysot's ``get_random_target``)."""
        d = int(rng.integers(len(self.datasets)))
        spec = self.datasets[d]
        t = spec.track_of(int(rng.integers(len(spec.videos[1]) - 1)), rng)
        return d, t, int(rng.integers(spec.source.track_length(t)))

    # --- one sample --------------------------------------------------------------------------------

    def frames(
        self, index: int, rng: np.random.Generator, pick: tuple[int, int] | None = None
    ) -> tuple[int, int, int, int, int]:
        """(dataset, track, template frame, search frame, query frame) of a positive triple.

        ``pick`` = (dataset, video) replaces ``self.pick(index)`` (a redrawn sample's video). The track is
        a random one of the video (no draw for a one-track video).
        """
        d, v = self.pick(index) if pick is None else pick
        spec = self.datasets[d]
        t = spec.track_of(v, rng)
        n = spec.source.track_length(t)
        ft = int(rng.integers(n))
        lo, hi = max(0, ft - spec.frame_range), min(n - 1, ft + spec.frame_range)
        fs = int(rng.integers(lo, hi + 1))
        others = n - 1
        fq = ft if others == 0 else int(rng.integers(others))
        fq += int(fq >= ft and others > 0)  # any frame but the template's
        return d, t, ft, fs, fq

    def sample(self, index: int) -> dict[str, np.ndarray]:
        """Global sample ``index``: the per-sample arrays of ``siamrn_jax.train.forward``'s batch, plus the
        data report (``REPORT_KEYS``, for the training loop, not the step).

        A bad frame (``DataError`` from ``crop511``: missing, unreadable, corrupt) is skipped: the whole
        sample is drawn again with ``np.random.default_rng([seed, index, attempt])``, attempt = 1, 2, ...
        (attempt 0 is the plain ``[seed, index]`` draw, so clean data gives exactly the samples it always
        did). A redraw keeps the sample's dataset (the mixture proportions) but picks its video at random
        within it, so a track whose only frame is bad is left too. Deterministic like every sample.

        Returns:
          the arrays of ``_build`` and ``bad_reads``: [] int32 failed attempts; ``bad_read_errors``: []
          unicode, their one-line messages joined by newlines ('' when none).

        Raises:
          DataError: ``MAX_ATTEMPTS`` attempts in a row met bad data (then the data is mostly bad).
        """
        errors: list[str] = []
        for attempt in range(MAX_ATTEMPTS):
            key = [self.seed, int(index)] if attempt == 0 else [self.seed, int(index), attempt]
            rng = np.random.default_rng(key)
            try:
                out = self._build(index, rng, redraw=attempt > 0)
            except DataError as e:
                errors.append(" ".join(str(e).split()))
                continue
            out["bad_reads"] = np.asarray(len(errors), np.int32)
            out["bad_read_errors"] = np.asarray("\n".join(errors), np.str_)
            return out
        raise DataError(f"sample {index}: {MAX_ATTEMPTS} draws in a row met bad data; last: {errors[-1]}")

    def _build(self, index: int, rng: np.random.Generator, redraw: bool) -> dict[str, np.ndarray]:
        """One draw of sample ``index`` from ``rng``; ``redraw``: a random video of the picked dataset."""
        return self.build(self.draw(index, rng, redraw), rng)

    def draw(self, index: int, rng: np.random.Generator, redraw: bool = False) -> SampleDraws:
        """The random choices of sample ``index`` that come before its targets (no image is read).

        Draw order: gray and neg coins, (``redraw``: a random video of the picked dataset), the triple's
        frames (``frames``), the negative pair's search target (neg only), the negative support (offline
        HNM index or a random target), then ``draw_augment`` of template, search, query, negative support.
        """
        gray = bool(rng.random() < self.gray)
        neg = bool(rng.random() < self.neg)
        pick = None
        if redraw:
            d = self.pick(index)[0]
            pick = (d, int(rng.integers(len(self.datasets[d].videos[1]) - 1)))
        d, t, ft, fs, fq = self.frames(index, rng, pick)
        search_target = self._random_frame(rng) if neg else None
        support = self._negative_support(d, t, rng)
        augs = tuple(draw_augment(a, rng) for a in (TEMPLATE, SEARCH, SEARCH, TEMPLATE))
        return SampleDraws(int(index), gray, neg, d, t, ft, fs, fq, search_target, support, augs)

    def build(self, draws: SampleDraws, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The sample of ``draws``: crops, boxes, point labels, proposals, pair-group order, group-D coin.

        The remaining draws come from ``rng``, in order: the point-label subsets
        (``targets.point_labels``), the gaussian positives, the uniform negatives, the group permutation.
        The group-D coin is a function of the run seed and the global batch of ``draws.index``.

        Raises:
          DataError: a frame's image is missing, unreadable or corrupt.
        """
        src = self.datasets[draws.dataset].source
        t = draws.track
        z_img, z_box = src.crop511(t, draws.template_frame)
        # A negative pair keeps a positive (template, query) pair for the RD: pysot's get_positive_pair,
        # whose second frame is the triple's search frame (within +-frame_range), SPEC 8.1.
        q_img, q_box = src.crop511(t, draws.search_frame if draws.neg else draws.query_frame)
        x_img, x_box = self._crop(draws.search_target) if draws.neg else src.crop511(t, draws.search_frame)
        n_img, n_box = self._crop(draws.support)

        a_z, a_x, a_q, a_n = draws.augment
        template, template_box = apply_augment(z_img, z_box, EXEMPLAR, TEMPLATE, a_z, draws.gray)
        search, search_box = apply_augment(x_img, x_box, INSTANCE, SEARCH, a_x, draws.gray)
        query, query_box = apply_augment(q_img, q_box, INSTANCE, SEARCH, a_q, draws.gray)
        neg_support, neg_box = apply_augment(n_img, n_box, EXEMPLAR, TEMPLATE, a_n, draws.gray)

        label_cls, label_loc = targets.point_labels(
            search_box, not draws.neg, rng, size=self.score_size, stride=self.stride, instance_size=INSTANCE
        )
        gt = _xyxy_to_xywh(query_box)
        pos_gauss = targets.positive_proposals(gt, rng)
        neg_uniform = targets.negative_proposals(gt, rng)
        order = rng.permutation(4).astype(np.int32)
        batch = int(draws.index) // self.global_batch
        flip = np.random.default_rng([self.seed, 0xF11B, batch]).random() < 0.5
        f32 = np.float32
        return {
            "template": template.astype(f32),
            "template_box": template_box.astype(f32),
            "neg_support": neg_support.astype(f32),
            "neg_box": neg_box.astype(f32),
            "search": search.astype(f32),
            "label_cls": label_cls.astype(np.int32),
            "label_loc": label_loc.astype(f32),
            "query": query.astype(f32),
            "query_box": query_box.astype(f32),
            "pos_gauss": pos_gauss.astype(f32),
            "neg_uniform": neg_uniform.astype(f32),
            "group_order": order,
            "flip": np.asarray(flip),
            "index": np.asarray(draws.index, np.int32),
        }

    def _crop(self, where: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        d, t, f = where
        return self.datasets[d].source.crop511(t, f)

    def _negative_support(self, d: int, t: int, rng: np.random.Generator) -> tuple[int, int, int]:
        if self.hnm_index is not None and self.datasets[d].hard_negatives:
            hit = self.hnm_index.neighbour(d, t, rng)
            if hit is not None:
                return tuple(int(v) for v in hit)
        return self._random_frame(rng)

    def batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """Stacked samples (leading axis = ``len(indices)``), the data report included (``split_report``).

        ``bad_read_errors`` stacks to a fixed-width unicode array ([B] ``<U n``), which grain's worker
        processes pass through shared memory like the other arrays (an object array would be pickled).
        """
        samples = [self.sample(i) for i in indices]
        return {k: np.stack([s[k] for s in samples]) for k in samples[0]}


def split_report(batch: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int, list[str]]:
    """(the batch without ``REPORT_KEYS``, bad reads in it, their messages) of a ``TripletSampler.batch``.

    The jitted step takes only the model's arrays (a unicode array cannot go to a device), so everything
    that feeds a batch to it takes the report out first; the training loop logs and counts it.
    """
    rest = {k: v for k, v in batch.items() if k not in REPORT_KEYS}
    bad = int(np.sum(batch.get("bad_reads", 0)))
    messages = [m for text in np.ravel(batch.get("bad_read_errors", [])) for m in str(text).split("\n") if m]
    return rest, bad, messages
