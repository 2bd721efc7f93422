"""Differential test: the dtype-uniformity rules (FTS306, FTS408) vs real torch wrapping on CPU.

Models mix `float32` and `bfloat16` parameters. FSDP1: FTS306 fires exactly when real
`FullyShardedDataParallel(...)` raises "Must flatten tensors with uniform dtype" (both
`use_orig_params` values). FSDP2: FTS408 names the first phase whose forward/backward raises
(FSDP2's uniform-dtype assertions) when the phases are trained one after another on one
`fully_shard`ed model, and fires for no schedule that trains through.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

pytest.importorskip("torch")

import torch
from torch import nn

from ftsc.cli import check_file
from ftsc.frontend import load_text
from ftsc.model.build import extract
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile
from tests.fsdp_oracle import ensure_process_group

pytestmark = [pytest.mark.torch]


class Block(nn.Module):
    def __init__(self, h: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.fc = nn.Linear(h, h, dtype=dtype)
        self.out = nn.Linear(h, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc(x.to(self.fc.weight.dtype)).float())


class Mixed(nn.Module):
    """`layers.1.fc` and `head` are bfloat16, everything else float32."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Block(8), Block(8, torch.bfloat16), Block(8)])
        self.head = nn.Linear(8, 4, dtype=torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(x.to(torch.bfloat16)).float()


BLOCK = "tests.test_explain_dtypes.Block"


def _codes(text: str) -> dict[str, list[Any]]:
    graph = ModelGraph(extract(Mixed()))
    out: dict[str, list[Any]] = {}
    for d in check_file(load_text(SourceFile("s.ftsc", text)), graph):
        out.setdefault(d.code, []).append(d.data)
    return out


FSDP1_CASES = {
    "root-only": ("fsdp { }", None),
    "blocks": (f'fsdp {{ auto_wrap_policy = ["{BLOCK}"] }}', None),
    "blocks-and-head": (f'fsdp {{ auto_wrap_policy = ["{BLOCK}"] wrap head }}', None),
    "linears": ('fsdp { auto_wrap_policy = ["torch.nn.Linear"] }', None),
    "fc-and-head": ('fsdp { wrap layers.1.fc wrap head }', None),
}


def _real_fsdp1(case: str, orig: bool) -> bool:
    """True if real FSDP1 wrapping raises the uniform-dtype error."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import CustomPolicy, ModuleWrapPolicy

    ensure_process_group()
    model = Mixed()
    policy: Any = {
        "root-only": None,
        "blocks": ModuleWrapPolicy({Block}),
        "blocks-and-head": CustomPolicy(lambda m: isinstance(m, Block) or m is model.head),
        "linears": ModuleWrapPolicy({nn.Linear}),
        "fc-and-head": CustomPolicy(lambda m: m is model.layers[1].fc or m is model.head),
    }[case]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            FSDP(model, auto_wrap_policy=policy, use_orig_params=orig, device_id=torch.device("cpu"))
    except ValueError as err:
        assert "uniform dtype" in str(err)
        return True
    return False


@pytest.mark.parametrize("orig", [True, False], ids=["orig", "flat"])
@pytest.mark.parametrize("case", sorted(FSDP1_CASES))
def test_fts306_agrees_with_fsdp1_wrapping(case: str, orig: bool) -> None:
    """FTS306 fires exactly when FSDP1 refuses to flatten a unit of mixed dtypes."""
    block, _ = FSDP1_CASES[case]
    text = 'phase 0 { thaw glob "**" }\n' + block.replace("{ ", "{ " + f"use_orig_params = {str(orig).lower()} ", 1)
    predicted = "FTS306" in _codes(text)
    assert predicted == _real_fsdp1(case, orig)


FSDP2_CASES = {
    # name: (phases as glob lists, plan module FQNs)
    "root, bf16 thawed later": ([["layers.2.**"], ["head.*"]], [""]),
    "root, both at once": ([["layers.0.**", "head.*"]], [""]),
    "head own group": ([["layers.2.**"], ["head.*"]], ["head", ""]),
    "frozen bf16 only": ([["layers.0.out.*"], ["layers.2.**"]], ["layers.1", ""]),
    "mixed block thawed": ([["head.*"], ["layers.1.**"]], ["head", "layers.1", ""]),
    "bf16 part of block": ([["layers.1.fc.*"], ["head.*"]], ["layers.1", "head", ""]),
}


def _real_fsdp2(phases: list[list[str]], plan: list[str]) -> int | None:
    """The first phase whose forward/backward raises on a real `fully_shard`ed model, or None."""
    import fnmatch

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    ensure_process_group()
    mesh = init_device_mesh("cpu", (2,))
    model = Mixed()
    model.requires_grad_(False)

    def thaw(globs: list[str]) -> None:  # fully_shard replaces the parameters: look them up each time
        for n, p in model.named_parameters():
            if any(fnmatch.fnmatchcase(n, g.replace("**", "*")) for g in globs):
                p.requires_grad_(True)

    thaw(phases[0])
    for m in plan:
        fully_shard(model.get_submodule(m), mesh=mesh)
    x = torch.randn(2, 8)
    for k, globs in enumerate(phases):
        if k:
            thaw(globs)
        try:
            model(x).sum().backward()
        except AssertionError as err:
            assert "uniform" in str(err)
            return k
    return None


@pytest.mark.parametrize("case", sorted(FSDP2_CASES))
def test_fts408_agrees_with_fully_shard(case: str) -> None:
    """FTS408 names the first phase FSDP2 fails in, or fires not at all when training runs through."""
    phases, plan = FSDP2_CASES[case]
    text = "".join(f"phase {k} {{ " + " ".join(f'thaw glob "{g}"' for g in globs) + " }\n"
                   for k, globs in enumerate(phases))
    text += "fsdp2 { " + " ".join(f'shard "{m}"' if not m else f"shard {m}" for m in plan) + " }\n"
    found = _codes(text).get("FTS408", [])
    predicted = min((d["phase"] for d in found), default=None)
    assert predicted == _real_fsdp2(phases, plan)
