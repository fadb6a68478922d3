"""SiamRN with a ResNet-50 backbone: the paper model and its small variants.

Usage: ``--config configs/siamrn_r50.py:<variant>`` (a checkout), ``--config <variant>`` (any install) with
variant one of
- ``vot`` (default): the paper model with the official VOT tracker hyper-parameters;
- ``otb``: the paper model with the official OTB tracker hyper-parameters;
- ``smoke``: same architecture family, tiny widths and one block per stage, for tests on CPU;
- ``demo_resnet``: the smoke architecture with the from-scratch training recipe of the embedded
  ``demo_resnet`` model (the demo model until issue 27; the demo model's recipe is now
  ``configs/nanotrack.py:demo``).

Only ``siamrn_jax.config.build_model`` and the entry points read this; library code gets typed values.
"""

import ml_collections


def get_config(variant: str = "vot") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.variant = variant

    c.model = ml_collections.ConfigDict()
    m = c.model
    m.backbone_blocks = (3, 4, 6, 3)
    m.backbone_widths = (64, 128, 256, 512)
    m.stem_width = 64
    m.channels = 256  # neck / head / RoI width
    m.levels = (2, 3, 4)
    m.template_crop = 7  # "7x7 everywhere" (SPEC section 0.2): the 2021 snapshot's 8x8 crop is a bug
    m.roi_size = 7
    m.stride = 8
    # Crop sides live in the model only: the tracker derives its geometry from them (TrackerParams.for_model).
    m.exemplar_size = 127
    m.instance_size = 255
    m.dtype = "float32"  # or "bfloat16": mixed precision (float32 parameters, BN, softmax, losses, boxes)
    # Recompute the layer2-4 block activations in the backward pass (less memory once the backbone trains;
    # same values and parameters; may change between restarts of a run).
    m.remat_backbone = False
    # Ablation switches (the paper's Table 3; python -m siamrn_jax.train.ablate runs a grid of them). The
    # BAN head's levels are m.levels (any increasing subset of 2, 3, 4 = C3, C4, C5).
    m.rd_levels = None  # relation-detector levels, a subset of m.levels; None = m.levels
    m.rd_heads = ("global", "local", "patch")  # relation heads summed per level, any subset in this order

    c.train = _train()
    c.data = _data(gray=0.2 if variant == "otb" else 0.0)

    if variant == "smoke":
        _tiny_model(m)
        t = c.train
        t.batch_per_device = 1
        t.epochs = 4
        t.steps_per_epoch = 10
        t.backbone_train_epoch = 2
        t.hnm_epoch = 1
        t.warmup_epochs = 1
        t.log_every = 5
        t.checkpoint_every = 10
        c.data.workers = 0
        c.data.synthetic.num_videos = 200
        c.data.synthetic.frames = 30
    elif variant == "demo_resnet":
        # The embedded demo_resnet model (siamrn_jax/assets/demo_resnet): the smoke architecture trained from
        # scratch on the synthetic source in about an hour on 2 CPU cores. From scratch means: the whole
        # backbone trains from step 0 at the full LR (no ImageNet weights to protect), BN statistics
        # calibrated before step 0.
        _tiny_model(m)
        from_scratch_training(c.train)
        c.train.stem_trainable = True  # conv1 / bn1 / layer1 too: the ResNet's always-frozen stem
    elif variant not in ("vot", "otb"):
        raise ValueError(
            f"configs/siamrn_r50.py: unknown variant {variant!r} (expected vot, otb, smoke or demo_resnet; "
            "the demo model's recipe is configs/nanotrack.py:demo)"
        )
    c.lock()
    return c


def from_scratch_training(t: ml_collections.ConfigDict) -> None:
    """The CPU-sized from-scratch recipe of both embedded demo models (``demo_resnet`` here,
    ``configs/nanotrack.py:demo``): 15 epochs x 150 steps x 8 pairs (about an hour on 2 cores), every
    trainable part at the full LR from step 0, BN statistics calibrated before step 0, online HNM from
    epoch 3."""
    t.batch_per_device = 8
    t.epochs = 15
    t.steps_per_epoch = 150
    t.warmup_epochs = 2
    t.base_lr = 0.01
    t.warmup_lr = 0.002
    t.end_lr = 0.0002
    t.backbone_train_epoch = 0
    t.backbone_lr_mult = 1.0
    t.calibrate_bn = 4
    t.loc_bias_init = 3.0  # boxes start at ~20 px from the centre instead of ~1 px
    t.hnm_epoch = 3
    t.log_every = 10
    t.checkpoint_every = 150


def _tiny_model(m: ml_collections.ConfigDict) -> None:
    """The smoke / demo_resnet architecture: one block per stage, 1/8 of the ResNet-50 widths, 32-channel
    heads."""
    m.backbone_blocks = (1, 1, 1, 1)
    m.backbone_widths = (8, 16, 32, 64)
    m.stem_width = 8
    m.channels = 32


