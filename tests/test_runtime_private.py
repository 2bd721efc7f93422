"""Every private Lightning / torch name the runtime uses is listed in `ftsc.lightning._private`,
still exists in the pinned versions, and is used nowhere else in `ftsc/lightning`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch

from ftsc.lightning._private import PRIVATE, Private, lookup

PACKAGE = Path(__file__).resolve().parent.parent / "ftsc" / "lightning"


@pytest.mark.parametrize("entry", PRIVATE, ids=[f"{e.module}:{e.attr}" for e in PRIVATE])
def test_each_private_name_exists_in_the_pinned_versions(entry: Private) -> None:
    assert entry.why
    lookup(entry)  # raises ImportError / AttributeError when Lightning or torch moved it


@pytest.mark.parametrize("moved", [
    Private("torch.nn.modules.batchnorm", "_BatchNormBase", "moved class"),
    Private("lightning.pytorch.strategies.ddp", "DDPStrategy._setup_wrapped_model", "moved method"),
    Private("torch.distributed.fsdp._flat_param", "FlatParameter._fqn_list", "moved annotation"),
    Private("torch.distributed.fsdp._fully_shard._fully_shard", "_is_managed_module", "moved", in_source=True),
    Private("lightning.pytorch.strategies.fsdpx", "FSDPStrategy", "moved module"),
])
def test_a_moved_name_is_caught(moved: Private) -> None:
    with pytest.raises((ImportError, AttributeError)):
        lookup(moved)


def _violations(path: Path) -> list[str]:
    """Private names of other packages used in `path`: `obj._x` (obj other than self/cls/_private),
    `from m import _x`, `getattr(obj, "_x")`, and `self._x` that the module itself never defines."""
    tree = ast.parse(path.read_text())
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    own |= {t.attr for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Attribute)}
    own |= {t.id for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out += [f"{path.name}:{node.lineno}: import {a.name}" for a in node.names
                    if a.name.startswith("_") and a.name != "_private"]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value.id if isinstance(node.value, ast.Name) else None
            if base == "_private":
                continue
            if base in ("self", "cls") and node.attr in own:
                continue
            out.append(f"{path.name}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr") \
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                and str(node.args[1].value).startswith("_") and not str(node.args[1].value).startswith("__"):
            out.append(f"{path.name}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})")  # type: ignore[attr-defined]
    return out


def test_no_private_name_outside_the_private_module() -> None:
    found = [v for p in sorted(PACKAGE.glob("*.py")) if p.name != "_private.py" for v in _violations(p)]
    assert found == []


def test_the_scan_finds_a_private_use(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from torch.distributed.fsdp.wrap import _ConfigAutoWrap\n"
                   "def f(m):\n    return m._flat_param, getattr(m, '_fqns'), self._save_on_train_epoch_end\n")
    assert len(_violations(bad)) == 4
