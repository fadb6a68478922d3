"""Training: losses, LR schedule and optimiser, on-device proposal mining, the train step, loop and CLI.

The host-side targets (point labels, sampled proposals, contrastive pairs) are part of the data pipeline:
``siamrn_jax.data.targets``."""
