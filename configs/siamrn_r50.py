"""SiamRN with a ResNet-50 backbone: ``--config configs/siamrn_r50.py:<variant>`` (vot, otb, smoke, demo).

A thin alias of the packaged config ``siamrn_jax/configs/siamrn_r50.py`` (one source of truth), kept so
paths into a checkout keep working; installed commands also accept the bare variant (``--config smoke``).
"""

from siamrn_jax.configs.siamrn_r50 import get_config

__all__ = ["get_config"]
