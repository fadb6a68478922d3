"""Tests of the torch-free ``.pth`` reader/writer, cross-checked against torch.save/torch.load if present."""

import collections
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from siamrn_jax.convert.torch_pickle import PthFormatError, load_pth, save_pth

NP_DTYPES = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64, np.int64, np.int32, np.uint8, np.bool_]


def _torch_checkpoint(torch):
    """A pysot-style checkpoint with every tensor layout the reader must undo."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    conv = torch.randn(8, 3, 3, 3, generator=g)
    state_dict = collections.OrderedDict(
        [
            ("backbone.conv1.weight", conv),
            ("backbone.bn1.running_mean", torch.randn(8, generator=g).half()),
            ("backbone.bn1.running_var", torch.randn(8, generator=g).bfloat16()),
            ("backbone.bn1.num_batches_tracked", torch.tensor(12345678901, dtype=torch.int64)),
            ("head.fc.weight", base.t()),  # non-contiguous
            ("head.view_a", base[1:3, 2:]),  # two views of one storage, with offsets
            ("head.view_b", base.view(-1)[5:17:3]),
            ("head.mask", torch.tensor([[True, False], [False, True]])),
            ("head.idx", torch.arange(-3, 3, dtype=torch.int32)),
            ("head.param", torch.nn.Parameter(torch.randn(2, 5, generator=g))),
            ("head.empty", torch.zeros(0, 3)),
        ]
    )
    optimizer = {
        "state": {0: {"momentum_buffer": torch.randn(8, 3, 3, 3, generator=g)}},
        "param_groups": [{"lr": 0.005, "momentum": 0.9, "params": [0, 1], "nesterov": False}],
    }
    meta = {"dtype": torch.bfloat16, "size": torch.Size([2, 3]), "tags": ("siamrn", None, 1.5), "ids": {3, 1}}
    return {"epoch": 19, "state_dict": state_dict, "optimizer": optimizer, "meta": meta}


def _assert_matches_torch(ours, ref, torch, contiguous=True):
    """Same structure and types; tensors bit-equal with the matching numpy dtype (and C-contiguous)."""
    if isinstance(ref, torch.Tensor):
        assert isinstance(ours, np.ndarray) and (ours.flags.c_contiguous or not contiguous)
        torch_dtypes = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32]
        expected = np.dtype(NP_DTYPES[[*torch_dtypes, torch.uint8, torch.bool].index(ref.dtype)])
        assert ours.dtype == expected and ours.shape == tuple(ref.shape)
        assert ours.tobytes() == ref.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    elif isinstance(ref, dict):
        assert type(ours) is type(ref) and list(ours) == list(ref)
        for key in ref:
            _assert_matches_torch(ours[key], ref[key], torch, contiguous)
    elif isinstance(ref, list | tuple):
        assert type(ours) is (tuple if isinstance(ref, torch.Size) else type(ref)) and len(ours) == len(ref)
        for a, b in zip(ours, ref, strict=True):
            _assert_matches_torch(a, b, torch, contiguous)
    elif isinstance(ref, torch.dtype):
        assert ours == np.dtype(ml_dtypes.bfloat16) and ref == torch.bfloat16
    else:
        assert type(ours) is type(ref) and ours == ref


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_load_pth_matches_torch_save(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    ckpt = _torch_checkpoint(torch)
    path = tmp_path / "model.pth"
    torch.save(ckpt, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_pth(path)
    _assert_matches_torch(loaded, ckpt, torch)
    assert loaded["state_dict"]["backbone.bn1.num_batches_tracked"].shape == ()
    np.testing.assert_array_equal(
        loaded["state_dict"]["head.fc.weight"], ckpt["state_dict"]["head.fc.weight"]
    )


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_load_pth_tensor_saved_directly(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    tensor = base.permute(2, 0, 1)[1:, :, ::2]  # offset, permuted and strided
    torch.save(tensor, tmp_path / "t.pth", _use_new_zipfile_serialization=zip_format)
    np.testing.assert_array_equal(load_pth(tmp_path / "t.pth"), tensor.numpy())


def test_save_pth_read_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**16, size=(3, 4, 6), dtype=np.uint16)  # any bit pattern, NaN payloads included
    state = collections.OrderedDict(
        [
            ("z.f32", bits.view(np.uint32)[..., :2].copy().view(np.float32)),
            ("a.f16", bits.view(np.float16)),
            ("m.bf16", bits.view(ml_dtypes.bfloat16)),
            ("b.i64", rng.integers(-(2**62), 2**62, size=(7,))),
            ("c.i32", rng.integers(-(2**31), 2**31, size=(2, 1, 3), dtype=np.int32)),
            ("d.u8", rng.integers(0, 256, size=(4,), dtype=np.uint8)),
            ("e.bool", rng.random((3, 3)) > 0.5),
            ("f.scalar", np.array(7, dtype=np.int64)),
            ("g.transposed", rng.standard_normal((3, 5), dtype=np.float32).T),
        ]
    )
    ckpt = {"epoch": 19, "state_dict": state, "optimizer": {"param_groups": [{"lr": 1e-3, "params": [0]}]}}
    save_pth(ckpt, tmp_path / "out.pth")
    for weights_only in (True, False):
        ref = torch.load(tmp_path / "out.pth", weights_only=weights_only)
        assert list(ref) == ["epoch", "state_dict", "optimizer"] and list(ref["state_dict"]) == list(state)
        assert (
            isinstance(ref["state_dict"], collections.OrderedDict) and ref["optimizer"] == ckpt["optimizer"]
        )
        _assert_matches_torch(ckpt["state_dict"], ref["state_dict"], torch, contiguous=False)
        assert ref["state_dict"]["g.transposed"].is_contiguous()
    mapped = torch.load(tmp_path / "out.pth", weights_only=True, mmap=True)  # storages used in place
    _assert_matches_torch(ckpt["state_dict"], mapped["state_dict"], torch, contiguous=False)


def test_save_pth_round_trip_without_torch(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {np.dtype(d).name: np.frombuffer(rng.bytes(6 * np.dtype(d).itemsize), d).reshape(2, 3)
              for d in NP_DTYPES[:-1]}  # fmt: skip
    arrays["bool"] = rng.random((2, 3)) > 0.5
    obj = {
        "z": collections.OrderedDict(arrays),
        "a": [np.zeros((0, 4), np.float32), np.array(3.5, np.float16), (None, True, False)],
        "ints": (0, 255, 256, -1, 2**31, -(2**40), 2**100, np.int64(-5)),
        "text": "Siamese \u2192 relation \U0001f600",
        "float": 1e-300,
    }
    save_pth(obj, tmp_path / "rt.pth")
    back = load_pth(tmp_path / "rt.pth")
    assert list(back) == list(obj) and type(back) is dict and type(back["z"]) is collections.OrderedDict
    assert list(back["z"]) == list(arrays)
    for key, arr in arrays.items():
        assert back["z"][key].dtype == arr.dtype and back["z"][key].tobytes() == arr.tobytes()
    assert back["a"][0].shape == (0, 4) and back["a"][1].shape == () and back["a"][1] == np.float16(3.5)
    assert back["a"][2] == (None, True, False)
    assert back["ints"] == (0, 255, 256, -1, 2**31, -(2**40), 2**100, -5)
    assert back["text"] == obj["text"] and back["float"] == 1e-300
    with zipfile.ZipFile(tmp_path / "rt.pth") as zf, open(tmp_path / "rt.pth", "rb") as f:
        for info in zf.infolist():  # every record's data starts on a 64-byte boundary, as torch writes it
            f.seek(info.header_offset + 26)
            name_len, extra_len = struct.unpack("<HH", f.read(4))
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename


def test_save_pth_is_atomic(tmp_path):
    path = tmp_path / "ckpt.pth"
    save_pth({"w": np.ones(3, np.float32)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="object"):
        save_pth({"w": np.ones(3), "bad": object()}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.pth"]  # no temp file left
    save_pth({"w": np.zeros(2, np.int32)}, path)
    assert load_pth(path)["w"].dtype == np.int32 and os.listdir(tmp_path) == ["ckpt.pth"]


def _tensor_pickle(numel, size, offset=0):
    """Hand-written data.pkl of one float tensor over storage '0' (what torch.save writes for it)."""
    tup = b"".join(b"K" + bytes([n]) for n in size) + b"\x85"
    return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
            b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK" + bytes([numel]) + b"tQK" + bytes([offset]) + tup
            + b"K\x01\x85\x89ccollections\nOrderedDict\n)RtR.")  # fmt: skip


def _write_zip(path, pkl, storages=()):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pkl)
        for i, data in enumerate(storages):
            zf.writestr(f"archive/data/{i}", data)
    return path


def test_hand_written_pickle_is_read(tmp_path):
    path = _write_zip(tmp_path / "ok.pth", _tensor_pickle(4, [3], offset=1), [np.arange(4.0, dtype="<f4")])
    np.testing.assert_array_equal(load_pth(path), [1.0, 2.0, 3.0])


def test_legacy_storage_view_metadata(tmp_path):
    """Pre-1.0 legacy files name storage views by (view_key, offset, size) in the persistent id."""
    header = [0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}]
    pid = b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00kX\x03\x00\x00\x00cpuK\x04"
    view = b"(X\x02\x00\x00\x00kvK\x01K\x02ttQ."  # view_metadata = ('kv', 1, 2), then BINPERSID
    data = struct.pack("<q", 4) + np.arange(4, dtype="<f4").tobytes()
    stream = b"".join(pickle.dumps(x, protocol=2) for x in header) + b"\x80\x02" + pid + view
    (tmp_path / "view.pth").write_bytes(stream + pickle.dumps(["k"], protocol=2) + data)
    np.testing.assert_array_equal(load_pth(tmp_path / "view.pth"), [1.0, 2.0])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "not a PyTorch checkpoint"),
        (lambda p: p.write_bytes(b""), "not a PyTorch checkpoint"),
        (lambda p: _write_zip(p, _tensor_pickle(4, [3])), "missing storage 'data/0'"),
        (
            lambda p: _write_zip(p, _tensor_pickle(4, [3]), [b"\0" * 12]),
            r"truncated storage 'data/0' \(expected 16",
        ),
        (lambda p: _write_zip(p, _tensor_pickle(4, [4], offset=1), [b"\0" * 16]), "overruns its storage"),
        (lambda p: _write_zip(p, b"\x80\x02X\xff\x00\x00\x00ab"), "corrupt checkpoint"),  # string overruns
        (lambda p: p.write_bytes(b"PK\x03\x04junk"), "corrupt or truncated zip archive"),
    ],
    ids=["random", "empty", "missing-storage", "truncated-storage", "out-of-bounds", "bad-pickle", "bad-zip"],
)
def test_malformed_files_raise(tmp_path, make, message):
    path = tmp_path / "bad.pth"
    make(path)
    with pytest.raises(PthFormatError, match=message) as info:
        load_pth(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_zip_raises(tmp_path):
    save_pth({"w": np.ones((64, 64), np.float32)}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(PthFormatError, match="cut.pth: corrupt or truncated zip archive"):
        load_pth(tmp_path / "cut.pth")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_code_execution_is_refused(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    evil = b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(f"touch {marker}")) + f"touch {marker}".encode()
    evil += b"\x85R."
    path = tmp_path / "evil.pth"
    if zip_format:
        _write_zip(path, evil)
    else:  # legacy header: magic number, protocol version, sys_info, then the object
        header = [0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}]
        path.write_bytes(b"".join(pickle.dumps(x, protocol=2) for x in header) + evil)
    with pytest.raises(PthFormatError, match="evil.pth: unsupported global 'os.system' in pickle"):
        load_pth(path)
    assert not marker.exists()


def test_pickled_module_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")
    with pytest.raises(PthFormatError, match="unsupported global 'torch.nn.modules.linear.Linear'"):
        load_pth(tmp_path / "module.pth")


def test_truncated_legacy_storage_raises(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(100)}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    data = (tmp_path / "old.pth").read_bytes()
    (tmp_path / "old.pth").write_bytes(data[:-10])
    with pytest.raises(
        PthFormatError, match=r"old.pth: truncated storage '\w+' \(expected 400 bytes, found 390"
    ):
        load_pth(tmp_path / "old.pth")


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_pth(tmp_path / "nothere.pth")


def test_never_imports_torch(tmp_path):
    """Run a save/load round trip in a fresh interpreter where ``import torch`` fails."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from siamrn_jax.convert.torch_pickle import load_pth, save_pth\n"
        f"save_pth({{'w': np.arange(3.0)}}, {str(tmp_path / 'a.pth')!r})\n"
        f"assert load_pth({str(tmp_path / 'a.pth')!r})['w'].tolist() == [0.0, 1.0, 2.0]\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
