"""``python -m siamrn_jax.convert SRC DST``: official PyTorch checkpoints <-> siamrn-jax checkpoints.

    python -m siamrn_jax.convert checkpoint_e19.pth ckpt/siamrn_vot      # .pth -> orbax checkpoint dir
    python -m siamrn_jax.convert siamban_model.pth ckpt/siamban          # SiamBAN: RD initialised fresh
    python -m siamrn_jax.convert resnet50.model ckpt/r50_imagenet        # pysot backbone only
    python -m siamrn_jax.convert nanotrackv2.pth ckpt/nanotrack_v2       # NanoTrack V2 / V3 (recognised)
    python -m siamrn_jax.convert nanotrackv2.pth ckpt/nano_rn --config configs/nanotrack.py:v2_rn
                                                                         # SiamRN-Nano: RD initialised fresh
    python -m siamrn_jax.convert nanotrackv2.pth ckpt/siamrn_nano --addon nano_rd_v2
                                                                         # SiamRN-Nano: our trained RD add-on
    python -m siamrn_jax.convert runs/nano/model my_addon --extract-addon  # trained RD -> add-on dir
    python -m siamrn_jax.convert ckpt/siamrn_vot back.pth                # orbax dir -> official .pth

The direction is taken from SRC: a directory with ``model.json`` is converted back to ``.pth``.
Errors are reported on one line (file + problem) with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from siamrn_jax import checkpoint
from siamrn_jax.cli_args import nonnegative_int
from siamrn_jax.config import build_model, load_config
from siamrn_jax.convert import addon
from siamrn_jax.convert.convert import (
    default_model,
    flax_to_torch,
    torch_prefixes,
    torch_to_flax,
    unwrap_state_dict,
)
from siamrn_jax.convert.torch_pickle import load_pth, save_pth
from siamrn_jax.errors import SiamrnError, one_line
from siamrn_jax.log_config import add_verbosity_flags, configure


def to_orbax(
    src: Path, dst: Path, config: str | None, seed: int, force: bool, addon_dir: str | None = None
) -> str:
    sd = unwrap_state_dict(load_pth(src), str(src))
    model = build_model(load_config(config).model) if config else default_model(sd)
    addon_arrays, addon_meta = {}, None
    if addon_dir is not None:
        addon_model, addon_arrays, addon_meta = addon.load(addon_dir)
        if config and addon_model != model:
            raise addon.AddonError(
                f"{addon_dir}: the add-on is for {addon_model.arch}, --config builds another"
            )
        model = addon_model

    def init_fn():  # parts the source lacks (the RD of a SiamBAN checkpoint...): add-on, else fresh
        return addon.merged_init(checkpoint.init_variables(model, seed), addon_arrays)

    variables, report = torch_to_flax(sd, checkpoint.abstract_variables(model), init_fn, str(src))
    if addon_meta is not None:
        report["addon"] = {"dir": str(addon.resolve(addon_dir)), "modules": addon_meta["modules"]}
        report["fresh"] = sorted(set(report["fresh"]) - set(addon_meta["modules"]))
    source = {"file": str(src), "seed": seed, **report}
    checkpoint.save(dst, model, variables, source, overwrite=force)
    msg = (
        f"{src} ({report['kind']}, {len(sd)} keys) -> {dst} ({model.arch}): {report['loaded']} leaves loaded"
    )
    if addon_meta is not None:
        msg += f"; from add-on {addon_dir}: {', '.join(addon_meta['modules'])}"
    if report["fresh"]:
        msg += f"; initialised fresh (seed {seed}): {', '.join(report['fresh'])}"
    if report["ignored"]:
        msg += f"; ignored: {', '.join(report['ignored'])}"
    return msg


def to_pth(src: Path, dst: Path, force: bool) -> str:
    if dst.exists() and not force:
        raise checkpoint.CheckpointError(f"{dst}: already exists (use --force)")
    model, variables, _ = checkpoint.load(src, inference=False)  # the stored arrays, nothing derived
    sd = flax_to_torch(variables, prefixes=torch_prefixes(model))
    save_pth(sd, dst)
    return f"{src} -> {dst}: {len(sd)} keys (official ModelBuilder names)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m siamrn_jax.convert",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    p.add_argument("src", type=Path, help=".pth/.model file, or a siamrn-jax checkpoint directory")
    p.add_argument("dst", type=Path, help="checkpoint directory to write, or .pth file")
    p.add_argument("--config", help="model architecture, e.g. configs/siamrn_r50.py:smoke (default: paper)")
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help="seed for parts the source does not provide"
    )
    p.add_argument(
        "--addon",
        metavar="DIR|NAME",
        help="take the parts the .pth lacks from this add-on (e.g. nano_rd_v2, the embedded SiamRN-Nano "
        "relation detector); the add-on also names the architecture",
    )
    p.add_argument(
        "--extract-addon",
        action="store_true",
        help="SRC checkpoint -> DST add-on dir of its relation detector",
    )
    p.add_argument("--recipe", default="", help="--extract-addon: how the add-on was trained (recorded)")
    p.add_argument("--force", action="store_true", help="overwrite DST")
    add_verbosity_flags(p)
    a = p.parse_args(argv)
    configure(a)
    try:
        if a.src.is_dir() and a.extract_addon:
            print(addon.extract(a.src, a.dst, a.recipe, a.force))
        elif a.src.is_dir():
            print(to_pth(a.src, a.dst, a.force))
        else:
            if not a.src.is_file():
                raise FileNotFoundError(2, "no such file", str(a.src))
            print(to_orbax(a.src, a.dst, a.config, a.seed, a.force, a.addon))
    except (SiamrnError, OSError) as e:  # our own error types and the OS's; anything else is a bug
        print(one_line(e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
