"""The scripts in ../shared/tools (benchmark harnesses, fixture generators) import our modules by path.

They are not ours to edit, so a move inside the package must keep every name they import. Each
``from siamrn_jax... import ...`` statement found in them (top level or inside functions) is executed.
"""

import ast
import importlib
from pathlib import Path

import pytest

SHARED_TOOLS = Path(__file__).resolve().parents[2].parent / "shared" / "tools"


def _imports():
    found = []
    for path in sorted(SHARED_TOOLS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("siamrn_jax"):
                found.append((path.relative_to(SHARED_TOOLS), node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                found += [
                    (path.relative_to(SHARED_TOOLS), a.name, [])
                    for a in node.names
                    if a.name.startswith("siamrn_jax")
                ]
    return found


IMPORTS = _imports() if SHARED_TOOLS.is_dir() else []


@pytest.mark.skipif(not SHARED_TOOLS.is_dir(), reason="../shared/tools not beside the checkout")
def test_shared_tools_import_something():
    assert any(str(p).startswith("realtime_bench") for p, _, _ in IMPORTS)


@pytest.mark.parametrize("path,module,names", IMPORTS, ids=[f"{p}:{m}" for p, m, _ in IMPORTS])
def test_shared_tool_import_resolves(path, module, names):
    mod = importlib.import_module(module)
    missing = [n for n in names if not hasattr(mod, n) and not _is_submodule(module, n)]
    assert not missing, f"{path} imports {missing} from {module}"


def _is_submodule(module, name):
    try:
        importlib.import_module(f"{module}.{name}")
    except ModuleNotFoundError:
        return False
    return True
