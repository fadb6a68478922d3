"""Experiment config files (``--config FILE[:variant]``, Python) and ``--set KEY=VALUE`` overrides, fuzzed:
a config or ``ConfigError`` naming the file; an override applied or rejected with ``AblateError`` (or the
``ArgumentTypeError`` argparse turns into its usage line)."""

from __future__ import annotations

import argparse

import ml_collections
import numpy as np
from hypothesis import strategies as st

from siamrn_jax.cli.ablate import parse_set
from siamrn_jax.cli.args import UsageError
from siamrn_jax.cli.track import parse_box
from siamrn_jax.config import load_config
from siamrn_jax.train.ablate import AblateError, override
from tests.fuzz.fuzzing import Mutation, outcome, scratch, text_mutations, twin, within

SEED = """import ml_collections


def get_config(variant="smoke"):
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict({"channels": 32, "levels": (2, 3, 4)})
    c.train = ml_collections.ConfigDict({"epochs": 1, "lr": 0.01, "strategy": "contrastive"})
    if variant not in ("smoke", "vot"):
        raise ValueError(f"unknown variant {variant}")
    return c
"""
VARIANTS = st.sampled_from(["", "smoke", "vot", "nope", "a:b"])


def check_config_file(m: Mutation, variant: str) -> None:
    with scratch() as d:
        path = d / "exp.py"
        path.write_bytes(m(SEED.encode()))
        spec = f"{path}:{variant}" if variant else str(path)
        got = outcome(lambda: load_config(spec), [path])
        assert got is None or "train" in got or got is not None


test_config_file, test_config_file_long = twin(text_mutations(SEED), VARIANTS)(check_config_file)

KEYS = st.sampled_from(
    ["train.epochs", "train.lr", "train.strategy", "model.levels", "model", "x.y", "", "a..b"]
)
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["3", "(3,)", "[1, 2]", "{[]: 1}", "'one_way'", "1e999", "-0", "None", "((((", "1+2j"]),
)


def _base() -> ml_collections.ConfigDict:
    namespace: dict = {}
    exec(compile(SEED, "seed.py", "exec"), namespace)  # the seed config file's own get_config
    return namespace["get_config"]()


def check_set_override(key: str, value: str, sep: str) -> None:
    base = _base()
    with within():
        try:
            k, v = parse_set(f"{key}{sep}{value}")
        except argparse.ArgumentTypeError:
            return
        try:
            override(base, k, v)
        except AblateError as e:
            assert k in str(e)


test_set_override, test_set_override_long = twin(KEYS, VALUES, st.sampled_from(["=", ":", ""]))(
    check_set_override
)


def check_init_box(text: str) -> None:
    """``--init x,y,w,h``: four finite numbers or ``UsageError`` quoting the value."""
    try:
        with within():
            box = parse_box(text)
    except UsageError as e:
        assert repr(text) in str(e)
        return
    assert box.shape == (4,) and np.isfinite(box).all()


BOX_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.sampled_from(["1", "-2.5", "nan", "inf", "1e999", "0x10", "\u0661", ",", " ", "\t", "_"]),
        max_size=12,
    ).map("".join),
)
test_init_box, test_init_box_long = twin(BOX_TEXT)(check_init_box)