def _train() -> ml_collections.ConfigDict:
    """Optimisation and bookkeeping (SPEC 8.6); defaults are the official values."""
    t = ml_collections.ConfigDict()
    t.seed = 123456
    t.batch_per_device = 28  # official: 28 per GPU
    t.epochs = 20
    t.videos_per_epoch = 1_000_000
    t.steps_per_epoch = 0  # 0: videos_per_epoch // global batch (official)
    t.base_lr = 0.005
    t.warmup_lr = 0.001
    t.warmup_epochs = 5
    t.end_lr = 0.00005
    t.smooth_lr = False  # True: per-step interpolation instead of the official per-epoch steps
    t.momentum = 0.9
    t.weight_decay = 1e-4
    t.clip_norm = 10.0
    t.loss_limit = 1e4  # iterations with a loss above this (or non-finite) skip the update
    t.backbone_train_epoch = 10  # layer2-4 trainable (0.1x LR, BN batch statistics) from this epoch
    t.backbone_lr_mult = 0.1
    t.stem_trainable = False  # conv1/bn1/layer1 always frozen (official); True for from-scratch models
    t.frozen = ()  # top-level modules that never train, BN in eval mode (SiamRN-Nano: backbone, head)
    t.hnm_epoch = 3  # RD proposals from the head's predictions + online hard negatives from this epoch
    t.online_hnm = True  # False: keep the sampled proposals for the whole run (ablation)
    # RD training pairs (ablation, paper Table 3): "contrastive" = the official 1:2:1 pairs (SPEC 7.5);
    # "one_way" = naive one-way one-shot, the template is the only support (siamrn_jax.data.targets).
    t.rd_pairs = "contrastive"
    t.cls_weight = 1.0
    t.loc_weight = 1.0
    t.match_weight = 1.0
    t.match_loss = "ce"  # or "mse" (the intended form of the unused official option)
    t.reduction = "mean"  # or "sum": the official multi-GPU gradient all-reduce sums
    t.bn_groups = 1  # BatchNorm groups per device (G groups on one device == G devices)
    t.init_checkpoint = ""  # siamrn-jax checkpoint dir (e.g. a converted SiamBAN / resnet50.model)
    t.calibrate_bn = 0  # from scratch: forward passes that set BN running stats before step 0
    t.loc_bias_init = 0.0  # from scratch: start the loc outputs at exp(value) px (0: keep the init)
    t.log_every = 20
    t.checkpoint_every = 1000  # steps; also at every epoch end
    t.keep_checkpoints = 3
    return t


def _data(gray: float) -> ml_collections.ConfigDict:
    """Training data (SPEC 8.1). ``use`` lists the datasets of the mixture; the embedded default is the
    procedural synthetic source (no download). The paper's mixture on pysot crop511 data:
    ``--config.data.use="('VID','YOUTUBEBB','COCO','DET','GOT10K','LASOT')" --config.data.root=DIR``."""
    d = ml_collections.ConfigDict()
    d.use = ("synthetic",)
    d.root = "training_dataset"  # pysot layout: <root>/<dir>/crop511 and <root>/<dir>/train.json
    d.gray = gray
    d.neg = 0.2
    d.workers = 2  # grain worker processes building batches
    d.prefetch = 2  # batches buffered per worker
    d.hnm_index = ""  # offline hard-negative index dir (python -m siamrn_jax.data.hnm_index build ...)
    # Bad frames (missing, unreadable, corrupt) are skipped and counted; more than this share of bad sample
    # draws stops the run (checked from 10 / max_bad_fraction draws on, so one early bad frame never does).
    d.max_bad_fraction = 0.01
    d.synthetic = ml_collections.ConfigDict(
        {"num_use": -1, "frame_range": 100, "num_videos": 2000, "frames": 60, "seed": 0}
    )
    # name: (directory under root, NUM_USE, FRAME_RANGE, offline hard negatives), SPEC 8.1 / 8.3.
    official = {
        "VID": ("vid", "train.json", 100_000, 100, True),
        "YOUTUBEBB": ("yt_bb", "train.json", 200_000, 3, False),
        "COCO": ("coco", "train2017.json", 100_000, 1, False),
        "DET": ("det", "train.json", 200_000, 1, False),
        "GOT10K": ("got10k", "train.json", 200_000, 100, True),
        "LASOT": ("lasot", "train.json", 200_000, 100, True),
    }
    for name, (folder, anno, num_use, frame_range, hard) in official.items():
        d[name] = ml_collections.ConfigDict(
            {
                # "pysot", or "tfds": <root>/<dir> is then built by python -m siamrn_jax.data.tfds_builders
                "kind": "pysot",
                "dir": folder,  # pysot: <root>/<dir>/crop511/ and <root>/<dir>/<anno>
                "anno": anno,
                "num_use": num_use,
                "frame_range": frame_range,
                "hard_negatives": hard,
            }
        )
    return d
