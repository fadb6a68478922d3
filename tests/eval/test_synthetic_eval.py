"""Held-out synthetic evaluation tables: paired comparisons and saved rows (no tracking here)."""

from __future__ import annotations

import numpy as np
import pytest

from siamrn_jax.eval.synthetic import (
    Row,
    RowsError,
    comparisons,
    load_rows,
    paired,
    paired_markdown,
    save_rows,
)


def row(name, relation, aucs):
    aucs = tuple(float(a) for a in aucs)
    return Row(name, relation, float(np.mean(aucs)), 0.0, 0.0, 1.0, len(aucs), 100 * len(aucs), aucs)


def test_paired_difference_interval_and_counts():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.8, 200)
    a, b = row("m", True, base + 0.05), row("m", False, base)
    p = paired(a, b)
    assert p.delta == pytest.approx(0.05) and p.low == pytest.approx(0.05) and p.high == pytest.approx(0.05)
    assert (p.wins, p.losses) == (200, 0)
    # Noise around a zero mean: the interval straddles 0 and has roughly the normal-theory width.
    noise = rng.normal(0, 0.1, 200)
    p = paired(row("m", True, base + noise - noise.mean()), b)
    assert p.low < 0 < p.high
    assert p.high - p.low == pytest.approx(2 * 1.96 * noise.std() / np.sqrt(200), rel=0.15)


def test_comparisons_pair_rows_differing_in_one_factor():
    r = [row("a", True, [0.5]), row("a", False, [0.4]), row("b", True, [0.3]), row("b", False, [0.2])]
    labels = {(p.a.name, p.a.relation, p.b.name, p.b.relation) for p in comparisons(r)}
    assert labels == {
        ("a", True, "a", False),
        ("b", True, "b", False),
        ("a", True, "b", True),
        ("a", False, "b", False),
    }
    assert "| a, RD on − a, RD off | +0.100 |" in paired_markdown(comparisons(r)[:1])
    with pytest.raises(ValueError, match="same sequences"):
        paired(row("a", True, [0.5, 0.4]), row("b", True, [0.5]))


def test_rows_round_trip_and_bad_file(tmp_path):
    rows = [row("a", True, [0.5, 0.25]), row("a", False, [0.1, 0.2])]
    save_rows(rows, tmp_path / "r.json")
    assert load_rows(tmp_path / "r.json") == rows
    (tmp_path / "bad.json").write_text("[{}]")
    with pytest.raises(RowsError, match="bad.json: not a saved evaluation"):
        load_rows(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_bytes(b"\xff not text")
    with pytest.raises(RowsError, match="bad.json: corrupt JSON"):
        load_rows(tmp_path / "bad.json")
