"""Train SiamRN: ``python train.py --config configs/siamrn_r50.py:<variant> --workdir DIR [--config.x.y=v]``.

Runs (or resumes) the run in ``--workdir``; see ``siamrn_jax.train.loop`` for the workdir layout and the
phases, and the README for the commands. Multi-host: start one process per host with the same
``--coordinator_address host:port --num_processes N`` and its own ``--process_id`` (or let
``jax.distributed`` auto-detect Slurm / Open MPI / k8s with ``--distributed``).
"""

import sys

from siamrn_jax.xla_flags import apply_default_xla_flags

if __name__ == "__main__":  # grain worker processes re-import this module: keep everything in the guard
    apply_default_xla_flags()
    from siamrn_jax.train.cli import main

    sys.exit(main(sys.argv))
