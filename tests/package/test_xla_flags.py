"""Default XLA flags: applied only where the installed jaxlib knows them (XLA aborts on unknown flags)."""

from __future__ import annotations

import subprocess
import sys

from siamrn_jax.xla_flags import DEFAULT_XLA_FLAGS, apply_default_xla_flags, flag_known


def test_flag_known_searches_the_shared_libraries(tmp_path):
    (tmp_path / "libfake.so").write_bytes(b"\0junk xla_cpu_experimental_ynn_fusion_type more\0")
    (tmp_path / "empty.so").write_bytes(b"")
    assert flag_known("--xla_cpu_experimental_ynn_fusion_type=dot", tmp_path)
    assert not flag_known("--xla_cpu_some_flag_from_the_future=1", tmp_path)
    assert not flag_known("--xla_cpu_experimental_ynn_fusion_type=dot", tmp_path / "missing")


def test_installed_jaxlib_knows_the_default_flag():
    """The jaxlib pinned in .ci/constraints.txt has the flag (measured speed-up in docs/performance.md)."""
    assert all(flag_known(f) for f in DEFAULT_XLA_FLAGS)


def test_both_branches():
    env = {}
    assert apply_default_xla_flags(env, known=lambda f: True) == " ".join(DEFAULT_XLA_FLAGS)
    env = {}
    assert apply_default_xla_flags(env, known=lambda f: False) == "" and env["XLA_FLAGS"] == ""
    env = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    assert apply_default_xla_flags(env, known=lambda f: True) is None
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x"


def test_an_unknown_flag_would_abort_jax_but_is_never_applied():
    """Why the check exists: XLA aborts on a flag it does not know; a jaxlib without our flag starts."""
    code = "import jax; jax.devices()"
    bad = subprocess.run(
        [sys.executable, "-c", code],
        env={"XLA_FLAGS": "--xla_cpu_some_flag_from_the_future=1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    env = {"PATH": "/usr/bin:/bin"}
    apply_default_xla_flags(env, known=lambda f: False)
    ok = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-500:]
