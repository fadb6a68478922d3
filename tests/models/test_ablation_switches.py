"""Ablation switches of SiamRN (paper Table 3): BAN levels, relation-detector levels and heads.

Each switch must build exactly the modules it uses (parameter tree, converters), leave the paper model
untouched, give one-line config errors, keep the fused evaluation order equal to the reference one, and
track. All on the smoke architecture.
"""

from __future__ import annotations

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from siamrn_jax import checkpoint
from siamrn_jax.cli import convert as convert_cli
from siamrn_jax.config import ConfigError, build_model, load_config
from siamrn_jax.convert.convert import ConversionError, flax_to_torch, torch_to_flax
from siamrn_jax.models.relation_detector import HEADS, MultiDetector
from siamrn_jax.models.siamrn import SiamRN
from siamrn_jax.tracking.params import TrackerParams
from siamrn_jax.tracking.runner import Tracker, run_sequence
from tests.tracking.test_tracker import synthetic_sequence

LEVEL_SUBSETS = [c for n in (1, 2, 3) for c in itertools.combinations((2, 3, 4), n)]
HEAD_SUBSETS = [c for n in (1, 2, 3) for c in itertools.combinations(HEADS, n)]
# The model.json fields of the paper model before the switches existed (its file must not change).
PAPER_FIELDS = [
    "backbone_blocks",
    "backbone_widths",
    "channels",
    "dtype",
    "exemplar_size",
    "instance_size",
    "levels",
    "roi_size",
    "stem_width",
    "stride",
    "template_crop",
]


def smoke(**switches) -> SiamRN:
    return build_model({**load_config("smoke").model.to_dict(), **switches})


def tree(model) -> dict[str, tuple[int, ...]]:
    v = checkpoint.abstract_variables(model)
    return {
        f"{c}/{k}": tuple(a.shape)
        for c in ("params", "batch_stats")
        for k, a in traverse_util.flatten_dict(dict(v[c]), sep="/").items()
    }


def modules(t: dict, prefix: str) -> set[str]:
    """Second-level module names under ``params/<prefix>/``."""
    return {k.split("/")[2] for k in t if k.startswith(f"params/{prefix}/")}


def test_defaults_leave_the_paper_model_unchanged():
    """Explicit defaults = no switch: the same tree; model.json names the fields it always did."""
    assert tree(smoke()) == tree(smoke(rd_levels=(2, 3, 4), rd_heads=HEADS))
    assert sorted(checkpoint.model_fields(SiamRN())) == PAPER_FIELDS
    assert sorted(checkpoint.model_fields(smoke(rd_levels=(2, 3, 4)))) == PAPER_FIELDS
    t = tree(smoke())
    assert modules(t, "multi_det") == {
        f"{k}{lv}" for k in ("global_det", "local_det", "patch_det", "non_local") for lv in (2, 3, 4)
    } | {"matching_weight"}


@pytest.mark.parametrize("levels", LEVEL_SUBSETS, ids=str)
def test_levels_build_only_what_they_use(levels):
    """BAN levels: backbone stages up to the deepest, one neck / head / RD level per entry."""
    t = tree(smoke(levels=levels))
    stages = {f"layer{s}" for s in range(1, max(levels) + 1)}
    assert modules(t, "backbone") == {"conv1", "bn1", *stages}
    assert modules(t, "neck") == {f"downsample{lv}" for lv in levels}
    assert modules(t, "head") - {"cls_weight", "loc_weight", "loc_scale"} == {f"box{lv}" for lv in levels}
    assert t["params/head/cls_weight"] == (len(levels),)
    assert t["params/multi_det/matching_weight"] == (len(levels),)
    assert {m[-1] for m in modules(t, "multi_det") - {"matching_weight"}} == {str(lv) for lv in levels}


