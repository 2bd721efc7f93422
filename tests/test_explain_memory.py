"""Differential test: `ftsc explain`'s model-state bytes per rank vs real torch on CPU.

The oracle wraps a small transformer-like model with real FSDP1 (`use_orig_params` both ways),
FSDP2 (`fully_shard`) or nothing, on torch's fake process group at world sizes 1, 2 and 8 (every
rank simulated), makes the phase's parameters trainable, runs forward / backward /
`optimizer.step()` once, then forward / backward again, and sums the bytes of the distinct
storages reachable from the parameters (FlatParameters, DTensor local shards), their gradients,
the optimizer state (Adam's host `step` scalar excluded: it never lives on the accelerator) and
the buffers. The busiest rank's sum must equal the prediction exactly, category by category.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

import torch
import torch.distributed as dist
from torch import nn

from ftsc.analyze import AnalysisContext, prepare
from ftsc.explain import explain
from ftsc.explain.setup import ConfigFacts, schedule_setup
from ftsc.frontend import load_text
from ftsc.model.build import extract
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile

pytestmark = [pytest.mark.torch]


class Block(nn.Module):
    def __init__(self, h: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(h)
        self.up = nn.Linear(h, 3 * h + 1)
        self.down = nn.Linear(3 * h + 1, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(self.norm(x))))


class Tiny(nn.Module):
    """Odd sizes on purpose: alignment and dim-0 padding both show."""

    def __init__(self, h: int = 10, vocab: int = 13, layers: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, h)
        self.layers = nn.ModuleList(Block(h) for _ in range(layers))
        self.head = nn.Linear(h, vocab)
        self.register_buffer("scale", torch.ones(7))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.head(x) * self.scale[0]


PHASES = """
phase 0 { thaw glob "head.*" }
phase 1 { thaw glob "layers.2.**" }
phase 2 { thaw glob "layers.1.up.*" }
"""
PHASE_SETS = [["head."], ["head.", "layers.2."], ["head.", "layers.2.", "layers.1.up."]]
# FSDP1 with use_orig_params=False thaws whole FlatParameters: phases aligned to units.
ALIGNED = """
phase 0 { thaw glob "head.*" thaw glob "embed.*" }
phase 1 { thaw glob "layers.2.**" }
phase 2 { thaw glob "layers.1.**" }
"""
ALIGNED_SETS = [["head.", "embed."], ["head.", "embed.", "layers.2."], ["head.", "embed.", "layers.2.", "layers.1."]]
BLOCK = "tests.test_explain_memory.Block"


@pytest.fixture
def worlds() -> Iterator[None]:
    """Lets a test re-create the fake process group; puts back the suite's (2 ranks, rank 0)."""
    yield
    if dist.is_initialized():
        dist.destroy_process_group()
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)


def _world(ws: int, rank: int) -> None:
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=ws)


def _storage_bytes(tensors: list[Any]) -> int:
    from torch.distributed.tensor import DTensor

    seen: dict[int, int] = {}
    for t in tensors:
        if t is None:
            continue
        if isinstance(t, DTensor):
            t = t._local_tensor
        s = t.untyped_storage()
        if s.nbytes():
            seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def _real(kind: str, ws: int, rank: int, prefixes: list[str], *, orig: bool = True, mixed: bool = False,
          bf16: bool = False, optimizer: str = "adamw", no_shard: bool = False,
          node: int | None = None, low_grads: bool = False) -> dict[str, int]:
    """Bytes per category on `rank` after the second backward of a phase training `prefixes`
    (`bf16`: the model converted to bfloat16 first, as Lightning's `bf16-true` does)."""
    _world(ws, rank)
    torch.manual_seed(0)
    model = Tiny()
    if bf16:
        model = model.to(torch.bfloat16)
    for n, p in model.named_parameters():
        p.requires_grad_(any(n.startswith(x) for x in prefixes))
    flat: list[Any] = []
    if kind == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp import MixedPrecision
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        kwargs: dict[str, Any] = {}
        if no_shard:
            from torch.distributed.fsdp import ShardingStrategy

            kwargs["sharding_strategy"] = ShardingStrategy.NO_SHARD
        if node:  # HYBRID_SHARD: sharded over the `node` ranks of a node, replicated across nodes
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import ShardingStrategy

            kwargs["sharding_strategy"] = ShardingStrategy.HYBRID_SHARD
            kwargs["device_mesh"] = init_device_mesh("cpu", (ws // node, node))
        if mixed:
            kwargs["mixed_precision"] = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16,
                                                       buffer_dtype=torch.bfloat16)
        if low_grads:
            kwargs["mixed_precision"] = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16,
                                                       keep_low_precision_grads=True)
        wrapped: nn.Module = FSDP(model, auto_wrap_policy=ModuleWrapPolicy({Block}), use_orig_params=orig,
                                  device_id=torch.device("cpu"), **kwargs)
        flat = [m._flat_param for m in wrapped.modules() if isinstance(m, FSDP) and m._flat_param is not None]
    elif kind == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (ws,))
        for layer in model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        wrapped = model
    else:
        wrapped = model
    params = [p for p in wrapped.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=0.1, momentum=0.9) if optimizer == "sgd-momentum" else
           torch.optim.SGD(params, lr=0.1) if optimizer == "sgd" else
           torch.optim.Adam(params, lr=0.1) if optimizer == "adam" else torch.optim.AdamW(params, lr=0.1))
    ids = torch.randint(0, 13, (2, 5))
    for step in range(2):
        wrapped(ids).float().sum().backward()
        if step == 0:
            opt.step()
            opt.zero_grad()
    all_params = list(wrapped.parameters()) + flat
    state = [v for s in opt.state.values() for k, v in s.items() if k != "step" and isinstance(v, torch.Tensor)]
    return {"params": _storage_bytes(all_params),
            "grads": _storage_bytes([p.grad for p in all_params]),
            "optimizer": _storage_bytes(state),
            "buffers": _storage_bytes(list(wrapped.buffers()))}


