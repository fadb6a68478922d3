"""siamrn-jax: the SiamRN tracker (CVPR 2021) in JAX/Flax.

Entry points (imported from their modules, so that ``import siamrn_jax`` stays cheap):

- ``siamrn_jax.models.siamrn.SiamRN``: the staged network; ``siamrn_jax.config.build_model`` builds it from
  a config's ``model`` section.
- ``siamrn_jax.checkpoint.load`` / ``save``: checkpoint directories (orbax + ``model.json``).
- ``siamrn_jax.tracking.runner.Tracker`` (pysot-like ``init`` / ``track``) and ``track_batch``; the pure
  jitted functions are in ``siamrn_jax.tracking.tracker``.
- ``python -m siamrn_jax.convert``, ``python -m siamrn_jax.bench``, ``track.py``.

Coordinate and layout conventions: ``siamrn_jax.geometry.boxes``.
"""
