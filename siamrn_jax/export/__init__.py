"""Serving artifacts of a tracker: ``python -m siamrn_jax.export FORMAT --checkpoint CKPT --out DIR``.

``stablehlo``: the tracker's two jitted functions (template init and per-frame step, network and
post-processing, weights baked in) as serialized ``jax.export`` artifacts, for other JAX programs
(``siamrn_jax.export.stablehlo``).

``onnx``: the same two functions, with the same flat inputs and outputs, as ONNX models (opset 18) made by
our own jaxpr -> ONNX converter, for onnxruntime or any ONNX runtime (``siamrn_jax.export.onnx``;
``track.py --backend onnxruntime`` tracks with them).
"""