def _graph() -> ModelGraph:
    return ModelGraph(extract(Tiny()))


def _predicted(sharding: str, phases: str, ws: int, optimizer: str = "adamw",
               facts: ConfigFacts | None = None) -> list[dict[str, int]]:
    loaded = load_text(SourceFile("s.ftsc", phases + sharding))
    assert loaded.schedule is not None, loaded.diagnostics
    graph = _graph()
    ctx = prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))
    setup = schedule_setup(loaded.schedule, world_size=ws, optimizer=optimizer, facts=facts or ConfigFacts())
    ex = explain(loaded.schedule, ctx, setup)
    return [{"params": p.memory.device.params, "grads": p.memory.device.grads,
             "optimizer": p.memory.device.optimizer, "buffers": p.memory.device.buffers} for p in ex.phases]


def _busiest(kind: str, ws: int, prefixes: list[str], **kw: Any) -> dict[str, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_rank = [_real(kind, ws, r, prefixes, **kw) for r in range(ws)]
    return max(per_rank, key=lambda m: sum(m.values()))


FSDP1 = f'fsdp {{ auto_wrap_policy = ["{BLOCK}"] }}'
FSDP1_FLAT = f'fsdp {{ auto_wrap_policy = ["{BLOCK}"]  use_orig_params = false }}'
FSDP1_MP = f'fsdp {{ auto_wrap_policy = ["{BLOCK}"]  precision = "bf16-mixed" }}'
FSDP1_LOW_GRADS = (f'fsdp {{ auto_wrap_policy = ["{BLOCK}"] mixed_precision = {{ param_dtype = bf16 '
                   'reduce_dtype = bf16 keep_low_precision_grads = true } }')
FSDP1_NO_SHARD = f'fsdp {{ auto_wrap_policy = ["{BLOCK}"]  sharding_strategy = "NO_SHARD" }}'
FSDP2 = 'fsdp2 { shard glob "layers.*" shard "" }'
FSDP2_BF16 = 'fsdp2 { precision = "bf16-true" shard glob "layers.*" shard "" }'


@pytest.mark.parametrize("ws", [1, 2, 8])
@pytest.mark.parametrize("kind, sharding, phases, sets, kw", [
    ("fsdp", FSDP1, PHASES, PHASE_SETS, {}),
    ("fsdp", FSDP1_FLAT, ALIGNED, ALIGNED_SETS, {"orig": False}),
    ("fsdp", FSDP1_MP, PHASES, PHASE_SETS, {"mixed": True}),
    ("fsdp", FSDP1_FLAT, ALIGNED, ALIGNED_SETS, {"orig": False, "optimizer": "sgd"}),
    ("fsdp", FSDP1_NO_SHARD, PHASES, PHASE_SETS, {"no_shard": True}),
    ("fsdp", FSDP1_LOW_GRADS, PHASES, PHASE_SETS, {"low_grads": True, "optimizer": "sgd"}),
    ("fsdp2", FSDP2, PHASES, PHASE_SETS, {}),
    ("fsdp2", FSDP2_BF16, PHASES, PHASE_SETS, {"bf16": True, "optimizer": "sgd-momentum"}),
], ids=["fsdp1-orig", "fsdp1-flat", "fsdp1-bf16-mixed", "fsdp1-flat-sgd", "fsdp1-no-shard", "fsdp1-low-precision-grads", "fsdp2", "fsdp2-bf16-true-momentum"])
def test_model_states_match_real_torch(worlds: None, ws: int, kind: str, sharding: str, phases: str,
                                       sets: list[list[str]], kw: dict[str, Any]) -> None:
    """Params, buffers, grads and optimizer bytes of the busiest rank equal real torch's, every phase."""
    predicted = _predicted(sharding, phases, ws, kw.get("optimizer", "adamw"))
    assert len(predicted) == len(sets)
    for k, prefixes in enumerate(sets):
        assert predicted[k] == _busiest(kind, ws, prefixes, **kw), f"phase {k}"


def test_hybrid_shard_matches_real_torch(worlds: None) -> None:
    """HYBRID_SHARD over 2 nodes of 4 ranks: FlatParameters sharded within a node (`trainer.devices`)."""
    sharding = f'fsdp {{ auto_wrap_policy = ["{BLOCK}"]  sharding_strategy = "HYBRID_SHARD" }}'
    predicted = _predicted(sharding, PHASES, 8, facts=ConfigFacts(devices=4))
    for k, prefixes in enumerate(PHASE_SETS):
        assert predicted[k] == _busiest("fsdp", 8, prefixes, node=4), f"phase {k}"


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd-momentum"])
def test_single_device_matches_real_torch(worlds: None, optimizer: str) -> None:
    """Unsharded: whole parameters, gradients and optimizer state of the trainable ones."""
    predicted = _predicted("", PHASES, 1, optimizer)
    for k, prefixes in enumerate(PHASE_SETS):
        assert predicted[k] == _busiest("single", 1, prefixes, optimizer=optimizer), f"phase {k}"


def test_ddp_counts_the_reducer_buckets() -> None:
    """DDP: whole parameters, gradients plus the reducer's buckets (gradient_as_bucket_view=False),
    AdamW state: equal to a real gloo DDP process (fake process groups cannot run DDP)."""
    import json
    import socket
    import subprocess
    import sys

    from ftsc.explain.memory import Setup

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "tests.explain_ddp_probe", str(port)], check=False,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    real = json.loads(proc.stdout.strip().splitlines()[-1])
    loaded = load_text(SourceFile("s.ftsc", PHASES))
    assert loaded.schedule is not None
    graph = _graph()
    ctx = prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))
    ex = explain(loaded.schedule, ctx, Setup(kind="ddp", world_size=1))
    predicted = [{"params": p.memory.device.params, "grads": p.memory.device.grads,
                  "optimizer": p.memory.device.optimizer, "buffers": p.memory.device.buffers} for p in ex.phases]
    assert predicted == real


