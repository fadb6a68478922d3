#!/usr/bin/env python3
"""Record the OFFICIAL hqucv/siamrn training data, sample by sample, with every random choice it made.

usage: make_data_fixture.py OUT.npz [--seed S] [--refsrc DIR] [--mirror DIR] [--workdir DIR]
       (the committed fixture: OUT = tests/fixtures/official_data/samples_seed0.npz, seed 0; README.md)

Runs the official ``BANDataset.__getitem__`` (triple / negative-pair / negative-support sampling,
``Augmentation`` crops, ``PointTarget`` labels) and the official ``SampleGenerator`` proposals of
``GetMultidectTarget`` (gaussian positives, uniform negatives) on the small crop511 tree of
``tests/data/pysot_tree.py::write_official_tree`` (rebuilt by the test, no pixels stored), and stores, per
sample, the official random choices and outputs. ``tests/data/test_official_data.py`` feeds the choices
to ``TripletSampler.build`` and compares. Needs torch, yacs, a git mirror of hqucv/siamrn
(``REF_SIAMRN_MIRROR``) and the shared tools of ``../shared/tools`` (``SIAMRN_SHARED_TOOLS``), which install
the CPU shims and stubs of ``official_train/make_train_fixture.py``; not run in CI.

How the choices are recorded (the official files are not edited; everything is wrapped at run time and
the wrappers call the originals, so the global RNG streams are untouched):
  * ``SubDataset.get_image_anno``: which (video, track, frame) each role got;
  * the ``np`` of ``augmentation.py`` / ``point_target.py`` / ``gen_proposal.py`` is a proxy whose
    ``np.random`` logs every call (name, result; ``shuffle``'s array after the shuffle), parsed per
    ``Augmentation.__call__`` into (scale, shift, colour, blur, flip) draws and per sample into the label
    subsets and proposal rounds;
  * ``Augmentation.__call__``: the crop511 box and image it was given (SHA-256) and its output.

Per sample the configuration is forced to cover every path (``FORCED`` below: negative pairs, gray, blur
on all crops, flip, no colour + blur = pysot's uint8 blur), by setting ``cfg.DATASET.NEG`` / ``GRAY`` and the
two ``Augmentation`` objects' probabilities before ``__getitem__``; shift and scale stay the YAML's.
``cfg.TRAIN.HNM = False`` and ``cfg.TRAIN.MOSAIC = False`` as in make_train_fixture (SPEC 0, 7.4, 8.3: the
negative support is a random target).

Output (``np.savez_compressed``, atomic): ``meta_json`` (seed, official commit, versions, config, per
sample: forced config, frames per role, augmentation draws per role, image digests, crop digests) and per
sample ``s<i>/...``: ``{template,search,query,neg_support}_bbox`` f64 corners, ``{role}_box511`` f64 (the
crop511 box given to the augmentation), ``label_cls`` int8, ``label_loc`` f32 (4,25,25), ``pos`` (16,4)
/ ``neg`` (48,4) f64 lt proposals, ``label_perm<k>`` (the ``np.random.shuffle`` results of
``PointTarget.select``), ``pos_draw<k>`` / ``neg_draw<k>`` (the ``randn`` / ``rand`` arrays of the
``SampleGenerator`` rounds), and per crop ``{role}_sum`` / ``{role}_sumsq`` (float64 per channel) and
``{role}_sub`` (every ``SUB``-th pixel, float32 CHW).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED_TOOLS = Path(os.environ.get("SIAMRN_SHARED_TOOLS", str(REPO.parent / "shared" / "tools")))
ROLES = ("template", "search", "query", "neg_support")
# role -> (image key, box key) of the official sample dict
OUT_KEYS = {
    "template": ("template", "template_bbox"),
    "search": ("search", "search_bbox"),
    "query": ("query_img", "query_bbox"),
    "neg_support": ("neg_support_image", "neg_support_bbox"),
}
SUB = {127: 4, 255: 8}  # subsampling stride of the stored crops, by crop side
# Per sample: (neg, gray, blur, flip, color) forced; None = the YAML's probability (drawn officially).
FORCED = [
    dict(neg=0.0, gray=0.0),
    dict(neg=1.0, gray=0.0),
    dict(neg=0.0, gray=1.0),
    dict(neg=0.0, gray=0.0, blur=1.0),
    dict(neg=0.0, gray=0.0, flip=1.0),
    dict(neg=0.0, gray=0.0, blur=1.0, color=0.0),
    dict(neg=1.0, gray=1.0, flip=1.0, blur=1.0),
    dict(neg=0.0, gray=0.0),
]


class _RecRandom:
    """``np.random`` with every call appended to ``log`` as (name, result)."""

    def __init__(self, log: list):
        self._log = log

    def __getattr__(self, name):
        fn = getattr(np.random, name)

        def call(*args, **kwargs):
            out = fn(*args, **kwargs)
            kept = np.array(args[0], copy=True) if name == "shuffle" else np.array(out, copy=True)
            self._log.append((name, kept))
            return out

        return call


class _RecNumpy:
    """A stand-in for a module's ``np``: NumPy itself except ``np.random``, which records."""

    def __init__(self, log: list):
        self.random = _RecRandom(log)

    def __getattr__(self, name):
        return getattr(np, name)


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def parse_aug(aug, calls: list) -> dict:
    """pysot ``Augmentation.__call__``'s ``np.random`` calls -> the draws of ``augment.AugmentDraws``."""
    it = iter(calls)

    def take(name):
        got, value = next(it)
        assert got == name, (got, name)
        return value

    out: dict = {"scale": None, "shift": None, "color": None, "blur": None, "flip": False}
    if aug.scale:
        out["scale"] = [float(take("random")) * 2 - 1.0, float(take("random")) * 2 - 1.0]
    if aug.shift:
        out["shift"] = [float(take("random")) * 2 - 1.0, float(take("random")) * 2 - 1.0]
    if aug.color > take("random"):
        out["color"] = [float(v) for v in take("randn").reshape(3)]
    if aug.blur > take("random"):
        out["blur"] = [int(take("choice")), float(take("random"))]
    if aug.flip:
        out["flip"] = bool(aug.flip > take("random"))
    assert next(it, None) is None, "unparsed np.random calls in Augmentation.__call__"
    return out


