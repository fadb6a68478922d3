"""``python -m siamrn_jax.bench track --breakdown``: the per-frame budget table of one sequence."""

from __future__ import annotations

import re

import pytest

from siamrn_jax.cli.bench import main as bench_main


@pytest.mark.slow  # ~15 stage compilations of the demo model
def test_breakdown_of_the_demo_lists_every_stage_with_finite_times(capsys):
    assert bench_main(["track", "--breakdown", "--checkpoint", "demo_resnet", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("demo_resnet; preset demo_resnet;")  # the model's own preset (issue 27)
    for stage in (
        "search crop on the host",
        "uint8 crop to the device",
        "network: search branch",
        "network: BAN head",
        "network: PrRoIPool of 625 proposals",
        "network: relation detector, 625 proposals",
        "network: whole (one jitted call)",
        "jitted step (network + post-processing)",
        "outputs to the host",
        "Tracker.track end to end",
    ):
        row = next(line for line in out.splitlines() if line.startswith(f"| {stage}"))
        median = float(row.split("|")[3])
        assert median >= 0 and re.fullmatch(r"\s*\d+\.\d\s*", row.split("|")[3])