def test_activations_scale_with_the_blocks_above_the_lowest_trainable_parameter() -> None:
    """Frozen blocks below the lowest trainable parameter save nothing for backward: the bytes real
    autograd saves (saved-tensor hooks, a bf16 transformers Llama) grow with the number of blocks
    from the lowest trainable one up, as the estimate says (its absolute value is only an estimate)."""
    pytest.importorskip("transformers")
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftsc.explain.activations import activation_bytes

    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=172, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    graph = ModelGraph(extract(model))
    ids = torch.randint(0, 64, (2, 64))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    real, est = [], []
    for first in (3, 2, 0):
        train = {n for n, p in model.named_parameters()
                 if n.startswith("model.layers.") and int(n.split(".")[2]) >= first}
        for n, p in model.named_parameters():
            p.requires_grad_(n in train)
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor, saved: dict[int, int] = saved) -> torch.Tensor:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids)
        real.append(sum(v for k, v in saved.items() if k not in params))
        est.append(activation_bytes(graph, frozenset(train), batch=2, seq=64, compute_dtype="bfloat16",
                                    checkpointing=False))
    assert est[1] == 2 * est[0] and est[2] == 4 * est[0]
    for k in (1, 2):  # 2 and 4 blocks store what 1 block stores, 2 and 4 times (logits aside)
        assert abs(real[k] / real[0] - est[k] / est[0]) < 0.15 * est[k] / est[0], (real, est)


@pytest.mark.parametrize(("strategy", "devices", "kind"), [
    ("ddp", 1, "ddp"), ("ddp_find_unused_parameters_true", 1, "ddp"),
    ({"class_path": "lightning.pytorch.strategies.DDPStrategy"}, 1, "ddp"),
    ("auto", 1, "single"), ("single_device", 1, "single"), ("auto", 2, "ddp")])
def test_trainer_strategy_decides_ddp_without_sharding(tmp_path: Path, strategy: object, devices: int,
                                                       kind: str) -> None:
    """Lightning wraps in DDP whenever `trainer.strategy` names DDP, even on one device (its reducer's
    buckets then count); with no strategy named, more than one device means DDP."""
    import yaml

    from ftsc.explain.setup import read_config_facts

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"strategy": strategy, "devices": devices}}))
    loaded = load_text(SourceFile("s.ftsc", PHASES))
    assert loaded.schedule is not None
    setup = schedule_setup(loaded.schedule, world_size=None, optimizer=None, facts=read_config_facts(str(config)))
    assert (setup.kind, setup.world_size) == (kind, devices)


