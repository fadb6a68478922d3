"""NanoTrack and SiamRN-Nano: ``--config configs/nanotrack.py:<variant>`` (v2, v3, v2_rn, v3_rn, demo).

A thin alias of the packaged config ``siamrn_jax/configs/nanotrack.py`` (one source of truth).
"""

from siamrn_jax.configs.nanotrack import get_config

__all__ = ["get_config"]
