"""The long fuzz runs are opt-in: unless the ``-m`` expression names ``fuzz`` (``pytest -m fuzz``), the
tests marked ``fuzz`` are deselected, so the README's and CI's ``pytest -n 2 -m "not heavy"`` runs only
their bounded twins (``tests/fuzz/fuzzing.py``)."""

from __future__ import annotations


def pytest_collection_modifyitems(config, items):
    if "fuzz" in (config.getoption("markexpr") or ""):
        return
    long_runs = [item for item in items if item.get_closest_marker("fuzz")]
    if long_runs:
        config.hook.pytest_deselected(items=long_runs)
        items[:] = [item for item in items if not item.get_closest_marker("fuzz")]