@pytest.mark.parametrize(
    ("rd_levels", "rd_heads"),
    [((3,), HEADS), ((2, 4), ("local",)), ((4,), ("global", "patch")), ((2, 3, 4), ("patch",))],
    ids=str,
)
def test_relation_switches_build_only_what_they_use(rd_levels, rd_heads):
    t = tree(smoke(rd_levels=rd_levels, rd_heads=rd_heads))
    kinds = {"global": "global_det", "local": "local_det", "patch": "patch_det"}
    want = {f"{kinds[h]}{lv}" for h in rd_heads for lv in rd_levels}
    if "global" in rd_heads or "patch" in rd_heads:  # the local head reads the raw RoIs, not the block
        want |= {f"non_local{lv}" for lv in rd_levels}
    assert modules(t, "multi_det") == want | {"matching_weight"}
    assert t["params/multi_det/matching_weight"] == (len(rd_levels),)
    assert modules(t, "neck") == {"downsample2", "downsample3", "downsample4"}  # the BAN head keeps all


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        ({"levels": ()}, "model.levels=(): expected a non-empty increasing subset of (2, 3, 4)"),
        ({"levels": (1, 2)}, "model.levels=(1, 2)"),
        ({"levels": (4, 3)}, "model.levels=(4, 3)"),
        ({"rd_levels": ()}, "model.rd_levels=()"),
        (
            {"levels": (2, 3), "rd_levels": (4,)},
            "model.rd_levels=(4,): expected a non-empty increasing subset",
        ),
        ({"rd_heads": ()}, "model.rd_heads=()"),
        ({"rd_heads": ("global", "mlp")}, "model.rd_heads=('global', 'mlp')"),
        ({"rd_heads": ("patch", "local")}, "in that order"),
    ],
    ids=str,
)
def test_invalid_switches_are_one_line_config_errors(switches, message):
    with pytest.raises(ConfigError) as e:
        smoke(**switches)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_switch_in_model_json_is_a_checkpoint_error(tmp_path):
    model = smoke(rd_heads=("local",))
    checkpoint.save(tmp_path / "ck", model, checkpoint.init_variables(model))
    meta = json.loads((tmp_path / "ck" / "model.json").read_text())
    assert meta["model"]["rd_heads"] == ["local"] and "rd_levels" not in meta["model"]
    meta["model"]["rd_heads"] = ["nonsense"]
    (tmp_path / "ck" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match="rd_heads"):
        checkpoint.load(tmp_path / "ck")


def _perturbed(variables, seed=0):
    """Random weights with a non-trivial non-local output (its BN scale starts at 0) and statistics."""
    leaves, treedef = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [a + 0.05 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys, strict=True)]
    v = jax.tree.unflatten(treedef, noisy)
    if "batch_stats" in v:  # the local head alone has no BatchNorm
        v["batch_stats"] = jax.tree.map(lambda a: jnp.abs(a) + 0.5, v["batch_stats"])  # positive variances
    return v


