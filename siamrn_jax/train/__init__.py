"""Training: losses, LR schedule and optimiser, on-device proposal mining, the train step, loop and CLI, and
the ablation grid of the paper's Table 3 (``python -m siamrn_jax.train.ablate``).

The host-side targets (point labels, sampled proposals, contrastive pairs) are part of the data pipeline:
``siamrn_jax.data.targets``."""
