"""The architecture interface: every registered architecture satisfies ``Architecture`` (at run time and
stage by stage, parameter names included), and the registry's lookups give each one its own builder,
tracker presets, ``.pth`` mapping and add-on modules. Shape-only (``eval_shape``): no compilation."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
from flax import traverse_util

from siamrn_jax import checkpoint
from siamrn_jax.config import build_model
from siamrn_jax.convert import mapping
from siamrn_jax.convert.convert import default_model, torch_prefixes
from siamrn_jax.models import registry
from siamrn_jax.models.interface import LAYOUTS, Architecture
from siamrn_jax.models.nanotrack import NanoTrack
from siamrn_jax.models.siamrn import SiamRN
from siamrn_jax.tracking.params import PRESETS, own_preset

NAMES = [s.name for s in registry.SPECS]
STAGES = [
    name
    for name, member in vars(Architecture).items()
    if callable(member) and not name.startswith("_") and name not in ("init", "apply", "clone")
]


def test_every_architecture_is_registered_once_default_first():
    assert NAMES == ["resnet50_atrous", "nanotrack_v2", "nanotrack_v3"]
    assert registry.DEFAULT_ARCH == "resnet50_atrous"
    assert {
        "resnet50_atrous": SiamRN,
        "nanotrack_v2": NanoTrack,
        "nanotrack_v3": NanoTrack,
    } == registry.ARCHITECTURES
    with pytest.raises(KeyError, match="unknown model arch 'mobilenet'"):
        registry.spec("mobilenet")


@pytest.mark.parametrize("arch", NAMES)
def test_each_architecture_satisfies_the_protocol(arch):
    spec = registry.spec(arch)
    model = spec.build()
    assert isinstance(model, Architecture) and isinstance(model, spec.model_class)
    assert model.arch == arch and build_model({"arch": arch}) == model
    assert own_preset(model) in spec.presets  # SiamRN "otb", NanoTrack None = its official config's
    assert model.score_size > 0 and model.template_crop > 0 and len(tuple(model.levels)) >= 1
    assert set(STAGES) >= {"encode_template", "encode_search", "ban_head", "relate", "track_frame"}
    for stage in STAGES:  # the same parameters, in the same order, as the protocol says
        want = list(inspect.signature(getattr(Architecture, stage)).parameters)
        got = list(inspect.signature(getattr(spec.model_class, stage)).parameters)
        assert got == want, (arch, stage)


def test_a_module_without_the_stages_is_no_architecture():
    assert not isinstance(object(), Architecture)
    assert not isinstance(registry.spec("nanotrack_v2").torch, Architecture)


def test_presets_are_registered_beside_their_models():
    assert set(registry.spec("resnet50_atrous").presets) == {"vot", "otb", "demo_resnet"}  # issue 27
    assert set(registry.spec("nanotrack_v2").presets) == {"nanotrack_v2", "nanotrack_v2_rgb", "demo"}
    assert set(registry.spec("nanotrack_v3").presets) == {"nanotrack_v3"}
    assert set(PRESETS) == {
        "vot",
        "otb",
        "demo_resnet",
        "demo",
        "nanotrack_v2",
        "nanotrack_v2_rgb",
        "nanotrack_v3",
    }
    assert PRESETS["nanotrack_v2_rgb"] == PRESETS["nanotrack_v2"].replace(swap_rb=True)
    assert (PRESETS["otb"].penalty_k, PRESETS["nanotrack_v3"].lr) == (0.020530504470126613, 0.348)


def test_state_dicts_find_their_architecture_by_their_keys():
    a = np.zeros(1, np.float32)
    cases = {
        "multi_det.matching_weight": ("siamrn", "resnet50_atrous"),
        "head.box2.cls.head.3.bias": ("siamban", "resnet50_atrous"),
        "layer1.0.conv1.weight": ("backbone", "resnet50_atrous"),
        "ban_head.cls_pred.0.bias": ("nanotrack", "nanotrack_v2"),
        "backbone.features.9.conv.0.weight": ("siamban", "resnet50_atrous"),
    }
    for key, (kind, arch) in cases.items():
        sd = {key: a}
        mapping_, got = registry.torch_source(sd)
        assert got == kind and mapping_ is registry.spec(arch).torch, key
    v3 = {"ban_head.cls_pred.0.bias": a, "backbone.features.9.conv.0.weight": a}
    assert registry.torch_source(v3)[0].default_arch(v3) == "nanotrack_v3"
    assert default_model(v3) == NanoTrack("nanotrack_v3") and default_model({"fc.weight": a}) == SiamRN()
    assert (
        torch_prefixes(NanoTrack("nanotrack_v3")) == {"head": "ban_head"} and torch_prefixes(SiamRN()) == {}
    )


def test_the_converter_table_is_the_union_of_the_registered_mappings():
    rules = [(p, k) for s in registry.SPECS for p, k in s.torch.modules]
    assert {k for _, k in rules} <= set(LAYOUTS)
    assert [p for p, _ in mapping.MODULE_KINDS] == list(dict.fromkeys(p for p, _ in rules))


@pytest.mark.parametrize("config", [{"arch": "resnet50_atrous"}, {"arch": "nanotrack_v3", "relation": True}])
def test_each_mapping_names_every_variable_of_its_model(config):
    """Every leaf of the model has an official key under its own architecture's rules, and back."""
    model = build_model(config)
    own = [(p, mapping.KINDS[k]) for p, k in registry.spec(model.arch).torch.modules]
    variables = checkpoint.abstract_variables(model)
    n = 0
    for c in ("params", "batch_stats"):
        for path in traverse_util.flatten_dict(dict(variables[c])):
            key, _ = mapping.flax_path_to_torch(c, path)
            module = (
                key if path[-1] not in ("kernel", "bias", "scale", "mean", "var") else key.rpartition(".")[0]
            )
            assert any(re.fullmatch(p, module) for p, _ in own), key
            got = mapping.torch_key_to_flax(key)
            assert got is not None and (got[0], got[1]) == (c, path), key
            n += 1
    assert n > 50


def test_addon_modules_are_registered_per_architecture():
    assert registry.spec("resnet50_atrous").addon_modules == ()
    assert registry.spec("nanotrack_v2").addon_modules == ("multi_det", "rd_neck")
    assert registry.spec("resnet50_atrous").frozen_bn_stats is not None
    assert registry.spec("nanotrack_v3").frozen_bn_stats is None
