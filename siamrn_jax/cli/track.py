"""``track.py``: run the SiamRN tracker on a video, an image / OTB / VOT folder or a camera.

``main`` parses the command line (examples in ``_EPILOG``, shown by ``--help``) and ``run`` does the work,
so both can be called from tests. User errors print one ``error: ...`` line on stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from siamrn_jax import checkpoint, progress
from siamrn_jax.cli import args as cli_args
from siamrn_jax.cli import track_targets as targets_mode
from siamrn_jax.cli.args import UsageError, add_verbosity_flags, nonnegative_int, positive_int
from siamrn_jax.config import COMPUTE_DTYPES, ConfigError
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.eval import ope
from siamrn_jax.geometry.boxes import pysot_init_box
from siamrn_jax.io.results import (
    box_line,
    progressive_output,
    write_boxes,
    write_lines,
)
from siamrn_jax.io.sources import FrameSource, open_input
from siamrn_jax.log_config import configure
from siamrn_jax.sharding import local_data_mesh
from siamrn_jax.tracking import multi, visualize
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import (
    BLANK_BOX,
    BLANK_FRAMES,
    SequenceResult,
    Tracker,
    check_box,
    run_sequence,
    track_batch,
    track_sequence,
    warm_up,
)

DEMO_CHECKPOINT = checkpoint.DEMO  # the embedded demo model


_EPILOG = """examples:
  track.py      (no input: the demo model on a held-out synthetic scene -> outputs/demo/)
  track.py --checkpoint ckpt/siamrn_otb --input data/Crossing --output Crossing.txt
  track.py --checkpoint ckpt/siamrn_otb --input bag.avi --init 300,140,110,100 --video bag.mp4
  track.py --checkpoint ckpt/siamrn_otb --batch data/Crossing data/Toy --output results/
  track.py --checkpoint ckpt/nanotrack_v2 --input beach.mp4 --init 616,315,31,61 --init 684,268,21,59
      --output results/ --video beach_tracked.mp4   (two targets in one video: results/0.txt, 1.txt)
  track.py --checkpoint ckpt/nanotrack_v2 --input beach.mp4 --targets targets.txt --output results/
  track.py --random-weights configs/siamrn_r50.py:smoke --input data/Crossing --max-frames 5
  track.py --checkpoint ckpt/siamrn_otb --input data/Crossing --dtype bfloat16   (mixed precision)
  track.py --checkpoint ckpt/siamrn_otb --input data/Crossing --backend onnxruntime   (exported once, cached)
  track.py --onnx exported/siamrn_onnx --input data/Crossing   (python -m siamrn_jax.export onnx ...)

Three modes:
  one input, one box            one target (--output FILE, --scores FILE);
  one input, several targets    --init repeated or --targets FILE: every target of the video in one batched
                                step per frame; --targets lines are frame,x,y,w,h[,name] (frame 0-based, so
                                a target may start later; '#' comments); --output / --scores are folders
                                with one <name or id>.txt per target, one line per frame of the input
                                ('nan' before a target starts); video and contact sheet in one colour per
                                target; ids count from 0 in the order targets start;
  several inputs (--batch, or   one target per input (its --init or its ground truth), the inputs in
  --input repeated)             lockstep; --output / --scores are folders with one <input>.txt each.
  Several inputs with several targets each is not a mode: give --init once per input or not at all.

Boxes are x,y,w,h in 0-based pixels; OTB ground truth (1-based) is shifted, VOT polygons become pysot's
axis-aligned boxes. The initial box is --init, else the ground truth of frame 1, else one drawn with the
mouse when a display is available. User errors print one 'error: ...' line and exit with status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="track.py",
        description="Run the SiamRN tracker on a video, an image / OTB / VOT folder or a camera.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _weight_args(p)
    _input_args(p)
    _output_args(p)
    _run_args(p)
    add_verbosity_flags(p)
    return p


def _weight_args(p: argparse.ArgumentParser) -> None:
    """--checkpoint | --random-weights, --seed."""
    weights = p.add_mutually_exclusive_group()
    weights.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="siamrn-jax checkpoint directory, or 'demo' (default: the demo model siamrn_jax/assets/demo)",
    )
    weights.add_argument(
        "--random-weights",
        metavar="CONFIG",
        help="untrained model from a config, e.g. configs/siamrn_r50.py:smoke (smoke tests and timing only)",
    )
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of --random-weights (default 0)")


