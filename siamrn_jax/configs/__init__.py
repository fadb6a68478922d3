"""Packaged experiment configs (ml_collections): ``siamrn_r50.py`` holds the paper model and its variants.

Command lines take them as ``--config FILE[:variant]`` or by bare variant name (``--config smoke``), which
``siamrn_jax.config.resolve_config_spec`` maps to the packaged ``siamrn_r50.py``.
"""