def _saved_bytes(model: torch.nn.Module, ids: torch.Tensor, labels: bool = False) -> int:
    """Bytes of the activations autograd saves in one forward (saved-tensor hooks): tensors whose
    leading dimension is the batch (or batch x sequence, as the loss flattens logits), each storage
    once. Parameters, and FSDP1's unsharded parameter views, have other shapes; storages are told
    apart by identity while held (FSDP1 frees and re-allocates memory during the forward, so
    addresses repeat)."""
    batch, seq = ids.shape
    held: list[torch.Tensor] = []
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.dim() >= 2 and t.shape[0] in (batch, batch * seq):
            held.append(t)
            saved[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids if labels else None)
    return sum(saved.values())


def _small_llama(vocab: int = 64) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=172, num_hidden_layers=4,
                                        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64))


def _explain_phase0(model: Any, sharding: str, thaw: str, *, seq: int = 64) -> Any:
    """explain's phase 0 for a one-phase schedule thawing `thaw` (batch 2), world size 2."""
    loaded = load_text(SourceFile("s.ftsc", f"phase 0 {{\n    thaw {thaw}\n}}\n{sharding}\n"))
    assert loaded.schedule is not None, loaded.diagnostics
    graph = ModelGraph(extract(model))
    ctx = prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))
    setup = schedule_setup(loaded.schedule, world_size=2, optimizer="adamw", facts=ConfigFacts())
    return explain(loaded.schedule, ctx, setup, batch=2, seq=seq).phases[0]


def test_fsdp1_units_with_a_trainable_member_store_the_activations_below_it() -> None:
    """Under FSDP1 a frozen parameter in a FlatParameter that requires grad is, in forward, a view of
    it and so receives a gradient: with only `lm_head` training, the root unit (which also holds the
    embeddings) makes every block save activations for backward, most of what training every block
    saves; explain counts every block, as for a phase that trains them all.
    Real: saved-tensor hooks on a transformers Llama wrapped by torch's FSDP1 (fake process group)."""
    pytest.importorskip("transformers")
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from tests.fsdp_oracle import ensure_process_group

    ensure_process_group()
    ids = torch.randint(0, 64, (2, 64), generator=torch.Generator().manual_seed(0))
    real = {}
    for name, heads_only in (("fsdp1 head", True), ("single head", True), ("single all", False)):
        model = _small_llama()
        for n, p in model.named_parameters():
            p.requires_grad_(n == "lm_head.weight" or not heads_only)
        if name.startswith("fsdp1"):
            model = FullyShardedDataParallel(model, auto_wrap_policy=ModuleWrapPolicy({LlamaDecoderLayer}),
                                             use_orig_params=True, device_id=torch.device("cpu"))
        real[name] = _saved_bytes(model, ids)
    # Frozen blocks that pass gradients through save less than training ones (a Linear keeps its
    # input only for its weight's gradient): 69 % here, which the estimate counts in full.
    assert real["single head"] < real["single all"] / 10, real
    assert 0.5 * real["single all"] < real["fsdp1 head"] <= real["single all"], real
    fsdp1 = 'fsdp { auto_wrap_policy = ["transformers.models.llama.modeling_llama.LlamaDecoderLayer"] }'
    est = {"fsdp1 head": _explain_phase0(_small_llama(), fsdp1, "lm_head.weight").activations,
           "single head": _explain_phase0(_small_llama(), "", "lm_head.weight").activations,
           "single all": _explain_phase0(_small_llama(), "", "/(model\\.layers\\..*|lm_head\\..*)/").activations}
    assert est["fsdp1 head"] == est["single all"] and est["single head"] < est["single all"] / 10, est


def test_language_model_heads_add_their_float32_logits() -> None:
    """A transformers LM computes its loss on float32 logits: with a vocabulary much larger than the
    hidden size, what a head-only phase saves for backward is about `4·b·s·V` bytes (real autograd,
    saved-tensor hooks, a bf16 Llama with labels), and explain's activations say exactly that."""
    pytest.importorskip("transformers")
    model = _small_llama(vocab=4096).to(torch.bfloat16)
    for n, p in model.named_parameters():
        p.requires_grad_(n == "lm_head.weight")
    ids = torch.randint(0, 4096, (2, 64), generator=torch.Generator().manual_seed(0))
    real = _saved_bytes(model, ids, labels=True)
    logits = 4 * 2 * 64 * 4096
    assert abs(real - logits) < 0.25 * logits, (real, logits)
    phase = _explain_phase0(_small_llama(vocab=4096).to(torch.bfloat16), "", "lm_head.weight")
    assert phase.activations == logits
    assert phase.peak == phase.memory.device.model_states + 4 * logits