def _input_args(p: argparse.ArgumentParser) -> None:
    """What to track: --input, --batch, --init, --targets."""
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="SPEC",
        help="video file, image / OTB / VOT folder, or camera index; repeat for lockstep batch tracking",
    )
    p.add_argument("--batch", nargs="+", default=[], metavar="DIR", help="several inputs tracked in lockstep")
    p.add_argument(
        "--init",
        action="append",
        default=[],
        metavar="X,Y,W,H",
        help="initial box (default: ground truth of frame 1); repeated with one input: several targets; in "
        "batch mode once per input or not at all",
    )
    p.add_argument(
        "--targets",
        metavar="FILE",
        help="several targets in one input, one 'frame,x,y,w,h[,name]' line each (frame: 0-based start)",
    )


def _output_args(p: argparse.ArgumentParser) -> None:
    """What to write: --output, --scores, --video, --contact-sheet."""
    p.add_argument(
        "--output",
        metavar="FILE",
        help="result boxes, one x,y,w,h line per frame (batch and several targets: a folder)",
    )
    p.add_argument(
        "--scores",
        metavar="FILE",
        help="best score per frame, 'nan' for frame 1 (batch and several targets: a folder)",
    )
    p.add_argument("--video", metavar="FILE", help="annotated video: .mp4, .avi or .gif")
    p.add_argument(
        "--contact-sheet", metavar="FILE.png", help="PNG grid of 12 evenly spaced annotated frames"
    )


def _run_args(p: argparse.ArgumentParser) -> None:
    """How to run: --preset, --max-frames, --dtype, --devices, --backend, --onnx."""
    cli_args.add_preset(p)
    p.add_argument("--max-frames", type=positive_int, metavar="N", help="track only the first N frames")
    p.add_argument(
        "--dtype",
        choices=COMPUTE_DTYPES,
        help="computation dtype (default: the checkpoint's or config's model.dtype); bfloat16 = mixed "
        "precision: float32 weights, BatchNorm, softmax and boxes (faster on accelerators, not on CPU)",
    )
    p.add_argument(
        "--devices",
        type=positive_int,
        metavar="N",
        help="batch mode and several targets: split each lockstep step over N local devices (default: all "
        "of this process's; a batch that does not fill them is padded)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="run the network with XLA (default), or with onnxruntime (CPU) on ONNX exports of the tracker: "
        "--onnx DIR, else the model exported once into $XDG_CACHE_HOME/siamrn-jax/onnx (~/.cache/...)",
    )
    p.add_argument(
        "--onnx",
        metavar="DIR",
        help="ONNX export to track with (python -m siamrn_jax.export onnx); implies --backend onnxruntime",
    )


BACKENDS = ("xla", "onnxruntime")


def parse_box(text: str, flag: str = "--init") -> np.ndarray:
    """``"x,y,w,h"`` (commas or spaces) -> [4] float64; ``UsageError`` otherwise."""
    try:
        b = np.array([float(v) for v in re.split(r"[,\s]+", text.strip())], np.float64)
    except ValueError:
        b = None
    if b is None or b.shape != (4,) or not np.all(np.isfinite(b)):
        raise UsageError(f"{flag} {text!r}: expected 4 numbers x,y,w,h (0-based pixels)")
    return b


# --- summary ------------------------------------------------------------------------------------------------


def _speed(frames: int, tracked: int, seconds: float) -> str:
    """'N frames, F FPS (excluding the init frame)' for ``tracked`` non-init frames in ``seconds``."""
    fps = f"{tracked / seconds:.1f} FPS" if tracked and seconds > 0 else "no FPS (init frame only)"
    return f"{frames} frames, {fps} (excluding the init frame)"


def _summary(name: str, r: SequenceResult, gt: np.ndarray | None) -> str:
    line = f"{name}: {_speed(len(r.boxes), len(r.boxes) - 1, float(np.sum(r.times[1:])))}"
    if gt is not None:
        # What ``eval report`` scores for this sequence: OPE with pysot's rules, every frame counted.
        n = min(len(r.boxes), len(gt))
        s = ope.evaluate_sequence(gt[:n], r.boxes[:n])
        scores = f"success AUC {s.success_auc:.3f}, precision@20px {s.precision:.3f}"
        line += f", {scores} (OPE, pysot rules, {n} frames)"
    return line


# --- model and inputs ---------------------------------------------------------------------------------------


