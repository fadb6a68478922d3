"""Former home of the frame sources, kept as a public alias of :mod:`siamrn_jax.io.sources`.

The sources moved to ``siamrn_jax.io`` in the house move (#26); scripts outside this repository import
them from here (``../shared/tools/realtime_bench/speed.py`` among them), so this path stays importable.
New code imports ``siamrn_jax.io.sources``.
"""

from siamrn_jax.io.sources import (  # noqa: F401  (re-exported names)
    CameraSource,
    FrameSource,
    ImageFolder,
    InputError,
    SequenceFolder,
    VideoSource,
    open_input,
    read_groundtruth,
    read_sequence_folder,
)
