"""How long opening a pysot annotation JSON of official size takes, and how much memory the source keeps.

Writes a pysot ``train.json`` of ``--videos`` videos x ``--tracks`` tracks x ``--frames`` frames (GOT-10k
is ~9.3k videos of ~40 annotated frames with one track; VID ~4k videos; YouTube-BB ~200k tracks) into a
temporary folder, with an empty crop511 folder beside it (opening must touch no image), then measures
``PysotSource(...)`` once in this process:

- open s: wall time of the constructor (``time.perf_counter``), JSON parsing included;
- peak RSS +MB: increase of the process's peak resident memory during the open (``ru_maxrss``; the JSON
  is written streaming so that writing it does not raise the peak first);
- kept RSS +MB: resident memory still held after the open (the parsed JSON is freed, the source is not);
- pickle MB / ms: the source as loader worker processes receive it (``pickle.dumps``, then ``loads``).

Prints one Markdown table row (with ``--header``, the header first)::

    python -m siamrn_jax.bench.pysot_open --videos 10000 --frames 40 --header
"""

from __future__ import annotations

import gc
import json
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from siamrn_jax.data.pysot import PysotSource

HEADER = (
    "| videos | tracks | frames | JSON MB | open s | peak RSS +MB | kept RSS +MB | pickle MB "
    "| unpickle ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def write_json(path: Path, videos: int, tracks: int, frames: int, seed: int = 0) -> None:
    """A pysot annotation file, written one video at a time (never the whole dict in memory).

    Boxes are random xyxy in a 1280x720 frame, 6 decimals as pysot's gen_json writes them; video names
    look like GOT-10k's (``GOT-10k_Train_000001``), frame keys are 6-digit strings.
    """
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write("{")
        for v in range(videos):
            xy = rng.uniform(0, 1000, (tracks, frames, 2))
            wh = rng.uniform(8, 280, (tracks, frames, 2))
            boxes = np.round(np.concatenate([xy, xy + wh], -1), 6).tolist()
            video = {f"{t:02d}": {f"{i:06d}": boxes[t][i] for i in range(frames)} for t in range(tracks)}
            f.write(("," if v else "") + json.dumps(f"GOT-10k_Train_{v + 1:06d}") + ":" + json.dumps(video))
        f.write("}")


def _rss_mb() -> float:
    """Current resident memory of this process in MB (Linux /proc; NaN elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def measure(videos: int, tracks: int, frames: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root, anno = Path(tmp) / "crop511", Path(tmp) / "train.json"
        root.mkdir()
        write_json(anno, videos, tracks, frames)
        gc.collect()
        rss0, peak0 = _rss_mb(), _peak_mb()
        t0 = time.perf_counter()
        source = PysotSource("GOT10K", root, anno)
        open_s = time.perf_counter() - t0
        gc.collect()
        kept = _rss_mb() - rss0
        peak = _peak_mb() - peak0
        blob = pickle.dumps(source)
        t0 = time.perf_counter()
        pickle.loads(blob)
        unpickle_ms = (time.perf_counter() - t0) * 1e3
        assert len(source) == videos * tracks, (len(source), videos * tracks)
        return {
            "json_mb": anno.stat().st_size / 2**20,
            "open_s": open_s,
            "peak_mb": peak,
            "kept_mb": kept,
            "pickle_mb": len(blob) / 2**20,
            "unpickle_ms": unpickle_ms,
        }


if __name__ == "__main__":  # the command lives in siamrn_jax.cli
    import sys

    from siamrn_jax.cli.bench_pysot_open import main

    sys.exit(main())
