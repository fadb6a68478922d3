"""Custom-gradient operations inside ``shard_map``: parameters marked varying like their input."""

from __future__ import annotations

import jax


def varying_like(x: jax.Array, *arrays: jax.Array) -> tuple[jax.Array, ...]:
    """``arrays`` marked varying over the mesh axes that ``x`` varies over and they do not.

    Why: inside ``shard_map`` a replicated parameter meeting a per-device batch is implicitly marked
    varying by JAX's own operations, whose transpose then reduces its gradient over those axes. A
    ``custom_vjp`` sees no such mark and must return cotangents of its inputs' exact types, so the mark is
    made before the call, and its transpose does the reduction. Outside ``shard_map`` nothing varies and
    the arrays come back unchanged."""
    varying = jax.typeof(x).manual_axis_type.varying
    out = []
    for a in arrays:
        extra = tuple(varying - jax.typeof(a).manual_axis_type.varying)
        out.append(jax.lax.pcast(a, extra, to="varying") if extra else a)
    return tuple(out)