def weights_spec(args: argparse.Namespace) -> tuple[str, str]:
    """(the ``checkpoint.load_weights`` spec, the flag that gave it) of --checkpoint / --random-weights /
    no flag (the demo model)."""
    if args.random_weights:
        return checkpoint.RANDOM + args.random_weights, f"--random-weights {args.random_weights}"
    if args.checkpoint:
        return args.checkpoint, f"--checkpoint {args.checkpoint}"
    if not DEMO_CHECKPOINT.is_dir():
        raise UsageError(
            f"no checkpoint: the demo model {DEMO_CHECKPOINT} is not there; pass --checkpoint DIR (make one "
            "with 'python -m siamrn_jax.convert checkpoint_e19.pth DIR') or --random-weights CONFIG"
        )
    return str(DEMO_CHECKPOINT), "the demo model"


def load_model(args: argparse.Namespace, inference: bool = True):
    """(model, variables) of --checkpoint / --random-weights / the demo model (``checkpoint.load_weights``;
    ``inference=False``: the stored arrays, for exporting); warns on stderr when the weights are untrained."""
    spec, flag = weights_spec(args)
    try:
        bundle = checkpoint.load_weights(spec, args.dtype, args.seed, inference=inference)
    except ConfigError as e:
        raise UsageError(f"{flag}: {e}") from None
    if checkpoint.untrained(bundle):
        print(
            f"warning: {flag}: UNTRAINED weights (seed {args.seed}); boxes are meaningless, use for smoke "
            "tests and timing only",
            file=sys.stderr,
        )
    return bundle.model, bundle.variables


