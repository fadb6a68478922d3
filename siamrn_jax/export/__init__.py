"""Serving artifacts of a tracker: ``python -m siamrn_jax.export stablehlo --checkpoint CKPT --out DIR``.

``stablehlo``: the tracker's two jitted functions (template init and per-frame step, network and
post-processing, weights baked in) as serialized ``jax.export`` artifacts, for other JAX programs
(``siamrn_jax.export.stablehlo``).
"""
