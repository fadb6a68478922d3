"""``python -m siamrn_jax.export {stablehlo,onnx} --checkpoint CKPT --out DIR``: a tracker's serving files.

    python -m siamrn_jax.export stablehlo --checkpoint ckpt/nanotrack_v2 --out exported/nanotrack_v2
    python -m siamrn_jax.export stablehlo --checkpoint demo_resnet --out exported/dr --preset vot --batch 4
    python -m siamrn_jax.export onnx --checkpoint ckpt/siamrn_vot --out exported/siamrn_onnx --preset vot

stablehlo: template.jaxexport + step.jaxexport (jax.export). onnx: template.onnx + step.onnx (opset 18,
for onnxruntime; track.py --backend onnxruntime --onnx DIR runs them). Both write export.json.

Errors are one line (file + problem) with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from siamrn_jax.cli.args import add_preset, add_verbosity_flags, positive_int
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.log_config import configure


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m siamrn_jax.export",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    sub = p.add_subparsers(dest="format", required=True)
    for fmt, text in (
        ("stablehlo", "jax.export artifacts of the tracker's init and step"),
        ("onnx", "ONNX models (opset 18) of the tracker's init and step, for onnxruntime"),
    ):
        s = sub.add_parser(fmt, help=text)
        s.add_argument("--checkpoint", required=True, help="checkpoint directory, or 'demo'")
        s.add_argument("--out", required=True, type=Path, help="export directory to write")
        add_preset(s)
        s.add_argument("--batch", type=positive_int, default=1, help="sequences per call (default 1)")
        s.add_argument("--no-relation", action="store_true", help="score with the BAN head alone")
        s.add_argument("--force", action="store_true", help="overwrite --out")
        add_verbosity_flags(s)
    a = p.parse_args(argv)
    configure(a)
    try:
        from siamrn_jax import checkpoint
        from siamrn_jax.export import stablehlo
        from siamrn_jax.tracking.params import TrackerParams

        if a.out.exists() and not a.force:
            raise stablehlo.ExportError(f"{a.out}: already exists (use --force)")
        kw = {"relation": False} if a.no_relation else {}
        if a.format == "stablehlo":
            # The stored weights, no CPU-only Winograd kernels: the artifact serves on any XLA backend.
            model, variables, _ = checkpoint.load_weights(a.checkpoint, inference=False)
            params = TrackerParams.for_model(model, a.preset, **kw)
            out = stablehlo.save(a.out, model, variables, params, a.batch)
            files = "template.jaxexport, step.jaxexport"
        else:
            from siamrn_jax.export import onnx as onnx_export

            # The stored arrays (no CPU Winograd kernels: plain convolutions map to ONNX Conv), float32.
            model, variables, _ = checkpoint.load_weights(a.checkpoint, dtype="float32", inference=False)
            params = TrackerParams.for_model(model, a.preset, **kw)
            out = onnx_export.save(a.out, model, variables, params, a.batch, preset=a.preset)
            files = f"{onnx_export.FILES[0]}, {onnx_export.FILES[1]}, {onnx_export.WEIGHTS}"
        print(f"{a.checkpoint} -> {out}: {files}, export.json (batch {a.batch})")
    except (SiamrnError, OSError) as e:
        print(one_line(e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