def _has_display() -> bool:
    """A display server is set and this OpenCV build has a GUI backend (headless wheels have none)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return bool(m) and m.group(1).upper() != "NONE"


def _select_box(src: FrameSource) -> np.ndarray:
    frame = next(iter(src)) if src.num_frames is None else src[0]
    x, y, w, h = cv2.selectROI(f"{src.name}: draw the target, then ENTER", frame, showCrosshair=True)
    cv2.destroyAllWindows()
    if w <= 0 or h <= 0:
        raise UsageError("no initial box selected")
    return np.array([x, y, w, h], np.float64)


def _init_box(src: FrameSource, init: np.ndarray | None) -> np.ndarray:
    if init is None and src.groundtruth is not None and len(src.groundtruth):
        init = pysot_init_box(src.groundtruth[0])  # as pysot's test scripts do: (x + 0.5, y + 0.5, w, h)
        if not np.all(np.isfinite(init)):
            raise UsageError(
                f"{src.name}: ground truth of frame 1 is NaN (target absent): pass --init x,y,w,h"
            )
    if init is None:
        if not _has_display():
            raise UsageError("no initial box: pass --init x,y,w,h")
        return _select_box(src)
    if src.num_frames is not None:  # check against the first frame now, before compiling anything
        check_box(init, src[0].shape[:2], f"{src.name}: init box")
    return init


def _check_output(path: str | None, folder: bool) -> None:
    if path is None:
        return
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise UsageError(f"{p}: batch mode writes one file per sequence into a folder, and this is a file")
    parent = p if folder else p.absolute().parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{p}: {parent} is a file, not a folder")
    parent.mkdir(parents=True, exist_ok=True)  # like most CLIs' -o: create the folder the user names


# --- single sequence ----------------------------------------------------------------------------------------


def _annotations(t: int, box, score: float, gt: np.ndarray | None) -> list:
    out = []
    if gt is not None and t < len(gt):
        out.append((gt[t], visualize.GREEN, None))
    label = f"#{t + 1}" if t == 0 else f"#{t + 1} {score:.2f}"
    out.append((box, visualize.YELLOW, label))
    return out


def _annotate(frame: np.ndarray, boxes: list) -> np.ndarray:
    for box, color, label in boxes:
        frame = visualize.draw(frame, box, color, label)
    return frame


def _track_one(args, src: FrameSource, init: np.ndarray, model, variables, params, tracker=None) -> str:
    """One input; ``tracker``: a ready one (``OnnxTracker``) instead of the XLA ``Tracker``."""
    gt = src.groundtruth
    expected = src.num_frames if src.num_frames is not None else args.max_frames
    if args.contact_sheet and expected is None:
        raise UsageError("--contact-sheet on a live camera needs --max-frames N")
    sheet_at = set(visualize.sheet_indices(expected)) if args.contact_sheet else set()
    if tracker is None:
        tracker = Tracker(model, variables, params)
        warm_up(model, variables, params, 1)
    else:
        run_sequence(tracker, BLANK_FRAMES, BLANK_BOX)  # first runs allocate: keep them out of the timing
    boxes, scores, times, sheet = [], [], [], []
    with contextlib.ExitStack() as stack:
        # Result files grow frame by frame (``<file>.partial``) and appear under their name at the end:
        # a crash keeps the finished frames, and never leaves a half-written result file.
        out = stack.enter_context(progressive_output(args.output)) if args.output else None
        sc = stack.enter_context(progressive_output(args.scores)) if args.scores else None
        video = (
            stack.enter_context(visualize.VideoWriter(args.video, src.fps or 25.0)) if args.video else None
        )
        advance = stack.enter_context(progress.frames(src.name, src.num_frames))
        for t, frame, box, score, dt in track_sequence(tracker, src, init):
            boxes.append(box)
            scores.append(score)
            times.append(dt)
            if out is not None:
                out.write_line(box_line(box))
            if sc is not None:
                sc.write_line(f"{score:.6f}")
            if video is not None or t in sheet_at:
                ann = _annotations(t, box, score, gt)
                if video is not None:
                    video.write(_annotate(frame, ann))
                if t in sheet_at:
                    sheet.append(visualize.Annotated(t, frame, ann))
            advance(1)
    result = SequenceResult(np.stack(boxes), np.array(scores), np.array(times))
    if args.contact_sheet:
        visualize.contact_sheet(sheet, args.contact_sheet)
    return _summary(src.name, result, gt)


# --- batch --------------------------------------------------------------------------------------------------


class _Counted:
    """A source whose reads advance the progress bar (``track_batch`` reads each frame once)."""

    def __init__(self, src: FrameSource, advance):
        self.src, self.advance = src, advance

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> np.ndarray:
        self.advance(1)
        return self.src[i]


def _check_batch(args, srcs: list[FrameSource]) -> None:
    if args.video or args.contact_sheet:
        raise UsageError("--video and --contact-sheet take one input, not a batch")
    if any(s.num_frames is None for s in srcs):
        raise UsageError("a live camera cannot be tracked in batch mode")
    names = [s.name for s in srcs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup and (args.output or args.scores):
        raise UsageError(f"several inputs are named {dup[0]!r}: their result files would collide")
    if args.output and args.scores and Path(args.output).resolve() == Path(args.scores).resolve():
        raise UsageError("--output and --scores must be different folders in batch mode")


def _mesh(args: argparse.Namespace, batch: bool, xla: bool):
    """The local-device mesh a lockstep batch is split over (None: the default device)."""
    import jax

    if not batch:
        if args.devices not in (None, 1):
            raise UsageError(f"--devices {args.devices}: one input tracks on one device; give several inputs")
        return None
    if not xla:
        if args.devices not in (None, 1):
            raise UsageError(f"--devices {args.devices}: --backend onnxruntime tracks on one device")
        return None
    devices = jax.local_device_count() if args.devices is None else args.devices
    return None if devices == 1 else local_data_mesh(devices)  # ShardingError: more than this process has


def _track_many(
    args, srcs: list[FrameSource], inits: list[np.ndarray], model, variables, params, tracker=None, mesh=None
) -> list[str]:
    """Several inputs: in lockstep (one batched step per frame index, split over ``mesh``) with XLA, one
    after the other with a given single-sequence ``tracker`` (``OnnxTracker``)."""
    if tracker is None:
        devices = 1 if mesh is None else mesh.size
        warm_up(model, variables, params, -(-len(srcs) // devices) * devices, mesh)  # the shape it runs
    else:
        run_sequence(tracker, BLANK_FRAMES, BLANK_BOX)
    with progress.frames("batch", sum(len(s) for s in srcs)) as advance:
        counted = [_Counted(s, advance) for s in srcs]
        if tracker is None:
            results = track_batch(model, variables, params, counted, inits, mesh)
        else:
            results = [
                run_sequence(tracker, (c[i] for i in range(len(c))), b)
                for c, b in zip(counted, inits, strict=True)
            ]
    for s, r in zip(srcs, results, strict=True):
        if args.output:
            Path(args.output).mkdir(parents=True, exist_ok=True)
            write_boxes(Path(args.output) / f"{s.name}.txt", r.boxes)
        if args.scores:
            Path(args.scores).mkdir(parents=True, exist_ok=True)
            write_lines(Path(args.scores) / f"{s.name}.txt", [f"{v:.6f}" for v in r.scores])
    lines = [_summary(s.name, r, s.groundtruth) for s, r in zip(srcs, results, strict=True)]
    # Per-sequence times are the shared batched steps: the longest sequence's add up to the whole loop
    # (one sequence after the other: all of them do).
    per_sequence = [float(np.sum(r.times[1:])) for r in results]
    seconds = max(per_sequence) if tracker is None else sum(per_sequence)
    frames = sum(len(r.boxes) for r in results)
    on = "" if mesh is None else f" over {mesh.size} devices"
    lines.append(f"batch of {len(srcs)}{on}: {_speed(frames, frames - len(results), seconds)}")
    return lines


# --- entry point --------------------------------------------------------------------------------------------


DEMO_OUTPUT = Path("outputs") / "demo"


def with_demo(args: argparse.Namespace) -> tuple[argparse.Namespace, list[str]]:
    """No input: the command line that tracks the held-out synthetic demo scene (written now) with every
    output not given under ``outputs/demo``, as a new namespace (``args`` is left as parsed), and the
    header line saying so."""
    from siamrn_jax.tracking.demo import DEMO_SCENE, write_scene

    scene = write_scene(DEMO_OUTPUT / "scene")
    several = bool(args.targets) or len(args.init) > 1  # several targets: a folder of result files
    demo = argparse.Namespace(
        **{
            **vars(args),
            "input": [str(scene)],
            "output": args.output or str(DEMO_OUTPUT / ("boxes" if several else "boxes.txt")),
            "video": args.video or str(DEMO_OUTPUT / "demo.mp4"),
            "contact_sheet": args.contact_sheet or str(DEMO_OUTPUT / "demo.png"),
        }
    )
    return demo, [
        f"demo: a held-out synthetic scene (generator seed {DEMO_SCENE.seed}, never seen in training: "
        f"{DEMO_SCENE.frames} frames, {DEMO_SCENE.distractors[0]}-{DEMO_SCENE.distractors[1]} look-alike "
        f"distractors, an occluder) written to {scene}; green = ground truth, yellow = SiamRN"
    ]


def run(args: argparse.Namespace) -> list[str]:
    """Tracks as ``args`` asks; returns the summary lines. Raises the user errors ``main`` reports."""
    header = []
    backend = _backend(args)
    if not args.input and not args.batch:
        args, header = with_demo(args)
    specs = list(args.input) + list(args.batch)
    inits = [parse_box(s) for s in args.init]
    several_targets = _several_targets(args, specs, inits)
    batch = len(specs) > 1
    for path in (args.output, args.scores):
        _check_output(path, batch or several_targets)
    if args.video:
        visualize.check_video_path(args.video)
        _check_output(args.video, False)
    if args.contact_sheet:
        if Path(args.contact_sheet).suffix.lower() != ".png":
            raise UsageError(f"--contact-sheet {args.contact_sheet}: must be a .png file")
        _check_output(args.contact_sheet, False)
    srcs = [open_input(s) for s in specs]
    if args.max_frames is not None:
        srcs = [s.head(args.max_frames) for s in srcs]
    if batch:
        _check_batch(args, srcs)
    if several_targets:
        return header + _track_targets(args, srcs[0], inits, backend)
    mesh = _mesh(args, batch, backend == "xla")  # before any weights are read
    boxes = [_init_box(s, inits[i] if inits else None) for i, s in enumerate(srcs)]
    tracker = None
    if backend == "onnxruntime":
        tracker, note = _onnx_tracker(args)
        header.append(note)
        model, variables, params = tracker.model, None, tracker.params
    else:
        model, variables = load_model(args)
        params = TrackerParams.for_model(model, args.preset)
    if batch:
        return header + _track_many(args, srcs, boxes, model, variables, params, tracker, mesh)
    lines = header + [_track_one(args, srcs[0], boxes[0], model, variables, params, tracker)]
    written = [p for p in (args.output, args.video, args.contact_sheet) if p]
    if header and written:
        lines.append(f"wrote {', '.join(written)}")
    return lines


def _several_targets(args: argparse.Namespace, specs: list[str], inits: list[np.ndarray]) -> bool:
    """Whether the command tracks several targets in one input (several --init, or --targets); refuses
    the combinations that mix it with batch mode."""
    if args.targets:
        if inits:
            raise UsageError(f"--targets {args.targets} and --init: give the targets in one of them")
        if len(specs) > 1:
            raise UsageError(
                f"--targets {args.targets}: several targets are tracked in one input, not {len(specs)} "
                "(batch mode tracks one target per input)"
            )
        return True
    if len(specs) == 1 and len(inits) > 1:
        return True
    if len(inits) > len(specs) > 1:
        raise UsageError(
            f"{len(inits)} --init boxes for {len(specs)} inputs: several targets per input in batch mode is "
            "ambiguous; track several targets in one input (--input VIDEO --init A --init B) or give one "
            "--init per input"
        )
    if len(inits) not in (0, len(specs)):
        raise UsageError(f"{len(inits)} --init boxes for {len(specs)} inputs: give one per input or none")
    return False


def _track_targets(
    args: argparse.Namespace, src: FrameSource, inits: list[np.ndarray], backend: str
) -> list[str]:
    """Several targets in one input (``targets_mode``): one ``MultiTracker``, one batched step per frame."""
    if backend != "xla":
        raise UsageError("several targets in one input run with --backend xla (one batched step per frame)")
    if args.contact_sheet and src.num_frames is None and args.max_frames is None:
        raise UsageError("--contact-sheet on a live camera needs --max-frames N")
    if args.targets:
        targets = targets_mode.read_targets(args.targets)
    else:
        targets = targets_mode.targets_from_inits(inits)
    targets_mode.file_names(targets)  # colliding result files are refused before anything is loaded
    targets_mode.check_targets(targets, src)
    mesh = _mesh(args, True, True)
    model, variables = load_model(args)
    params = TrackerParams.for_model(model, args.preset)
    starts = [t.frame for t in targets]
    live = {sum(f <= s for f in starts) for s in starts}  # targets live after each start frame
    multi.warm_up(model, variables, params, sorted(live), mesh)  # the timed loop excludes compilation
    make = functools.partial(multi.MultiTracker, model, variables, params, mesh)
    return targets_mode.track_targets(args, src, targets, make, progress.frames)


def _backend(args: argparse.Namespace) -> str:
    backend = args.backend or ("onnxruntime" if args.onnx else "xla")
    if args.onnx and backend != "onnxruntime":
        raise UsageError(f"--onnx {args.onnx} runs with --backend onnxruntime, not {backend}")
    if backend == "onnxruntime":
        from siamrn_jax.tracking.onnx_backend import import_onnxruntime

        import_onnxruntime()  # the missing package is reported before anything is loaded or exported
        if args.dtype == "bfloat16":
            raise UsageError("--backend onnxruntime computes in float32: drop --dtype bfloat16")
    return backend


def _onnx_tracker(args: argparse.Namespace):
    """(``OnnxTracker``, a line saying which export it runs): --onnx DIR, or the cached export of the model
    (written now if there is none for these weights, tracker parameters and code)."""
    from siamrn_jax.export.onnx_cache import cached_export
    from siamrn_jax.tracking.onnx_backend import OnnxTracker

    if args.onnx:
        for flag, given in (("--checkpoint", args.checkpoint), ("--random-weights", args.random_weights)):
            if given:
                raise UsageError(f"--onnx {args.onnx} carries its own weights: drop {flag}")
        tracker = OnnxTracker(args.onnx)
        if args.preset is not None and TrackerParams.for_model(tracker.model, args.preset) != tracker.params:
            raise UsageError(
                f"--preset {args.preset}: {args.onnx} was exported with other tracker parameters "
                f"(export.json); re-export with --preset {args.preset}"
            )
        return tracker, f"onnxruntime: {args.onnx}"
    model, variables = load_model(args, inference=False)
    params = TrackerParams.for_model(model, args.preset)
    directory, written = cached_export(model, variables, params)
    tracker = OnnxTracker(directory)
    return tracker, f"onnxruntime: {directory} ({'exported now' if written else 'cached export'})"


# Our own error types (a NaN/inf network output included: TrackerStateError) and the OS's; nothing else.
USER_ERRORS = (SiamrnError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``track.py``; returns the exit status (0, or 2 after one ``error: ...`` line on stderr)."""
    args = build_parser().parse_args(argv)
    configure(args)
    try:
        lines = run(args)
    except USER_ERRORS as e:
        print(one_line(e), file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0
