"""Module trees thousands of levels deep: `ftsc check` and `ftsc explain` walk them without
Python recursion (an internal FTS901 RecursionError before), and the SCC search of FTS106.

The expected units are worked out by hand from torch's wrapping rules (the chain model below is
small enough to follow), not taken from ftsc; networkx is the oracle for the components.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import networkx as nx
import pytest

from ftsc.backtracking import _components
from ftsc.cli import main

DEPTH = 3_000


def chain(depth: int = DEPTH) -> dict:
    """`b`, `b.b`, ... `depth` levels; a 4x4 parameter `w` on every 100th level (those modules are
    `Block`s) and on the deepest module."""
    modules = [{"name": "", "class": "Net"}]
    params = []
    name = ""
    for level in range(depth):
        name = f"{name}.b" if name else "b"
        modules.append({"name": name, "class": "Block" if level % 100 == 0 else "Inner"})
        if level % 100 == 0 or level == depth - 1:
            params.append({"name": f"{name}.w", "shape": [4, 4]})
    return {"format": "ftsc-manifest", "version": 1, "target": None,
            "classes": {"Net": [], "Block": [], "Inner": []}, "modules": modules, "parameters": params}


def level(n: int) -> str:
    """The module at 0-based level `n`."""
    return ".".join(["b"] * (n + 1))


SHARDING = {
    # ModuleWrapPolicy: one unit per Block (levels 0, 100, ... 2900), then the root (no parameters left).
    "class": ("fsdp { auto_wrap_policy = [Block] }", [level(n) for n in range(2900, -1, -100)] + [""]),
    # size-based, 16-element parameters, threshold 20: bottom-up, a module is wrapped once 32 elements are
    # left unwrapped below it: levels 2900 (its w and the deepest w), 2700 (its w and 2800's), ... 100.
    "size": ("fsdp { min_num_params = 20 }", [level(n) for n in range(2900, 0, -200)] + [""]),
    # FSDP2: the deep module first, then the top one (it holds the deep group, which keeps its own state).
    "fsdp2": (f"fsdp2 {{\n  shard {level(2000)}\n  shard b\n}}", [level(2000), "b"]),
}


@pytest.fixture(scope="module")
def deep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("deep")
    (folder / "m.json").write_text(json.dumps(chain()))
    return folder


@pytest.mark.parametrize("kind", list(SHARDING))
def test_check_and_explain_on_a_3000_deep_tree(deep: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    block, units = SHARDING[kind]
    schedule = deep / f"{kind}.ftsc"
    schedule.write_text(f"phase 0 {{ thaw {level(DEPTH - 1)}.w }}\nphase 1 {{ thaw b.w }}\n{block}\n")
    manifest = str(deep / "m.json")

    rc = main(["check", str(schedule), "--manifest", manifest, "--format", "json"])
    out = capsys.readouterr()
    codes = [d["code"] for d in json.loads(out.out)["diagnostics"]]
    assert "FTS901" not in codes and "FTS901" not in out.err, out.err
    assert rc in (0, 1) and "FTS204" in codes  # 29 parameters are never thawed: the model was analysed

    rc = main(["explain", str(schedule), "--manifest", manifest, "--format", "json", "--world-size", "2"])
    out = capsys.readouterr()
    assert rc in (0, 1) and "FTS901" not in out.err, out.err
    doc = json.loads(out.out)
    assert [u["name"] for u in doc["units"]] == units
    assert [p["trainable_numel"] for p in doc["phases"]] == [16, 32]  # phases are cumulative

    rc = main(["explain", str(schedule), "--manifest", manifest])  # the text table as well
    assert rc in (0, 1) and "FTS901" not in capsys.readouterr().err


def test_components_match_networkx() -> None:
    """The strongly connected components FTS106 uses are networkx's, on random graphs and on a
    path 20,000 nodes long (no recursion limit)."""
    rng = random.Random(5)
    for _ in range(300):
        n = rng.randint(1, 25)
        succ: dict[int, list[int]] = {i: [] for i in range(n)}
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        for _ in range(rng.randint(0, 3 * n)):
            u, v = rng.randrange(n), rng.randrange(n)
            succ[u].append(v)
            g.add_edge(u, v)
        assert sorted(map(sorted, _components(succ))) == sorted(map(sorted, nx.strongly_connected_components(g)))
    path = {i: [i + 1] for i in range(20_000)} | {20_000: [0]}
    assert [len(c) for c in _components(path)] == [20_001]


def test_units_named_through_a_shared_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A size policy revisits a shared module under its second parent and names units by that path
    (`h.s.bn`); explain resolves such paths through the alias (a KeyError, FTS901, before).

    The prediction itself is not checked here: torch 2.13's `_recursive_wrap` asserts that no
    descendant is already wrapped when it enters `h`, which the predictor does not model yet.
    """
    bn = "torch.nn.modules.batchnorm.BatchNorm1d"
    manifest = {"format": "ftsc-manifest", "version": 1, "target": None,
                "classes": {"Net": [], "Block": [], bn: ["torch.nn.modules.batchnorm._BatchNorm"]},
                "modules": [{"name": "", "class": "Net"}, {"name": "a", "class": "Block", "aliases": ["h.s"]},
                            {"name": "a.bn", "class": bn}, {"name": "a.c", "class": "Block"},
                            {"name": "h", "class": "Block"}],
                "parameters": [{"name": "a.bn.weight", "shape": [8]}, {"name": "a.c.w", "shape": [8, 8]},
                               {"name": "h.w", "shape": [2]}]}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    schedule = tmp_path / "s.ftsc"
    schedule.write_text('phase 0 { thaw h.w }\nphase 1 { thaw a.c.w }\nfsdp {\n  min_num_params = 4\n'
                        '  precision = "bf16-mixed"\n}\n')
    args = [str(schedule), "--manifest", str(tmp_path / "m.json")]
    assert main(["compile", *args]) == 0
    predicted = [u["name"] for u in json.loads(capsys.readouterr().out)["sharding"]["units"]]
    assert "h.s.bn" in predicted
    rc = main(["explain", *args, "--format", "json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert [u["name"] for u in json.loads(out.out)["units"]] == predicted
