"""The training input pipeline: grain datasets of per-process batches, checkpointable and deterministic.

Element ``s`` of the dataset is this process's slice of the global batch of step ``s``: global samples
``s * G + p * L + [0, L)`` with G the global batch, L = G / process_count and p the process index
(``TripletSampler.sample`` makes each of them from its index alone). The iterator is a grain
``DatasetIterator``: ``get_state()`` is a small JSON-able dict saved with every checkpoint and
``set_state`` resumes exactly where it was. ``workers > 0`` builds batches in that many worker processes
(``mp_prefetch``) so that the accelerator never waits for data; the main module then needs an
``if __name__ == '__main__'`` guard (grain workers re-import it), which ``train.py`` has.
"""

from __future__ import annotations

from typing import Any

import grain
import numpy as np
from absl import flags

from siamrn_jax.data.sampler import TripletSampler


class _BatchFn:
    """step -> this process's batch (a picklable callable for grain workers)."""

    def __init__(self, sampler: TripletSampler, process_index: int, process_count: int):
        if sampler.global_batch % process_count:
            raise ValueError(
                f"global batch {sampler.global_batch} does not split over {process_count} processes"
            )
        self.sampler = sampler
        self.local = sampler.global_batch // process_count
        self.offset = process_index * self.local

    def __call__(self, step: int) -> dict[str, np.ndarray]:
        start = int(step) * self.sampler.global_batch + self.offset
        return self.sampler.batch(range(start, start + self.local))


def make_dataset(
    sampler: TripletSampler,
    num_steps: int,
    *,
    process_index: int = 0,
    process_count: int = 1,
    workers: int = 0,
    prefetch: int = 2,
) -> grain.IterDataset:
    """The iterable dataset of ``num_steps`` per-process batches (iterate it, or ``iter()`` it for a
    checkpointable ``DatasetIterator``)."""
    ds = grain.MapDataset.range(num_steps).map(_BatchFn(sampler, process_index, process_count))
    if workers > 0:
        # grain reads its absl flags in the parent; outside an absl app (tests, notebooks) they are unparsed
        # and grain would raise UnparsedFlagAccessError (JAX_STACK.md 6). Defaults are what we want.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        it = ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
        return it.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=prefetch)
        )
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=max(1, prefetch), prefetch_buffer_size=prefetch))


def iterator_at(dataset: grain.IterDataset, state: dict[str, Any] | None) -> grain.DatasetIterator:
    """A fresh iterator over ``dataset``, restored to ``state`` (from ``get_state()``) when given."""
    it = iter(dataset)
    if state is not None:
        it.set_state(state)
    return it
