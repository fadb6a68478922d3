"""Training entry point (``python train.py --config configs/siamrn_r50.py:<variant>``).

The training pipeline (contrastive triplets, hard-negative mining, data-parallel step, orbax resume) is
not implemented yet; this entry point says so instead of pretending. Until then, initialise from an
official checkpoint with ``python -m siamrn_jax.convert``.
"""

import sys


def main() -> int:
    print(
        "error: training is not implemented yet (tracked as the training issue); "
        "convert an official checkpoint with `python -m siamrn_jax.convert` instead",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