@pytest.mark.parametrize("rd_heads", HEAD_SUBSETS, ids="+".join)
def test_fused_order_equals_reference_for_every_head_subset(rd_heads):
    """``MultiDetector`` as ``SiamRN`` builds it (smoke width, two levels): fused == reference."""
    model = smoke(rd_levels=(3, 4), rd_heads=rd_heads)
    det = MultiDetector(model.channels, model.relation_levels, heads=tuple(model.rd_heads))
    ks, kr = jax.random.split(jax.random.key(1))
    support = tuple(jax.random.normal(k, (2, 1, 7, 7, model.channels)) for k in jax.random.split(ks, 2))
    rois = tuple(jax.random.normal(k, (2, 5, 7, 7, model.channels)) for k in jax.random.split(kr, 2))
    wide = tuple(jnp.broadcast_to(s, r.shape) for s, r in zip(support, rois, strict=True))
    v = _perturbed(det.init(jax.random.key(0), wide, rois))
    ref = jax.jit(det.apply)(v, wide, rois)
    fused = jax.jit(lambda v, s, r: det.apply(v, None, r, cache=det.apply(v, s, method="prepare")))(
        v, support, rois
    )
    assert ref.shape == fused.shape == (2, 5, 2)
    assert float(jnp.abs(ref).max()) > 1e-3  # the comparison is not between zeros
    np.testing.assert_allclose(np.asarray(fused), np.asarray(ref), rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("rd_heads", HEAD_SUBSETS, ids="+".join)
def test_train_mode_support_terms_per_distinct_support(rd_heads):
    """Training's relation detector (``train.forward``): support terms prepared once per distinct support
    ([N, 1] or [N, 2] picked per pair) give the logits and BN statistics of the per-pair supports (the
    official layout), in train mode, forward and gradient."""
    model = smoke(rd_levels=(3, 4), rd_heads=rd_heads)
    det = MultiDetector(model.channels, model.relation_levels, heads=tuple(model.rd_heads))
    c = model.channels
    ks, kr, ki = jax.random.split(jax.random.key(2), 3)
    two = tuple(jax.random.normal(k, (2, 2, 7, 7, c)) for k in jax.random.split(ks, 2))
    rois = tuple(jax.random.normal(k, (2, 6, 7, 7, c)) for k in jax.random.split(kr, 2))
    use_neg = jax.random.bernoulli(ki, 0.5, (2, 6))
    per_pair = tuple(jnp.where(use_neg[..., None, None, None], s[:, 1:], s[:, :1]) for s in two)
    v = _perturbed(det.init(jax.random.key(0), per_pair, rois))

    def ours(v, rois, supports, pick):
        cache = jax.tree.map(pick, det.apply(v, supports, method="prepare"))
        return det.apply(v, None, rois, True, cache, mutable=["batch_stats"])

    def picked(x):
        return jnp.where(use_neg.reshape(use_neg.shape + (1,) * (x.ndim - 2)), x[:, 1:], x[:, :1])

    cases = [(per_pair, two, picked)]
    template_only = tuple(s[:, :1] for s in two)  # one_way: every pair against the template
    cases.append((tuple(jnp.broadcast_to(t, r.shape) for t, r in zip(template_only, rois, strict=True)),
                  template_only, lambda x: x))  # fmt: skip
    for wide, supports, pick in cases:
        ref, ref_stats = det.apply(v, wide, rois, True, mutable=["batch_stats"])
        got, got_stats = ours(v, rois, supports, pick)
        assert float(jnp.abs(ref).max()) > 1e-3
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-6)
        for a, b in zip(jax.tree.leaves(got_stats), jax.tree.leaves(ref_stats), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)

        def loss_ref(p, wide=wide):
            return jnp.sum(det.apply({**v, "params": p}, wide, rois, True, mutable=["batch_stats"])[0] ** 2)

        def loss_got(p, supports=supports, pick=pick):
            return jnp.sum(ours({**v, "params": p}, rois, supports, pick)[0] ** 2)

        g_ref, g_got = jax.grad(loss_ref)(v["params"]), jax.grad(loss_got)(v["params"])
        # Scaled by the largest gradient, as the official-step tolerances: some keys are 0 up to rounding.
        scale = max(float(jnp.abs(b).max()) for b in jax.tree.leaves(g_ref))
        for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_ref), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6 * scale)


ABLATED = {"levels": (3, 4), "rd_levels": (4,), "rd_heads": ("global", "patch")}


