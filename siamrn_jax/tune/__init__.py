"""Tracker hyper-parameter search (``python -m siamrn_jax.tune``): Optuna TPE over penalty_k,
window_influence and lr with batched trials (``trials``: k trial values x S sequences as the rows of
lockstep batches), a resumable, shareable RDB study and a ``best.json`` that ``--preset FILE`` reads
(``study``)."""