def load_official(refsrc: Path, mirror: str):
    sys.path.insert(0, str(SHARED_TOOLS / "official_train"))
    import make_train_fixture as mtf  # noqa: E402  (shared: refsrc extraction, stubs, CPU shims)

    commit = mtf.ensure_refsrc(refsrc, mirror)
    mtf.ref_shim.install(refsrc)
    stubbed = mtf.install_stubs()
    import siamban.datasets.augmentation as augmentation
    import siamban.datasets.dataset as dataset
    import siamban.datasets.point_target as point_target
    import siamban.utils.gen_proposal as gen_proposal
    from siamban.core.config import cfg

    return mtf, commit, stubbed, cfg, augmentation, dataset, point_target, gen_proposal


class Recorder:
    """Wraps the official dataset code (originals called, results kept) and records one sample at a time."""

    def __init__(self, official):
        _, _, _, self.cfg, augmentation, dataset, point_target, self.gen_proposal = official
        self.aug_log, self.pt_log, self.sg_log = [], [], []
        augmentation.np = _RecNumpy(self.aug_log)
        point_target.np = _RecNumpy(self.pt_log)
        self.gen_proposal.np = _RecNumpy(self.sg_log)
        self.picks, self.aug_calls = [], []
        orig_gia, orig_call = dataset.SubDataset.get_image_anno, augmentation.Augmentation.__call__
        rec = self

        def get_image_anno(self, video, track, frame):
            rec.picks.append((video, track, int(frame)))
            return orig_gia(self, video, track, frame)

        def aug_call(self, image, bbox, size, gray=False):
            del rec.aug_log[:]
            img_sha = digest(image)
            crop, box = orig_call(self, image, bbox, size, gray=gray)
            draws = parse_aug(self, list(rec.aug_log))
            box511 = [float(v) for v in bbox]
            rec.aug_calls.append(
                {"size": size, "gray": bool(gray), "image_sha256": img_sha, "box511": box511, "draws": draws}
            )
            return crop, box

        dataset.SubDataset.get_image_anno = get_image_anno
        augmentation.Augmentation.__call__ = aug_call

    def sample(self, ds, i: int, forced: dict) -> tuple[dict, dict]:
        """(arrays, meta) of official sample ``i`` under the ``forced`` configuration."""
        cfg = self.cfg
        cfg.DATASET.NEG, cfg.DATASET.GRAY = forced["neg"], forced["gray"]
        for a, yaml in ((ds.template_aug, cfg.DATASET.TEMPLATE), (ds.search_aug, cfg.DATASET.SEARCH)):
            a.blur, a.flip, a.color = (
                forced.get(k, getattr(yaml, k.upper())) for k in ("blur", "flip", "color")
            )
        del self.picks[:], self.aug_calls[:], self.pt_log[:]
        out = ds[i]
        neg = bool(forced["neg"])
        # get_image_anno order: positive triple -> template, search, query; negative pair -> template,
        # query (get_positive_pair), search (random target); then the negative support (random target).
        roles = ("template", "query", "search", "neg_support") if neg else ROLES
        frames = dict(zip(roles, self.picks, strict=True))
        # Augmentation call order in __getitem__: query, negative support, template, search.
        augs = dict(zip(("query", "neg_support", "template", "search"), self.aug_calls, strict=True))
        p = f"s{i}/"
        assert all(name == "shuffle" for name, _ in self.pt_log), self.pt_log
        arrays = {p + f"label_perm{k}": v.astype(np.int32) for k, (_, v) in enumerate(self.pt_log)}
        crops = {}
        for role, (img_key, box_key) in OUT_KEYS.items():
            img = np.asarray(out[img_key], np.float32)  # (3, H, W)
            arrays[p + f"{role}_bbox"] = np.asarray(out[box_key], np.float64)
            arrays[p + f"{role}_box511"] = np.asarray(augs[role]["box511"], np.float64)
            arrays[p + f"{role}_sum"] = img.astype(np.float64).sum((1, 2))
            arrays[p + f"{role}_sumsq"] = np.square(img.astype(np.float64)).sum((1, 2))
            s = SUB[img.shape[1]]
            arrays[p + f"{role}_sub"] = np.ascontiguousarray(img[:, ::s, ::s])
            crops[role] = {"sha256": digest(img)}
        arrays[p + "label_cls"] = np.asarray(out["label_cls"], np.int8)
        arrays[p + "label_loc"] = np.asarray(out["label_loc"], np.float32)
        arrays.update(self.proposals(p, out))
        gray = bool(augs["template"]["gray"])
        meta = {"forced": forced, "neg": neg, "gray": gray, "frames": frames, "crops": crops}
        meta["augment"] = {r: augs[r] for r in ROLES}
        return arrays, meta

    def proposals(self, p: str, out: dict) -> dict:
        """The official SampleGenerator positives / negatives of one sample and their np.random rounds.

        ``GetMultidectTarget('train')`` calls SampleGenerator on the collated batch; its loop is per sample
        with nothing shared but the global RNG, so one call per sample draws the same way.
        """
        import torch

        m, arrays = self.cfg.MULDECT, {}
        qimg = torch.from_numpy(np.asarray(out["query_img"]))[None]
        qbox = np.asarray(out["query_bbox"], np.float64)[None]
        runs = (
            ("pos", "randn", (m.POS_SAMPLETYPE, m.TRANS_POS, m.SCALE_POS), m.N_POS_INIT, m.OVERLAP_POS_INIT),
            (
                "neg",
                "rand",
                (m.NEG_SAMPLETYPE, m.TRANS_NEG_INIT, m.SCALE_NEG_INIT),
                int(0.5 * m.N_NEG_INIT),
                m.OVERLAP_NEG_INIT,
            ),
        )
        for name, fn, (kind, trans, scale), n, overlap in runs:
            del self.sg_log[:]
            sg = self.gen_proposal.SampleGenerator(kind, qimg.shape[-2:], trans, scale)
            arrays[p + name] = np.asarray(sg(qimg, qbox, n, overlap)[0], np.float64)
            assert [f for f, _ in self.sg_log] == [fn] * len(self.sg_log), self.sg_log
            arrays.update(
                {p + f"{name}_draw{k}": np.asarray(v, np.float64) for k, (_, v) in enumerate(self.sg_log)}
            )
        return arrays


