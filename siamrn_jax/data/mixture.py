"""The training mixture from the ``data`` section of a config (the only place that reads it)."""

from __future__ import annotations

from pathlib import Path

import ml_collections

from siamrn_jax.data.sampler import DatasetSpec


def build_datasets(data: ml_collections.ConfigDict) -> list[DatasetSpec]:
    """One ``DatasetSpec`` per name in ``data.use``.

    ``synthetic`` is the procedural source (no files). Official names (``VID``, ``GOT10K``, ...) read
    pysot crop511 folders (``kind='pysot'``: ``<root>/<dir>/crop511`` + ``<root>/<dir>/<anno>``) or TFDS
    array_record datasets built with ``python -m siamrn_jax.data.tfds_builders`` (``kind='tfds'``:
    ``<root>/<dir>``).
    """
    specs = []
    for name in data.use:
        if name == "synthetic":
            from siamrn_jax.data.synthetic import SyntheticConfig, SyntheticSource

            s = data.synthetic
            source = SyntheticSource(SyntheticConfig(num_videos=s.num_videos, frames=s.frames, seed=s.seed))
            specs.append(DatasetSpec(source, s.num_use, s.frame_range, hard_negatives=True))
            continue
        if name not in data:
            known = ["synthetic", *sorted(k for k in data if isinstance(data[k], ml_collections.ConfigDict))]
            raise ValueError(f"data.use: unknown dataset {name!r} (known: {known})")
        d = data[name]
        root = Path(data.root) / d.dir
        if d.kind == "pysot":
            from siamrn_jax.data.pysot import PysotSource

            source = PysotSource(name, root / "crop511", root / d.anno)
        elif d.kind == "tfds":
            from siamrn_jax.data.tfds_source import TfdsSource

            source = TfdsSource(root, name=name)
        else:
            raise ValueError(f"data.{name}.kind: {d.kind!r} (expected 'pysot' or 'tfds')")
        specs.append(DatasetSpec(source, d.num_use, d.frame_range, d.hard_negatives))
    return specs
