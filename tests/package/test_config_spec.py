"""How ``--config`` / ``--random-weights`` specs resolve: one rule, in ``config.resolve_config_spec``."""

from __future__ import annotations

from pathlib import Path

import pytest

from siamrn_jax.config import PACKAGED_CONFIG, ConfigError, load_config, resolve_config_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("smoke", f"{PACKAGED_CONFIG}:smoke"),
        ("configs/siamrn_r50.py:vot", f"{PACKAGED_CONFIG}:vot"),  # away from a checkout
        ("configs/siamrn_r50.py", str(PACKAGED_CONFIG)),
        ("my/exp.py:smoke", "my/exp.py:smoke"),  # any other path: as given (and its error, if missing)
        ("exp.py", "exp.py"),
    ],
)
def test_specs_resolve_away_from_a_checkout(tmp_path, monkeypatch, spec, expected):
    monkeypatch.chdir(tmp_path)
    assert resolve_config_spec(spec) == expected


def test_checkout_path_is_kept_where_it_exists(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert resolve_config_spec("configs/siamrn_r50.py:smoke") == "configs/siamrn_r50.py:smoke"


def test_checkout_alias_and_packaged_config_agree(tmp_path, monkeypatch):
    here = load_config(f"{ROOT}/configs/siamrn_r50.py:smoke")
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/siamrn_r50.py:smoke").to_dict() == here.to_dict()
    assert load_config("smoke").to_dict() == here.to_dict()
    with pytest.raises(ConfigError, match="my/exp.py: config file not found"):
        load_config("my/exp.py:smoke")
