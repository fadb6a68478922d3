"""``track.py``'s multi-target mode: several targets in one input, one batched step per frame.

``track.py --input VIDEO --init A --init B ...`` (all starting on the first frame) or ``--targets FILE``
(one ``frame,x,y,w,h[,name]`` line per target, so a target may start later) track every target with one
``MultiTracker``. Outputs: one pysot result file per target in the ``--output`` / ``--scores`` folders
(``<name or id>.txt``, one line per frame of the input, ``nan`` where the target is not tracked), and
the annotated video / contact sheet with each target in its own colour and name.

Kept apart from ``track.py`` (which dispatches here) so that the command's modes can move independently.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from siamrn_jax.errors import SiamrnError
from siamrn_jax.io.results import box_line, progressive_output
from siamrn_jax.io.sources import FrameSource
from siamrn_jax.tracking import visualize
from siamrn_jax.tracking.multi import MultiTracker
from siamrn_jax.tracking.runner import check_box


class TargetsError(SiamrnError, ValueError):
    """A ``--targets`` file (or set of ``--init`` boxes) that does not describe trackable targets."""


class TargetSpec(NamedTuple):
    """One target of the command line: where it starts and what it is called.

    Attributes:
      frame: 0-based index of the frame it starts in.
      box: [4] (x, y, w, h) in 0-based pixels of that frame.
      name: its name (result file stem), None to be named by its id.
      where: how messages name its origin (``FILE:LINE`` or ``--init N``).
    """

    frame: int
    box: np.ndarray
    name: str | None
    where: str


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FORMAT = "frame,x,y,w,h[,name] (frame a 0-based index, box in 0-based pixels)"


def read_targets(path: str | Path) -> list[TargetSpec]:
    """Parses a ``--targets`` file: one ``frame,x,y,w,h[,name]`` line per target (commas or spaces);
    blank lines and lines starting with ``#`` are skipped.

    Raises:
      TargetsError: a line that does not parse (named ``FILE:LINE``), a bad or repeated name, no target.
      OSError: the file cannot be read.
    """
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise TargetsError(f"{path}: not a text file of {_FORMAT} lines") from None
    specs = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        specs.append(_parse_line(line, f"{path}:{i}"))
    if not specs:
        raise TargetsError(f"{path}: no targets (expected {_FORMAT} lines)")
    return specs


def _parse_line(line: str, where: str) -> TargetSpec:
    parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
    try:
        if len(parts) not in (5, 6) or not parts[0].isdigit():
            raise ValueError
        box = np.array([float(v) for v in parts[1:5]], np.float64)
    except ValueError:
        raise TargetsError(f"{where}: expected {_FORMAT}, got {line.strip()!r}") from None
    name = parts[5] if len(parts) == 6 else None
    if name is not None and not _NAME.fullmatch(name):
        raise TargetsError(
            f"{where}: target name {name!r}: use letters, digits, '.', '_' and '-' (it names result files)"
        )
    return TargetSpec(int(parts[0]), box, name, where)


def targets_from_inits(boxes: list[np.ndarray]) -> list[TargetSpec]:
    """Several ``--init`` boxes: unnamed targets starting on the first frame."""
    return [TargetSpec(0, b, None, f"--init {k + 1}") for k, b in enumerate(boxes)]


def file_names(specs: list[TargetSpec]) -> list[str]:
    """The result-file stem of each target: its name, else its id (ids go 0, 1, ... in the order the
    targets start: by frame, then in the order given); ``TargetsError`` when two would collide."""
    order = sorted(range(len(specs)), key=lambda k: specs[k].frame)
    ids = {k: n for n, k in enumerate(order)}
    stems = [s.name if s.name is not None else str(ids[k]) for k, s in enumerate(specs)]
    seen: dict[str, TargetSpec] = {}
    for stem, s in zip(stems, specs, strict=True):
        if stem in seen:
            other = seen[stem].where  # FILE:LINE, said as "line LINE" within the same file
            file, _, line = other.rpartition(":")
            other = f"line {line}" if file and s.where.startswith(file + ":") else other
            raise TargetsError(f"{s.where}: target name {stem!r} is also the one of {other} (result files)")
        seen[stem] = s
    return stems


def check_targets(specs: list[TargetSpec], src: FrameSource) -> None:
    """Start frames inside the input and boxes inside its frames, before anything is compiled.

    Frame sizes come from the first frame (videos and sequences keep one size; a later frame of another
    size is checked again when the target starts, by ``MultiTracker.add``).
    """
    n = src.num_frames
    if n is None:
        return  # a camera: boxes are checked on the frame each target starts in
    first = src[0].shape[:2]
    for s in specs:
        if s.frame >= n:
            raise TargetsError(
                f"{s.where}: starts at frame {s.frame}, but {src.name} has {n} frames (0-{n - 1})"
            )
        check_box(s.box, first, f"{s.where}: box")


# --- drawing ---------------------------------------------------------------------------------------------

# BGR, distinct on most footage; the ground-truth green is left out (multi-target mode draws no ground truth).
PALETTE = (
    (0, 220, 255),  # yellow
    (255, 160, 0),  # blue
    (255, 0, 255),  # magenta
    (0, 128, 255),  # orange
    (255, 255, 0),  # cyan
    (0, 0, 255),  # red
    (200, 120, 255),  # pink
    (255, 255, 255),  # white
)


def color(k: int) -> tuple[int, int, int]:
    """The colour of the k-th target (the palette repeats after 8)."""
    return PALETTE[k % len(PALETTE)]


# --- the run ---------------------------------------------------------------------------------------------


class _Record:
    """What the loop keeps of one target: result lines, and its numbers for the summary."""

    def __init__(self, stem: str, k: int):
        self.stem, self.k = stem, k
        self.tracked: list[float] = []  # best scores of the tracked frames
        self.start: int | None = None
        self.end: int | None = None  # last frame with a box
        self.dropped_at: int | None = None


def track_targets(
    args: Any,
    src: FrameSource,
    specs: list[TargetSpec],
    make_tracker: Callable[..., MultiTracker],
    progress: Callable[[str, int | None], Any],
) -> list[str]:
    """Tracks ``specs`` in ``src`` with one ``MultiTracker``; writes ``args.output`` / ``args.scores``
    folders, ``args.video``, ``args.contact_sheet``; returns the summary lines.

    Args:
      make_tracker: builds the tracker, given ``on_drop`` (a ``MultiTracker`` on the loaded model).
      progress: the progress-bar context manager (name, total) -> advance(n) (``progress.frames``).
    """
    stems = file_names(specs)
    records = [_Record(stem, k) for k, stem in enumerate(stems)]
    expected = src.num_frames if src.num_frames is not None else args.max_frames
    sheet_at = set(visualize.sheet_indices(expected)) if args.contact_sheet and expected else set()

    def on_drop(message: str) -> None:
        print(f"warning: {src.name}: {message}", file=sys.stderr)

    multi = make_tracker(on_drop=on_drop)
    starts: dict[int, list[int]] = {}
    for k in sorted(range(len(specs)), key=lambda k: specs[k].frame):
        starts.setdefault(specs[k].frame, []).append(k)
    of_id: dict[int, int] = {}  # tracker id -> index into specs
    seconds, target_frames, frames, sheet = 0.0, 0, 0, []
    with contextlib.ExitStack() as stack:
        outs = _line_files(stack, args.output, stems)
        scores = _line_files(stack, args.scores, stems)
        video = (
            stack.enter_context(visualize.VideoWriter(args.video, src.fps or 25.0)) if args.video else None
        )
        advance = stack.enter_context(progress(src.name, src.num_frames))
        for t, frame in enumerate(src):
            rows: dict[int, tuple[np.ndarray, float]] = {}
            if multi.ids:
                t0 = time.perf_counter()
                out = multi.track(frame)
                seconds += time.perf_counter() - t0
                target_frames += len(out)
                for i, r in out.items():
                    rows[of_id[i]] = (np.asarray(r["bbox"]), r["best_score"])
                for i in [i for i in of_id if i in multi.dropped]:
                    records[of_id.pop(i)].dropped_at = t
            for k in starts.get(t, []):
                of_id[multi.add(frame, specs[k].box, specs[k].name)] = k
                rows[k] = (specs[k].box, float("nan"))
                records[k].start = t
            _write_frame(t, frame, rows, records, outs, scores, video, sheet, sheet_at)
            frames += 1
            advance(1)
    if args.contact_sheet:
        visualize.contact_sheet(sheet, args.contact_sheet)
    return _summary(src, records, frames, target_frames, seconds, multi.mesh)


def _line_files(stack: contextlib.ExitStack, folder: str | None, stems: list[str]) -> list | None:
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return [stack.enter_context(progressive_output(Path(folder) / f"{s}.txt")) for s in stems]


def _write_frame(t, frame, rows, records, outs, scores, video, sheet, sheet_at) -> None:
    """Result lines of frame ``t`` for every target (``nan`` where it has no box) and its annotations."""
    nan4 = np.full(4, np.nan)
    for k, rec in enumerate(records):
        box, score = rows.get(k, (nan4, float("nan")))
        if k in rows:
            rec.end = t
            if np.isfinite(score):
                rec.tracked.append(score)
        if outs is not None:
            outs[k].write_line(box_line(box))
        if scores is not None:
            scores[k].write_line(f"{score:.6f}")
    if video is None and t not in sheet_at:
        return
    ann = []
    for k, (box, score) in sorted(rows.items()):
        label = records[k].stem if not np.isfinite(score) else f"{records[k].stem} {score:.2f}"
        ann.append((box, color(k), label))
    if video is not None:
        img = frame
        for box, c, label in ann:
            img = visualize.draw(img, box, c, label)
        video.write(img)
    if t in sheet_at:
        sheet.append(visualize.Annotated(t, frame, ann))


def _summary(src, records, frames: int, target_frames: int, seconds: float, mesh) -> list[str]:
    lines = []
    for rec in records:
        if rec.start is None:
            lines.append(f"{rec.stem}: never started")
            continue
        what = f"{rec.stem}: frames {rec.start}-{rec.end} (0-based), {len(rec.tracked)} tracked"
        if rec.tracked:
            what += f", mean best score {np.mean(rec.tracked):.3f}"
        if rec.dropped_at is not None:
            what += f", dropped at frame {rec.dropped_at} (non-finite state)"
        lines.append(what)
    rate = f"{target_frames / seconds:.1f} target-frames/s" if seconds > 0 else "no steps"
    on = "" if mesh is None else f" over {mesh.size} devices"
    lines.append(
        f"{len(records)} targets in {src.name}{on}: {frames} frames, {target_frames} target-frames tracked, "
        f"{rate} (one batched step per frame; excluding init)"
    )
    return lines