def record(args) -> tuple[dict, dict]:
    import cv2
    import torch

    mirror = args.mirror or os.environ.get("REF_SIAMRN_MIRROR", "")
    official = load_official(Path(args.refsrc), mirror)
    mtf, commit, stubbed, cfg, _, dataset, _, _ = official
    sys.path.insert(0, str(REPO))
    from tests.data.pysot_tree import write_official_tree

    data_root = Path(args.workdir)
    write_official_tree(data_root, args.seed)
    mtf.configure(type("Off", (), {"cfg": cfg, "refsrc": Path(args.refsrc)})(), len(FORCED), data_root)
    cfg.DATASET.VID.FRAME_RANGE = 2  # small, so the +-range clamp and the frame gaps matter
    rec = Recorder(official)
    np.random.seed(args.seed)  # noqa: NPY002  (the official code draws from the global RNGs)
    random.seed(args.seed)
    ds = dataset.BANDataset()
    arrays, samples = {}, []
    for i, forced in enumerate(FORCED):
        a, m = rec.sample(ds, i, forced)
        arrays.update(a)
        samples.append(m)
    tree = sorted((data_root / "crop511").rglob("*.jpg"))
    meta = {
        "seed": args.seed,
        "official_commit": commit,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "stubbed_modules": stubbed,
        "frame_range": 2,
        "config": "experiments/siamban_r50_l234/config.yaml, TRAIN.HNM=False, TRAIN.MOSAIC=False",
        "sub": {str(k): v for k, v in SUB.items()},
        "samples": samples,
        "tree_sha256": {
            str(f.relative_to(data_root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in tree
        },
    }
    return arrays, meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--refsrc", default=str(Path(tempfile.gettempdir()) / "siamrn_official_refsrc"))
    ap.add_argument("--mirror", default="", help="git mirror of hqucv/siamrn (default: $REF_SIAMRN_MIRROR)")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "siamrn_official_data_tree"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    arrays, meta = record(args)
    meta["runtime_s"] = round(time.perf_counter() - t0, 1)
    arrays["meta_json"] = np.array(json.dumps(meta, indent=1))
    sys.path.insert(0, str(REPO))
    from siamrn_jax.atomic import atomic_output

    with atomic_output(args.out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    print(
        f"wrote {args.out} ({Path(args.out).stat().st_size / 1e3:.0f} kB, {len(arrays)} arrays, "
        f"{len(FORCED)} samples) in {meta['runtime_s']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
