"""Official PyTorch checkpoints <-> siamrn-jax checkpoints, file to file: the conversions of
``python -m siamrn_jax.convert`` (``siamrn_jax.cli.convert``).

``to_orbax``: a ``.pth`` / ``.model`` file -> a checkpoint directory (NanoTrack recognised by its keys, the
parts the source lacks from an add-on or initialised fresh); ``to_pth``: a checkpoint directory -> an
official ``.pth``.
"""

from __future__ import annotations

from pathlib import Path

from siamrn_jax import checkpoint
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