def test_conversion_round_trip_of_an_ablated_tree(tmp_path, capsys):
    """orbax -> .pth -> orbax, strict both ways, through the CLI; the .pth has exactly the built modules."""
    model = smoke(**ABLATED)
    variables = checkpoint.init_variables(model, seed=3)
    checkpoint.save(tmp_path / "ck", model, variables)
    assert convert_cli.main([str(tmp_path / "ck"), str(tmp_path / "ab.pth")]) == 0
    sd = flax_to_torch(variables)
    assert not any(k.startswith(("neck.downsample2", "head.box2")) for k in sd)
    assert {k.split(".")[1] for k in sd if k.startswith("multi_det.")} == {
        "global_det4",
        "patch_det4",
        "non_local4",
        "matching_weight",
    }
    assert "backbone.layer4.0.conv1.weight" in sd and "backbone.layer1.0.conv1.weight" in sd
    cfg = tmp_path / "ablated.py"
    cfg.write_text(
        "from siamrn_jax.configs.siamrn_r50 import get_config as paper\n\n\n"
        "def get_config():\n    c = paper('smoke')\n"
        + "".join(f"    c.model.{k} = {v!r}\n" for k, v in ABLATED.items())
        + "    return c\n"
    )
    argv = [str(tmp_path / "ab.pth"), str(tmp_path / "back"), "--config", str(cfg)]
    assert convert_cli.main(argv) == 0, capsys.readouterr().err
    back_model, back, _ = checkpoint.load(tmp_path / "back", inference=False)
    assert back_model == model
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_strict_conversion_between_trees():
    """A full state dict does not fit an ablated model (and back): the extra / missing keys are named."""
    full, ablated = smoke(), smoke(**ABLATED)
    sd_full = flax_to_torch(checkpoint.init_variables(full))
    with pytest.raises(ConversionError, match=r"unexpected \[.*(box2|downsample2|global_det2)"):
        torch_to_flax(sd_full, checkpoint.abstract_variables(ablated))
    sd_ablated = flax_to_torch(checkpoint.init_variables(ablated))
    with pytest.raises(ConversionError, match="missing"):
        torch_to_flax(sd_ablated, checkpoint.abstract_variables(full))


def test_backbone_file_into_fewer_levels_ignores_the_unbuilt_stages():
    """pysot's resnet50.model layout (no prefix) into a C3-only model: layer3/4 reported as ignored."""

    def zeros(model):
        return jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), checkpoint.abstract_variables(model))

    full = jax.tree.map(
        lambda a: np.random.default_rng(0).normal(size=a.shape).astype(a.dtype), zeros(smoke())
    )
    backbone_sd = {
        k.removeprefix("backbone."): v for k, v in flax_to_torch(full).items() if k.startswith("backbone.")
    }
    c3 = smoke(levels=(2,))
    variables, report = torch_to_flax(backbone_sd, checkpoint.abstract_variables(c3), lambda: zeros(c3))
    assert report["kind"] == "backbone"
    assert [x.split(".")[0] for x in report["ignored"]] == ["layer3", "layer4"]
    np.testing.assert_array_equal(
        variables["params"]["backbone"]["layer2"]["0"]["conv1"]["kernel"],
        np.asarray(full["params"]["backbone"]["layer2"]["0"]["conv1"]["kernel"]),
    )


@pytest.mark.slow  # about 20 s each on 2 CPU cores (two tracker compilations)
@pytest.mark.parametrize(
    "switches",
    [ABLATED, {"levels": (2,), "rd_heads": ("local",)}],
    ids=["C4C5-rdC5-global+patch", "C3-local"],
)
def test_tracker_runs_on_an_ablated_model(tmp_path, switches):
    """Save / load keeps the switches (model.json) and both tracker paths (official and fused) run."""
    model = smoke(**switches)
    checkpoint.save(tmp_path / "ck", model, checkpoint.init_variables(model, seed=2, calibrate=10))
    loaded, variables, meta = checkpoint.load(tmp_path / "ck")
    assert loaded == model and meta["model"]["rd_heads"] == list(model.rd_heads)
    frames, box = synthetic_sequence(4)
    for fast in (False, True):
        params = TrackerParams.for_model(loaded, "otb", precompute_support=fast, reuse_corr=fast)
        r = run_sequence(Tracker(loaded, variables, params), frames, box)
        assert r.boxes.shape == (4, 4) and np.isfinite(r.boxes).all()
