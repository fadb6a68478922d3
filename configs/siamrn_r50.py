"""SiamRN with a ResNet-50 backbone: the paper model and its small variants.

Usage: ``--config configs/siamrn_r50.py:<variant>`` with variant one of
- ``vot`` (default): the paper model with the official VOT tracker hyper-parameters;
- ``otb``: the paper model with the official OTB tracker hyper-parameters;
- ``smoke``: same architecture family, tiny widths and one block per stage, for tests on CPU.

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
    m.instance_size = 255
    m.dtype = "float32"

    c.crop = ml_collections.ConfigDict()
    c.crop.exemplar_size = 127
    c.crop.instance_size = m.get_ref("instance_size")
    c.crop.context_amount = 0.5

    if variant == "smoke":
        m.backbone_blocks = (1, 1, 1, 1)
        m.backbone_widths = (8, 16, 32, 64)
        m.stem_width = 8
        m.channels = 32
    elif variant not in ("vot", "otb"):
        raise ValueError(f"configs/siamrn_r50.py: unknown variant {variant!r} (expected vot, otb or smoke)")
    c.lock()
    return c
