"""Differential test: ftsc's FSDP1 prediction vs real torch FSDP1 wrapping, unit by unit.

Oracle: `tests.fsdp_oracle.real_units`, which wraps a freshly built module with torch's
`FullyShardedDataParallel` on CPU (`device_id=cpu`) in the in-process fake process group
(world size 2, rank 0) and reads every FSDP instance back: its unit name
(`clean_tensor_name` of the instance's FQN, `""` for the root) and its FlatParameter's primary
parameter FQNs in FlatParameter order (`_params` with `use_orig_params=True`, `_fqns` otherwise),
plus the parameters in no FlatParameter.

ftsc side: `predict(ModelGraph(extract(module)), spec)` on a second build of the same factory
(seeded identically). Compared exactly: the set of unit names, every FlatParameter's contents
and order, the number of units (no duplicate names), and the unsharded set.

Coverage: toy models and tiny real HF architectures (DeBERTa-v2, Llama untied/tied, GPT-2 tied,
T5 tied) on real CPU tensors; both `use_orig_params`; `ModuleWrapPolicy` class sets by qualified
and re-exported names; size-based `min_num_params`; FTS `awp_overrides` on both policy kinds;
BatchNorm units under mixed precision; ignored modules; tied parameters across units; a module
shared under two parents (both policy kinds); the Lightning flow (every direct child of the
root is its own FSDP root, parameters on the root itself are in no unit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch
from torch import nn

from ftsc.model.build import extract
from ftsc.model.graph import ModelGraph
from ftsc.shard.fsdp1 import FSDP1Spec, predict
from tests import models
from tests.fsdp_oracle import real_units

pytestmark = [pytest.mark.torch]

DEBERTA = "transformers.models.deberta_v2.modeling_deberta_v2."
LLAMA_LAYER = "transformers.models.llama.modeling_llama.LlamaDecoderLayer"
GPT2_BLOCK = "transformers.models.gpt2.modeling_gpt2.GPT2Block"
T5_BLOCK = "transformers.models.t5.modeling_t5.T5Block"
NESTED_BLOCK = "tests.models.NestedBlock"


# ---------------------------------------------------------------------------------------------
# Extra toy models (torch built-ins only, so their class names are stable)


def batchnorm_model() -> nn.Module:
    """Linear/BatchNorm stack with a nested Sequential: BatchNorm units appear under mixed precision."""
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16)), nn.Linear(16, 2))


def root_params() -> nn.Module:
    """A root holding parameters of its own next to two children (Lightning flow: those stay unsharded)."""
    root = nn.Module()
    root.temperature = nn.Parameter(torch.ones(4))
    root.body = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 8))
    root.head = nn.Linear(8, 2)
    return root


# ---------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Case:
    id: str
    factory: Callable[[], Any]
    spec: FSDP1Spec
    xfail: str | None = None


def _s(**kw: Any) -> FSDP1Spec:
    return FSDP1Spec(**kw)


CASES: list[Case] = [
    # --- toys: class sets (re-exported and qualified names), both use_orig_params
    Case("linear11/Linear/orig", models.linear11, _s(classes=("torch.nn.Linear",), use_orig_params=True)),
    Case("linear11/Linear/flat", models.linear11,
         _s(classes=("torch.nn.modules.linear.Linear",), use_orig_params=False)),
    Case("nested/Block/flat", models.nested, _s(classes=(NESTED_BLOCK,), use_orig_params=False)),
    Case("nested/Linear+LayerNorm/orig", models.nested,
         _s(classes=("torch.nn.Linear", "torch.nn.LayerNorm"), use_orig_params=True)),
    # --- size-based
    Case("linear11/size72/flat", models.linear11, _s(min_num_params=72, use_orig_params=False)),
    Case("linear11/size150/orig", models.linear11, _s(min_num_params=150, use_orig_params=True)),
    Case("nested/size100/flat", models.nested, _s(min_num_params=100, use_orig_params=False)),
    Case("nested/size60/orig", models.nested, _s(min_num_params=60, use_orig_params=True)),
    # --- awp_overrides on both policy kinds (nested override inside a class target)
    Case("nested/Block+overrides/flat", models.nested,
         _s(classes=(NESTED_BLOCK,), overrides=("encoder.0.mixer.ffn", "decoder.head"), use_orig_params=False)),
    Case("nested/size100+overrides/orig", models.nested,
         _s(min_num_params=100, overrides=("encoder.1.norm", "decoder.head", "decoder"), use_orig_params=True)),
    Case("nested/overrides-only/flat", models.nested,
         _s(overrides=("encoder.0", "decoder.conv"), use_orig_params=False)),
    # --- ignored modules
    Case("nested/Block+ignored/flat", models.nested,
         _s(classes=(NESTED_BLOCK,), ignored=("encoder.1",), use_orig_params=False)),
    Case("nested/size60+ignored-sub/orig", models.nested,
         _s(min_num_params=60, ignored=("encoder.0.mixer.attn",), use_orig_params=True)),
    # --- BatchNorm under mixed precision (both policy kinds)
    Case("bn/Linear+mp/flat", batchnorm_model,
         _s(classes=("torch.nn.Linear",), mixed_precision=True, use_orig_params=False)),
    Case("bn/size200+mp/orig", batchnorm_model, _s(min_num_params=200, mixed_precision=True, use_orig_params=True)),
    # --- tied parameters across units
    Case("shared_linear/Linear/orig", models.shared_linear, _s(classes=("torch.nn.Linear",), use_orig_params=True)),
    Case("shared_linear/Linear/flat", models.shared_linear,
         _s(classes=("torch.nn.Linear",), use_orig_params=False)),
    Case("shared_module/Linear/flat", models.shared_module,
         _s(classes=("torch.nn.Linear",), use_orig_params=False)),
    # --- a module shared under two parents
    # a same-named class elsewhere is not the class; a subclass is (torch's policies use isinstance)
    Case("name_clash/Linear/orig", models.name_clash, _s(classes=("torch.nn.Linear",), use_orig_params=True)),
    Case("name_clash/Linear/flat", models.name_clash, _s(classes=("torch.nn.Linear",), use_orig_params=False)),
    Case("two_parents/Linear/orig", models.two_parents, _s(classes=("torch.nn.Linear",), use_orig_params=True)),
    Case("two_parents/Linear/flat", models.two_parents, _s(classes=("torch.nn.Linear",), use_orig_params=False)),
    Case("two_parents/size100+override/flat", models.two_parents,
         _s(min_num_params=100, overrides=("enc.0",), use_orig_params=False)),
    Case("two_parents/size100+override/orig", models.two_parents,
         _s(min_num_params=100, overrides=("enc.0",), use_orig_params=True)),
    Case("two_parents/size50/flat", models.two_parents, _s(min_num_params=50, use_orig_params=False)),
    Case("two_parents/size37/flat", models.two_parents, _s(min_num_params=37, use_orig_params=False)),
    # On the revisit of `dec.1` torch counts the shared Linear's live numel after its first wrap at
    # `enc.0`: its registered `_flat_param` (ceil(72/2) = 36, use_orig_params=False) or rank 0's 1-D
    # shard views (36, use_orig_params=True), and wraps it again as an EMPTY unit `dec.1`.
    Case("two_parents/size36/flat", models.two_parents, _s(min_num_params=36, use_orig_params=False)),
    Case("two_parents/size36/orig", models.two_parents, _s(min_num_params=36, use_orig_params=True)),
    Case("two_parents/size30/orig", models.two_parents, _s(min_num_params=30, use_orig_params=True)),
    # --- small HF architectures
    Case("deberta/Layer/flat", models.deberta_v2, _s(classes=(DEBERTA + "DebertaV2Layer",), use_orig_params=False)),
    Case("deberta/Layer+Emb+Enc/orig", models.deberta_v2,
         _s(classes=tuple(DEBERTA + c for c in ("DebertaV2Layer", "DebertaV2Embeddings", "DebertaV2Encoder")),
            use_orig_params=True)),
    Case("deberta/size500/flat", models.deberta_v2, _s(min_num_params=500, use_orig_params=False)),
    Case("llama/Layer/orig", models.llama, _s(classes=(LLAMA_LAYER,), use_orig_params=True)),
    Case("llama/Layer+ignored/flat", models.llama,
         _s(classes=(LLAMA_LAYER,), ignored=("model.layers.0",), use_orig_params=False)),
    Case("llama_tied/Layer+Embedding/flat", models.llama_tied,
         _s(classes=(LLAMA_LAYER, "torch.nn.Embedding"), use_orig_params=False)),
    Case("llama_tied/Layer+Embedding/orig", models.llama_tied,
         _s(classes=(LLAMA_LAYER, "torch.nn.Embedding"), use_orig_params=True)),
    Case("llama_tied/Layer+lm_head/orig", models.llama_tied,
         _s(classes=(LLAMA_LAYER,), overrides=("lm_head",), use_orig_params=True)),
    Case("gpt2/Block/flat", models.gpt2, _s(classes=(GPT2_BLOCK,), use_orig_params=False)),
    Case("gpt2/Embedding/orig", models.gpt2, _s(classes=("torch.nn.Embedding",), use_orig_params=True)),
    Case("gpt2/size1000/flat", models.gpt2, _s(min_num_params=1000, use_orig_params=False)),
    Case("t5/Block/flat", models.t5, _s(classes=(T5_BLOCK,), use_orig_params=False)),
    Case("t5/Embedding/orig", models.t5, _s(classes=("torch.nn.Embedding",), use_orig_params=True)),
    Case("t5/Embedding/flat", models.t5, _s(classes=("torch.nn.Embedding",), use_orig_params=False)),
    # --- the Lightning flow (each direct child of the root is an FSDP root; Lightning passes MixedPrecision)
    Case("lightning/deberta_lm/Layer+overrides/flat", models.deberta_v2_lm,
         _s(classes=(DEBERTA + "DebertaV2Layer",), overrides=("model.pooler.dense", "model.classifier"),
            use_orig_params=False, mixed_precision=True, lightning=True)),
    Case("lightning/gpt2_lm/Block/orig", models.gpt2_lm,
         _s(classes=(GPT2_BLOCK,), use_orig_params=True, mixed_precision=True, lightning=True)),
    Case("lightning/root_params/size50/flat", root_params,
         _s(min_num_params=50, use_orig_params=False, mixed_precision=True, lightning=True)),
    Case("lightning/root_params/no-policy/orig", root_params, _s(use_orig_params=True, lightning=True)),
    Case("lightning/bn/Linear+mp/orig", lambda: models.wrap(batchnorm_model()),
         _s(classes=("torch.nn.Linear",), use_orig_params=True, mixed_precision=True, lightning=True)),
]


def _build(factory: Callable[[], Any]) -> Any:
    torch.manual_seed(0)
    return factory()


def _params(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def test_enough_scenarios() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [_params(c) for c in CASES])
def test_prediction_matches_torch(case: Case) -> None:
    pred = predict(ModelGraph(extract(_build(case.factory))), case.spec)
    predicted = {u.name: list(u.params) for u in pred.units}
    assert len(predicted) == len(pred.units), f"duplicate unit names: {[u.name for u in pred.units]}"
    real, unsharded = real_units(_build(case.factory), case.spec)
    assert sorted(predicted) == sorted(real), "unit names differ"
    for name in real:
        assert predicted[name] == real[name], f"FlatParameter of unit {name!r} differs"
    assert sorted(pred.unsharded) == sorted(unsharded), "unsharded parameters differ"
