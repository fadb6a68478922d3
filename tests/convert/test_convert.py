"""Conversion: official state dicts -> orbax checkpoints and back, strictly."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from flax import traverse_util

from siamrn_jax import checkpoint
from siamrn_jax.cli.convert import main as convert_main
from siamrn_jax.config import build_model, load_config
from siamrn_jax.convert.convert import flax_to_torch
from siamrn_jax.convert.mapping import torch_key_to_flax
from siamrn_jax.convert.torch_pickle import load_pth, save_pth

SMOKE = "configs/siamrn_r50.py:smoke"


@pytest.fixture(scope="module")
def smoke():
    """A smoke model, its seeded variables and their official-layout state dict."""
    model = build_model(load_config(SMOKE).model)
    variables = checkpoint.init_variables(model, seed=3)
    return model, variables, flax_to_torch(variables)


def run(argv, capsys):
    code = convert_main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def flat(variables):
    return {
        (c, *p): np.asarray(v)
        for c in ("params", "batch_stats")
        for p, v in traverse_util.flatten_dict(dict(variables[c])).items()
    }


def assert_same_variables(a, b):
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg="/".join(k))


def test_state_dict_names_follow_official_layout(smoke):
    _, variables, sd = smoke
    # Every BN has weight/bias/running_mean/running_var/num_batches_tracked; nothing else is invented.
    assert len(sd) == len(flat(variables)) + sum(k.endswith("num_batches_tracked") for k in sd)
    assert sd["backbone.layer2.0.downsample.0.weight"].ndim == 4
    assert sd["multi_det.global_det2.MLP.2.weight"].shape == (32, 32)
    assert sd["head.box4.loc.head.3.bias"].shape == (4,)
    assert all(torch_key_to_flax(k) is not None for k in sd)


def test_roundtrip_wrapped_prefixed_fp16(tmp_path, smoke, capsys):
    model, variables, sd = smoke
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}
    save_pth(wrapped, tmp_path / "m.pth")
    code, out, err = run([tmp_path / "m.pth", tmp_path / "ck", "--config", SMOKE], capsys)
    assert code == 0, err
    assert "(siamrn," in out
    _, loaded, meta = checkpoint.load(tmp_path / "ck")
    assert_same_variables(loaded, variables)
    assert meta["source"]["kind"] == "siamrn"
    # Back to .pth: every key and value of the source state dict, nothing more.
    code, _, err = run([tmp_path / "ck", tmp_path / "back.pth"], capsys)
    assert code == 0, err
    back = load_pth(tmp_path / "back.pth")
    assert back.keys() == sd.keys()
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k], err_msg=k)
    # Half-precision sources are accepted and cast.
    for dt in (np.float16, ml_dtypes.bfloat16):
        half = {k: v.astype(dt) if v.dtype == np.float32 else v for k, v in sd.items()}
        save_pth(half, tmp_path / f"h_{np.dtype(dt).name}.pth")
        dst = tmp_path / f"ck_{np.dtype(dt).name}"
        code, _, err = run([tmp_path / f"h_{np.dtype(dt).name}.pth", dst, "--config", SMOKE], capsys)
        assert code == 0, err
        got = flat(checkpoint.load(dst)[1])
        k = ("params", "backbone", "conv1", "kernel")
        assert got[k].dtype == np.float32
        np.testing.assert_allclose(got[k], flat(variables)[k], rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize(
    "mutation, expected",
    [
        ("remove", "1 missing [neck.downsample3.downsample.1.running_var]"),
        ("rename", "1 unexpected [neck.downsample3.downsample.1.running_varx]"),
        (
            "reshape",
            "1 mis-shaped [neck.downsample3.downsample.1.running_var: (31,) in file, model expects (32,)]",
        ),
    ],
)
def test_bad_state_dict_one_line_error(tmp_path, smoke, capsys, mutation, expected):
    sd = dict(smoke[2])
    key = "neck.downsample3.downsample.1.running_var"
    if mutation == "remove":
        del sd[key]
    elif mutation == "rename":
        sd[key + "x"] = sd.pop(key)
    else:
        sd[key] = sd[key][:-1]
    save_pth(sd, tmp_path / "bad.pth")
    code, out, err = run([tmp_path / "bad.pth", tmp_path / "ck", "--config", SMOKE], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "bad.pth" in err
    if mutation == "rename":  # a renamed key is both unexpected and leaves its target missing
        assert "1 missing [neck.downsample3.downsample.1.running_var]" in err
    else:
        assert ("missing" in err) == (mutation == "remove")  # a mis-shaped key is not also "missing"
    assert expected in err
    assert not (tmp_path / "ck").exists()


def test_siamban_checkpoint_gets_fresh_relation_detector(tmp_path, smoke, capsys):
    _, variables, sd = smoke
    save_pth({k: v for k, v in sd.items() if not k.startswith("multi_det.")}, tmp_path / "ban.pth")
    code, out, err = run([tmp_path / "ban.pth", tmp_path / "ck", "--config", SMOKE, "--seed", "7"], capsys)
    assert code == 0, err
    assert "(siamban," in out and "initialised fresh (seed 7): multi_det" in out
    loaded = flat(checkpoint.load(tmp_path / "ck")[1])
    ref = flat(variables)
    for k in ref:
        if k[1] != "multi_det":
            np.testing.assert_array_equal(loaded[k], ref[k])
    k = ("params", "multi_det", "global_det2", "fc", "kernel")
    assert not np.array_equal(loaded[k], ref[k])  # seed 7, not the source's seed 3


def test_backbone_only_file(tmp_path, smoke, capsys):
    _, variables, sd = smoke
    bb = {k.removeprefix("backbone."): v for k, v in sd.items() if k.startswith("backbone.")}
    bb["fc.weight"] = np.zeros((10, 512), np.float32)
    bb["fc.bias"] = np.zeros((10,), np.float32)
    save_pth({"state_dict": bb}, tmp_path / "resnet50.model")
    code, out, err = run([tmp_path / "resnet50.model", tmp_path / "ck", "--config", SMOKE], capsys)
    assert code == 0, err
    assert "(backbone," in out and "ignored: fc.bias, fc.weight" in out
    assert "initialised fresh (seed 0): head, multi_det, neck" in out
    loaded = flat(checkpoint.load(tmp_path / "ck")[1])
    for k, v in flat(variables).items():
        if k[1] == "backbone":
            np.testing.assert_array_equal(loaded[k], v)


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    code, _, err = run([tmp_path / "junk.pth", tmp_path / "ck"], capsys)
    assert code == 2 and err.count("\n") == 1 and "junk.pth" in err
    code, _, err = run([tmp_path / "missing.pth", tmp_path / "ck"], capsys)
    assert code == 2 and err.count("\n") == 1 and "missing.pth" in err
    (tmp_path / "notckpt").mkdir()
    code, _, err = run([tmp_path / "notckpt", tmp_path / "x.pth"], capsys)
    assert code == 2 and "no model.json" in err


def test_checkpoint_load_rejects_mismatched_tree(tmp_path, smoke):
    model, variables, _ = smoke
    checkpoint.save(tmp_path / "ck", model, variables)
    meta = (tmp_path / "ck" / "model.json").read_text().replace('"channels": 32', '"channels": 16')
    (tmp_path / "ck" / "model.json").write_text(meta)
    with pytest.raises(checkpoint.CheckpointError, match="mis-shaped"):
        checkpoint.load(tmp_path / "ck")
    with pytest.raises(checkpoint.CheckpointError, match="already exists"):
        checkpoint.save(tmp_path / "ck", model, variables)


@pytest.mark.slow
def test_full_size_reverse_matches_official_keys(tmp_path, parity_sd, capsys):
    """Official 541-key state dict -> orbax -> .pth gives back exactly the official keys and values."""
    save_pth(parity_sd, tmp_path / "official.pth")
    assert run([tmp_path / "official.pth", tmp_path / "ck"], capsys)[0] == 0
    assert run([tmp_path / "ck", tmp_path / "back.pth"], capsys)[0] == 0
    back = load_pth(tmp_path / "back.pth")
    assert len(back) == 541 and back.keys() == parity_sd.keys()
    for k, v in parity_sd.items():
        np.testing.assert_array_equal(back[k], v, err_msg=k)
