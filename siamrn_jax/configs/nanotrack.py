"""NanoTrack (HonglinChu/SiamTrackers) and SiamRN-Nano, its relation-detector add-on.

Usage: ``--config configs/nanotrack.py:<variant>`` (a checkout) or the packaged file, with variant one of
- ``v2`` (default) / ``v3``: NanoTrack as converted from the official ``.pth`` (``python -m
  siamrn_jax.convert nanotrackv2.pth DIR`` recognises the file and needs no config);
- ``demo``: the embedded demo model's recipe, SiamRN-Nano's architecture trained from scratch on the
  synthetic source (``_demo``);
- ``v2_rn`` / ``v3_rn``: SiamRN-Nano: the NanoTrack network frozen (BatchNorms in eval mode, no
  gradients), SiamRN's relation detector trained on its stride-16 features with online hard negatives
  (SPEC section 8) and used by the refinement module at tracking time. Start from a conversion into this
  architecture (the relation detector initialised fresh)::

      python -m siamrn_jax.convert nanotrackv2.pth ckpt/nano_rn_init --config configs/nanotrack.py:v2_rn
      python train.py --config configs/nanotrack.py:v2_rn --workdir runs/nano_rn \\
          --config.train.init_checkpoint=ckpt/nano_rn_init

Only ``siamrn_jax.config.build_model`` and the entry points read this.
"""

import ml_collections

from siamrn_jax.configs.siamrn_r50 import from_scratch_training
from siamrn_jax.configs.siamrn_r50 import get_config as _paper_config


def get_config(variant: str = "v2") -> ml_collections.ConfigDict:
    if variant == "demo":
        return _demo()
    version, _, rn = variant.partition("_")
    if version not in ("v2", "v3") or rn not in ("", "rn"):
        raise ValueError(
            f"configs/nanotrack.py: unknown variant {variant!r} (expected v2, v3, v2_rn, v3_rn or demo)"
        )
    c = _paper_config("vot")  # the paper's train / data sections, adapted below
    c.unlock()
    c.variant = variant
    c.model = ml_collections.ConfigDict(
        {
            "arch": f"nanotrack_{version}",
            "relation": rn == "rn",
            "roi_size": 7,
            "exemplar_size": 127,
            "instance_size": 255,
            "dtype": "float32",
        }
    )
    if rn:
        # SiamRN-Nano's relation detector at 32 channels, not the official neck's 64 / 96: its per-proposal
        # products grow with the square of the width, and at 64 they cost V2's frame 5.5 instead of
        # 3.3 ms on 2 CPU cores (docs/performance.md); the held-out accuracy is in docs/models.md.
        c.model.rd_width = 32
    t = c.train
    # Only the relation detector trains: the BAN losses are computed (the metrics show how the frozen
    # head does on the training data) but weigh nothing, and the frozen parts get no update.
    t.frozen = ("backbone", "head")
    t.cls_weight = 0.0
    t.loc_weight = 0.0
    t.backbone_train_epoch = 0  # no phase switch: the backbone is frozen throughout anyway
    # A short CPU-sized recipe (about 10 minutes on 2 cores): 6 epochs x 100 steps x 8 pairs.
    t.batch_per_device = 8
    t.epochs = 6
    t.steps_per_epoch = 100
    t.warmup_epochs = 1
    t.base_lr = 0.005  # the paper's; 0.01 was measured unstable here
    t.warmup_lr = 0.001
    t.end_lr = 0.0005
    t.hnm_epoch = 2
    t.log_every = 25
    t.checkpoint_every = 100
    c.data.workers = 2
    c.lock()
    return c


def _demo() -> ml_collections.ConfigDict:
    """The embedded demo model (siamrn_jax/assets/demo): SiamRN-Nano's architecture (NanoTrack V2 + a
    16-channel relation detector) trained from scratch on the synthetic source in about an hour on 2 CPU
    cores (15 epochs x 150 steps x 8 pairs, as ``configs/siamrn_r50.py:demo_resnet``): every part trains
    from step 0 at the full LR (no pretrained weights to protect), BatchNorm statistics calibrated before
    step 0, boxes started at ~20 px instead of ~1 px."""
    c = get_config("v2_rn")
    c.unlock()
    c.variant = "demo"
    # 16 channels, not SiamRN-Nano's 32: 0.35 ms less per frame on 2 CPU cores (2.4 vs 2.7 ms, random
    # weights, interleaved), the margin that keeps the demo above 0.4x of OpenCV's TrackerNano.
    c.model.rd_width = 16
    t = c.train
    t.frozen = ()
    t.cls_weight = 1.0
    t.loc_weight = 1.0
    from_scratch_training(t)  # MobileNetV3 has no separately frozen stem: no train.stem_trainable
    c.lock()
    return c
