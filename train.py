"""Train SiamRN: ``python train.py --config configs/siamrn_r50.py:<variant> --workdir DIR [--config.x.y=v]``
(= ``siamrn-train``; ``--config <variant>`` also works).

Runs (or resumes) the run in ``--workdir``; see ``siamrn_jax.train.loop`` for the workdir layout and the
phases, and docs/training.md for the commands. Multi-host: start one process per host with the same
``--coordinator_address host:port --num_processes N`` and its own ``--process_id`` (or let
``jax.distributed`` auto-detect Slurm / Open MPI / k8s with ``--distributed``).
"""

import sys

if __name__ == "__main__":  # grain worker processes re-import this module: keep everything in the guard
    from siamrn_jax.cli.commands import train

    sys.exit(train())
