"""Run the OFFICIAL NanoTrack (V2 / V3) PyTorch tracker on CPU and record its trajectories as a fixture.

The official code is the folder ``NanoTrack/nanotrack`` of HonglinChu/SiamTrackers (read from a bare git
mirror; extracted, unchanged, into a cache directory and put first on ``sys.path``). Nothing in it is
edited. The model is built exactly as ``NanoTrack/bin/test.py`` / ``bin/demo.py`` do it
(``cfg.merge_from_file`` -> ``ModelBuilder()`` -> ``load_pretrain`` -> ``eval()`` -> ``build_tracker``),
frames are read with ``cv2.imread`` (BGR), the tracker is initialised on frame 1 with the ground-truth
box and ``tracker.track`` is called on every following frame.

Shims (run-time patches from this file; no official file is modified):

1. ``cfg.CUDA = False`` after ``merge_from_file`` (both YAML files set ``CUDA: True``), so
   ``SiameseTracker.get_subwindow`` does not call ``.cuda()`` on the crop. ``bin/demo.py`` does the same
   (``cfg.CUDA = torch.cuda.is_available() and cfg.CUDA``). The ``.cuda()`` that ``test.py`` / ``demo.py``
   call on the model is simply not called (it is in the scripts, not in the library).
2. Head selection: ``nanotrack/models/head/__init__.py`` at this commit imports ``DepthwiseBAN`` from
   ``ban_v3`` (V2's import is commented out), so the V2 weights would not fit. Before ``ModelBuilder`` is
   built, the entries of the (mutable, module-level) dict ``nanotrack.models.head.BANS`` are set to the
   classes of ``ban_v2`` for V2 and ``ban_v3`` for V3; ``get_ban_head`` looks them up there.
3. ``torch.load(..., weights_only=False)`` during ``load_pretrain``: the official loader calls
   ``torch.load`` without ``weights_only``; since torch 2.6 that defaults to True, and both checkpoints
   ({'epoch', 'state_dict', 'optimizer'}) hold numpy scalars that the weights-only unpickler rejects.
   ``torch.load`` is wrapped with ``weights_only=False`` only for the duration of that call.
4. Strict key check: ``load_pretrain`` loads with ``strict=False`` and only logs missing keys; this tool
   additionally asserts that the checkpoint's keys and the model's keys match exactly (the
   ``num_batches_tracked`` buffers excepted), so a wrong head cannot go unnoticed.
5. ``cfg.TRACK.OUTPUT_SIZE``: ``nano_tracker.py`` builds its Hanning window and point grid from it. The
   default in ``core/config.py`` is 16. The V2 YAML has no ``TRACK.OUTPUT_SIZE`` and so gets that default,
   which matches V2's 16x16 head output: no override is needed. V3's YAML sets 15. The tool checks the
   value against the expected one (16 for V2, 15 for V3) and sets it only if they differ (logged and
   recorded in ``meta``), and asserts that the head's output really is OUTPUT_SIZE x OUTPUT_SIZE.
6. Spies: ``model.template`` / ``model.track`` are wrapped on the instance to record the crops the
   tracker passes in and the raw ``cls`` / ``loc`` it gets back (the calls themselves are unchanged).
7. ``torch.set_num_threads(1)`` (as ``test.py`` / ``demo.py`` do) and ``torch.no_grad()`` around the run
   (no effect on the values; the official code only detaches).

Output (``np.savez_compressed``, written atomically), per sequence NAME:

* ``NAME/boxes`` float64 [T, 4] x, y, w, h (row 0 = the ground-truth init box as given);
* ``NAME/best_score`` float64 [T] (``outputs['best_score']``; NaN in row 0);
* internals of the FIRST tracked frame (frame index 1): ``NAME/x_crop_sha256`` and ``NAME/z_crop_sha256``
  (SHA-256 of the [255, 255, 3] / [127, 127, 3] BGR HWC crops as uint8: the crops are resized uint8 images
  cast to float32 by the official code, checked integral; the pixels themselves come from ../shared/data
  and stay out of the repository), ``NAME/cls`` float32 [2, S, S] and ``NAME/loc`` float32 [4, S, S]
  (``outputs['cls'][0]``, ``outputs['loc'][0]``);

and ``meta``: a JSON string (mirror commit, version, versions, TRACK config values, frames, shims...).

Usage::

    python tools/nanotrack_official/run_official.py --mirror /work/.mirror/HonglinChu+SiamTrackers/repo \\
        --version v2 --sequences Bolt Deer Crossing --out tests/fixtures/nanotrack/official_v2.npz
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import io
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

log = logging.getLogger("nanotrack_official")

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
DEFAULT_WEIGHTS_DIR = SHARED / "models" / "nanotrack"
DEFAULT_DATA_ROOT = SHARED / "data" / "sequences"
DEFAULT_REFSRC = Path(tempfile.gettempdir()) / "nanotrack_official_src"
OFFICIAL_SUBDIR = "NanoTrack/nanotrack"

EXPECTED_OUTPUT_SIZE = {"v2": 16, "v3": 15}
HEAD_MODULE = {"v2": "nanotrack.models.head.ban_v2", "v3": "nanotrack.models.head.ban_v3"}


def _git(mirror: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(mirror), *args], check=True, capture_output=True).stdout


def extract_official(mirror: Path, commit: str, refsrc: Path) -> tuple[Path, str]:
    """Extract ``NanoTrack/nanotrack`` at ``commit`` into ``refsrc/<sha12>/nanotrack`` (once). Returns
    (directory to put on sys.path, full commit sha)."""
    sha = _git(mirror, "rev-parse", "--verify", f"{commit}^{{commit}}").decode().strip()
    dest = refsrc / sha[:12]
    if (dest / "nanotrack" / "__init__.py").is_file():
        log.info("official source already extracted at %s", dest)
        return dest, sha
    refsrc.mkdir(parents=True, exist_ok=True)
    archive = _git(mirror, "archive", "--format=tar", sha, OFFICIAL_SUBDIR)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=refsrc))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            members = []
            for m in tar.getmembers():
                if "__pycache__" in m.name.split("/") or not m.name.startswith("NanoTrack/"):
                    continue
                m.name = m.name[len("NanoTrack/") :]
                members.append(m)
            tar.extractall(tmp, members=members, filter="data")
        try:
            os.replace(tmp, dest)
        except OSError:  # extracted concurrently by another run
            if not (dest / "nanotrack" / "__init__.py").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracted %s @ %s into %s", OFFICIAL_SUBDIR, sha[:12], dest)
    return dest, sha


def import_official(src: Path):
    """Put the extracted official package first on sys.path and import it."""
    if "nanotrack" in sys.modules:
        loaded = Path(sys.modules["nanotrack"].__file__).resolve()
        if src.resolve() not in loaded.parents:
            raise RuntimeError(f"a different 'nanotrack' package is already imported: {loaded}")
    sys.path.insert(0, str(src))
    pkg = importlib.import_module("nanotrack")
    if src.resolve() not in Path(pkg.__file__).resolve().parents:
        raise RuntimeError(f"imported 'nanotrack' from {pkg.__file__}, not from {src}")
    return pkg


@contextlib.contextmanager
def torch_load_weights_only_false():
    """Shim 3: make ``torch.load`` default to ``weights_only=False`` while the official loader runs."""
    original = torch.load
    torch.load = functools.partial(original, weights_only=False)
    try:
        yield
    finally:
        torch.load = original


def check_keys_strict(model: torch.nn.Module, weights: Path) -> int:
    """Shim 4: the checkpoint must cover the model exactly (load_pretrain only warns)."""
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt)
    ckpt_keys = {k.removeprefix("module.") for k in state}
    model_keys = set(model.state_dict())
    missing = sorted(k for k in model_keys - ckpt_keys if not k.endswith("num_batches_tracked"))
    unexpected = sorted(ckpt_keys - model_keys)
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint/model key mismatch: missing={missing[:8]} unexpected={unexpected[:8]}"
        )
    return len(ckpt_keys)


def sha256_16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def read_groundtruth(path: Path) -> np.ndarray:
    rows = [re.split(r"[,\s]+", line.strip()) for line in path.read_text().splitlines() if line.strip()]
    return np.asarray(rows, dtype=np.float64)


def list_frames(seq_dir: Path) -> list[Path]:
    frames = list((seq_dir / "img").glob("*.jpg"))
    if not frames:
        raise FileNotFoundError(f"no frames in {seq_dir / 'img'}")
    # bin/demo.py sorts by the integer file stem
    return sorted(frames, key=lambda p: (int(p.stem), p.name) if p.stem.isdigit() else (sys.maxsize, p.name))


def crop_to_hwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()[0].transpose(1, 2, 0).copy()


def compact_crop(a: np.ndarray) -> tuple[np.ndarray, str]:
    """uint8 when the float32 crop is integral-valued in [0, 255] (exact), else float32."""
    if a.size and np.array_equal(a, np.round(a)) and a.min() >= 0 and a.max() <= 255:
        u = a.astype(np.uint8)
        assert np.array_equal(u.astype(np.float32), a)
        return u, "uint8"
    return a.astype(np.float32), "float32"


def build_official(version: str, config: Path, weights: Path):
    """Build the official model + tracker with the shims applied. Returns (cfg, model, tracker, info)."""
    from nanotrack.core.config import cfg

    output_size_default = int(cfg.TRACK.OUTPUT_SIZE)
    cfg.merge_from_file(str(config))
    cfg.CUDA = False  # shim 1

    # shim 5: OUTPUT_SIZE
    yaml_track = (yaml.safe_load(config.read_text()) or {}).get("TRACK", {}) or {}
    expected = EXPECTED_OUTPUT_SIZE[version]
    if "OUTPUT_SIZE" in yaml_track:
        output_size_source = "config file"
    else:
        output_size_source = f"core/config.py default ({output_size_default})"
    if int(cfg.TRACK.OUTPUT_SIZE) != expected:
        log.warning(
            "cfg.TRACK.OUTPUT_SIZE=%s (%s) != %d expected for %s: overriding",
            cfg.TRACK.OUTPUT_SIZE,
            output_size_source,
            expected,
            version,
        )
        cfg.TRACK.OUTPUT_SIZE = expected
        output_size_source = f"shim override ({output_size_source} was different)"
    log.info("cfg.TRACK.OUTPUT_SIZE=%d from %s", cfg.TRACK.OUTPUT_SIZE, output_size_source)

    # shim 2: head selection
    head_pkg = importlib.import_module("nanotrack.models.head")
    head_mod = importlib.import_module(HEAD_MODULE[version])
    head_pkg.BANS["DepthwiseBAN"] = head_mod.DepthwiseBAN
    head_pkg.BANS["UPChannelBAN"] = head_mod.UPChannelBAN
    log.info("nanotrack.models.head.BANS -> %s", HEAD_MODULE[version])

    from nanotrack.models.model_builder import ModelBuilder
    from nanotrack.tracker.tracker_builder import build_tracker
    from nanotrack.utils.model_load import load_pretrain

    model = ModelBuilder()
    with torch_load_weights_only_false():
        model = load_pretrain(model, str(weights))
    n_keys = check_keys_strict(model, weights)
    model = model.eval()
    tracker = build_tracker(model)
    info = {
        "output_size_default_core_config": output_size_default,
        "output_size_source": output_size_source,
        "head_module": HEAD_MODULE[version],
        "checkpoint_keys": n_keys,
        "tracker_class": type(tracker).__name__,
    }
    return cfg, model, tracker, info


class Spy:
    """Shim 6: record model inputs/outputs without changing the calls."""

    def __init__(self, model: torch.nn.Module):
        self.z_crop: torch.Tensor | None = None
        self.armed = False
        self.record: dict[str, torch.Tensor] | None = None
        template, track = model.template, model.track

        def template_spy(z):
            self.z_crop = z.detach().clone()
            return template(z)

        def track_spy(x):
            x_in = x.detach().clone() if self.armed else None
            out = track(x)
            if self.armed:
                self.record = {
                    "x": x_in,
                    "cls": out["cls"].detach().clone(),
                    "loc": out["loc"].detach().clone(),
                }
                self.armed = False
            return out

        model.template = template_spy
        model.track = track_spy


def run_sequence(tracker, spy: Spy, seq_dir: Path, n_frames: int | None, output_size: int):
    frames = list_frames(seq_dir)
    gt = read_groundtruth(seq_dir / "groundtruth_rect.txt")
    if len(gt) < 1 or gt.shape[1] != 4:
        raise ValueError(f"bad ground truth in {seq_dir}")
    total = min(len(frames), len(gt))
    if len(frames) != len(gt):
        log.warning(
            "%s: %d frames but %d ground-truth rows; using %d", seq_dir.name, len(frames), len(gt), total
        )
    t_len = total if n_frames is None else min(n_frames, total)
    if t_len < 2:
        raise ValueError("need at least 2 frames (init + one tracked)")

    boxes = np.full((t_len, 4), np.nan, np.float64)
    scores = np.full((t_len,), np.nan, np.float64)
    init_box = [float(v) for v in gt[0]]
    img = cv2.imread(str(frames[0]))
    if img is None:
        raise OSError(f"cannot read {frames[0]}")
    spy.z_crop = None
    tracker.init(img, init_box)
    boxes[0] = init_box
    z_crop = crop_to_hwc(spy.z_crop)

    t0 = time.perf_counter()
    for i in range(1, t_len):
        img = cv2.imread(str(frames[i]))
        if img is None:
            raise OSError(f"cannot read {frames[i]}")
        spy.armed = i == 1
        out = tracker.track(img)
        boxes[i] = np.asarray(out["bbox"], np.float64)
        scores[i] = float(out["best_score"])
    dt = time.perf_counter() - t0
    rec = spy.record
    assert rec is not None
    cls = rec["cls"].numpy()[0].astype(np.float32)
    loc = rec["loc"].numpy()[0].astype(np.float32)
    if cls.shape != (2, output_size, output_size) or loc.shape != (4, output_size, output_size):
        raise RuntimeError(f"head output {cls.shape}/{loc.shape} does not match OUTPUT_SIZE={output_size}")
    log.info(
        "%s: %d frames (%d tracked) in %.2fs, %.1f FPS", seq_dir.name, t_len, t_len - 1, dt, (t_len - 1) / dt
    )
    return {
        "boxes": boxes,
        "best_score": scores,
        "x_crop": crop_to_hwc(rec["x"]),
        "z_crop": z_crop,
        "cls": cls,
        "loc": loc,
    }, {"frames": t_len, "frames_available": total, "track_seconds": round(dt, 3)}


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mirror", type=Path, required=True, help="bare git mirror of HonglinChu/SiamTrackers")
    p.add_argument("--commit", default="HEAD", help="commit of the mirror to extract (default HEAD)")
    p.add_argument("--version", choices=sorted(EXPECTED_OUTPUT_SIZE), required=True)
    p.add_argument("--sequences", nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help="total frames per sequence, init frame included (default: all)",
    )
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    p.add_argument(
        "--weights-dir",
        type=Path,
        default=DEFAULT_WEIGHTS_DIR,
        help="holds v2.pth / v3.pth and v2_config.yaml / v3_config.yaml",
    )
    p.add_argument("--refsrc", type=Path, default=DEFAULT_REFSRC, help="cache dir for the extracted source")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (official scripts: 1)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    weights = args.weights_dir / f"{args.version}.pth"
    config = args.weights_dir / f"{args.version}_config.yaml"
    for f in (weights, config):
        if not f.is_file():
            raise FileNotFoundError(f)

    src, sha = extract_official(args.mirror, args.commit, args.refsrc)
    import_official(src)
    torch.set_num_threads(args.threads)  # shim 7

    t_start = time.perf_counter()
    cfg, model, tracker, info = build_official(args.version, config, weights)
    spy = Spy(model)
    output_size = int(cfg.TRACK.OUTPUT_SIZE)

    arrays: dict[str, np.ndarray] = {}
    seq_meta: dict[str, dict] = {}
    storage: dict[str, str] = {}
    with torch.no_grad():  # shim 7
        for name in args.sequences:
            res, m = run_sequence(tracker, spy, args.data_root / name, args.frames, output_size)
            for key in ("x_crop", "z_crop"):
                # The crops are cut from ../shared/data frames, which must not enter the repository: the
                # fixture keeps their uint8 SHA-256 (a test recomputes ours and compares), not the pixels.
                crop, storage[f"{name}/{key}"] = compact_crop(res.pop(key))
                res[f"{key}_sha256"] = np.array(hashlib.sha256(np.ascontiguousarray(crop)).hexdigest())
            for key, val in res.items():
                arrays[f"{name}/{key}"] = val
            seq_meta[name] = m
    total_s = time.perf_counter() - t_start

    meta = {
        "tool": "tools/nanotrack_official/run_official.py",
        "source": "github.com/HonglinChu/SiamTrackers " + OFFICIAL_SUBDIR,
        "mirror_commit": sha,
        "version": args.version,
        "weights": {"file": weights.name, "sha256_16": sha256_16(weights)},
        "config": {"file": config.name, "sha256_16": sha256_16(config)},
        "track_cfg": {k: (v if not isinstance(v, tuple) else list(v)) for k, v in cfg.TRACK.items()},
        "point_stride": int(cfg.POINT.STRIDE),
        "cuda": bool(cfg.CUDA),
        **info,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "opencv_version": cv2.__version__,
        "python_version": platform.python_version(),
        "torch_threads": args.threads,
        "sequences": seq_meta,
        "crop_storage": storage,
        "crop_note": "x_crop_sha256/z_crop_sha256: SHA-256 of the crop as a C-contiguous uint8 BGR HWC array "
        "(the official crops are uint8 resizes cast to float32, so uint8 is exact)",
        "internals_frame_index": 1,
        "box_format": "x, y, w, h (0-based as in the official tracker); row 0 = init box as given",
        "shims": [
            "cfg.CUDA=False after merge_from_file (no .cuda() in get_subwindow)",
            f"nanotrack.models.head.BANS -> {HEAD_MODULE[args.version]} classes before ModelBuilder()",
            "torch.load(weights_only=False) during load_pretrain (torch>=2.6 default rejects numpy scalars)",
            "strict checkpoint/model key equality check after load_pretrain",
            f"cfg.TRACK.OUTPUT_SIZE checked against {EXPECTED_OUTPUT_SIZE[args.version]}: "
            f"{info['output_size_source']}",
            "instance-level spies on model.template/model.track to record crops and cls/loc",
            "torch.set_num_threads, torch.no_grad()",
        ],
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    save_npz_atomic(args.out, arrays)
    log.info("wrote %s (%d bytes); build + track %.2fs", args.out, args.out.stat().st_size, total_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
