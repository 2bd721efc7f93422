"""Model factories for tests: tiny configurations of real architectures, plus toy torch models.

Every factory takes no arguments and returns a freshly built module, so each can be a
`--model tests/models.py:<factory>` target; every one also builds under
`with torch.device("meta"):` (ftsc builds models that way). torch, transformers and lightning
are imported inside the functions only, so importing this file needs none of them.

Two families:
- plain modules (`deberta_v2`, `llama`, `llama_tied`, `t5`, `gpt2`, `linear11`, `shared_linear`,
  `shared_module`, `nested`): parameter names as the model itself reports them;
- `*_lm` factories: the same module wrapped in a minimal LightningModule as attribute `model`,
  which is what FinetuningScheduler resolves schedules against (names start with `model.`,
  as in the FTS example schedules). The wrapper defines just enough (`training_step`,
  `configure_optimizers`, `train_dataloader`) for `Trainer.fit` to reach the callbacks' `setup`.

Sizes are tiny (hidden 16, vocabulary 64) so real tensors are cheap too.
"""

from __future__ import annotations

import functools
from typing import Any

VOCAB = 64
HIDDEN = 16


# ---------------------------------------------------------------------------------------------
# Hugging Face architectures (small configurations)


def deberta_v2() -> Any:
    """`DebertaV2ForSequenceClassification` shaped like DeBERTa-v3-base (12 layers; relative attention
    with `rel_embeddings` and `encoder.LayerNorm`; `pooler.dense`; `classifier`), hidden 16."""
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    config = DebertaV2Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=12, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, type_vocab_size=0, relative_attention=True, position_buckets=16,
        norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
        max_relative_positions=-1, pooler_hidden_size=HIDDEN, num_labels=2,
    )
    return DebertaV2ForSequenceClassification(config)


def _llama(tie: bool) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, tie_word_embeddings=tie,
    )
    return LlamaForCausalLM(config)


def llama() -> Any:
    """`LlamaForCausalLM`, 4 layers (as the FTS torchtitan example), untied `lm_head`."""
    return _llama(tie=False)


def llama_tied() -> Any:
    """`LlamaForCausalLM`, 4 layers, `lm_head.weight` tied to `model.embed_tokens.weight`."""
    return _llama(tie=True)


def t5() -> Any:
    """`T5ForConditionalGeneration`, 2+2 blocks; `shared` tied to both `embed_tokens` and `lm_head`."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=VOCAB, d_model=HIDDEN, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, tie_word_embeddings=True,
        decoder_start_token_id=0, pad_token_id=0,
    )
    return T5ForConditionalGeneration(config)


def gpt2() -> Any:
    """`GPT2LMHeadModel`, 2 blocks; `lm_head.weight` tied to `transformer.wte.weight`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=HIDDEN, n_layer=2, n_head=2, n_inner=32,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


# ---------------------------------------------------------------------------------------------
# Toy torch models


def hf_fsdp_plan(model: Any) -> dict[str, str]:
    """The model's own FSDP plan as transformers resolves it for data parallelism (dp_size 2),
    from the attributes `_resolve_parallel_plans` reads (a DistributedConfig needs a process group)."""
    from types import SimpleNamespace

    cfg = SimpleNamespace(tp_plan=None, ep_plan=None, fsdp_plan=None, tp_size=1, ep_size=1, dp_size=2,
                          _validate_resolved_ep_plan=lambda plan: None)
    return model._resolve_parallel_plans(cfg)[2]


def linear11() -> Any:
    """`Sequential` of 11 `Linear(8, 8)`: indices 1 and 10 coexist (`model.1` catches `model.10`)."""
    from torch import nn

    return nn.Sequential(*(nn.Linear(8, 8) for _ in range(11)))


def shared_linear() -> Any:
    """`Sequential(Linear, Linear, Linear)` whose layer 1 reuses layer 0's weight: `1.weight` is an alias
    of `0.weight` (absent from `named_parameters()`)."""
    from torch import nn

    seq = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 4))
    seq[1].weight = seq[0].weight
    return seq


def shared_module() -> Any:
    """`Sequential(Linear, ReLU, <the same Linear again>, Linear)`: a module registered twice, so
    `2.weight` and `2.bias` are aliases of `0.weight` and `0.bias`."""
    from torch import nn

    shared = nn.Linear(8, 8)
    return nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(8, 2))


def two_parents() -> Any:
    """A `Linear` registered under two parents: `enc.0` and `dec.1` are the same module object."""
    from torch import nn

    shared = nn.Linear(8, 8)
    root = nn.Module()
    root.enc = nn.Sequential(shared, nn.ReLU(), nn.Linear(8, 8))
    root.dec = nn.Sequential(nn.Linear(8, 8), shared)
    root.head = nn.Linear(8, 2)
    return root


@functools.cache
def _toy_classes() -> dict[str, type]:
    import torch
    from torch import nn

    class Block(nn.Module):
        """A block that registers a parameter of its own next to nested containers."""

        def __init__(self) -> None:
            super().__init__()
            self.parent_param = nn.Parameter(torch.zeros(8))
            self.mixer = nn.ModuleDict({"attn": nn.Linear(8, 8), "ffn": nn.Sequential(nn.Linear(8, 16), nn.ReLU(),
                                                                                      nn.Linear(16, 8))})
            self.norm = nn.LayerNorm(8)

    class Nested(nn.Module):
        """Encoder of two nested blocks, a decoder `ModuleDict` with a conv, and two top-level parameters."""

        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))
            self.scale_shift = nn.Parameter(torch.zeros(1))  # `scale` is a prefix of this name
            self.encoder = nn.Sequential(Block(), Block())
            self.decoder = nn.ModuleDict({"conv": nn.Conv1d(8, 8, 3), "head": nn.Linear(8, 2, bias=False)})

    class Linear(nn.Module):
        """Not `torch.nn.Linear`, only named like it: a class policy for `torch.nn.Linear` must skip it."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(8, 8))

    class ScaledLinear(nn.Linear):
        """A subclass of `torch.nn.Linear`: torch's class policies wrap it (isinstance)."""

    Block.__qualname__ = Block.__name__ = "NestedBlock"
    Nested.__qualname__ = Nested.__name__ = "Nested"
    Block.__module__ = Nested.__module__ = Linear.__module__ = ScaledLinear.__module__ = __name__
    return {"Block": Block, "Nested": Nested, "Linear": Linear, "ScaledLinear": ScaledLinear}


def __getattr__(name: str) -> Any:
    """`tests.models.NestedBlock` / `tests.models.Nested` import like any class path (built lazily: no torch
    at import time)."""
    classes = {"NestedBlock": "Block", "Nested": "Nested"}
    if name in classes:
        return _toy_classes()[classes[name]]
    raise AttributeError(name)


def name_clash() -> Any:
    """`torch.nn.Linear`, a `tests.models.Linear` that only shares its name, a subclass of `nn.Linear`, a norm."""
    from torch import nn

    classes = _toy_classes()
    return nn.Sequential(nn.Linear(8, 8), classes["Linear"](), classes["ScaledLinear"](8, 8), nn.LayerNorm(8))


def nested() -> Any:
    """A nested toy model: `scale`, `scale_shift`, `encoder.{0,1}.(parent_param|mixer.attn|mixer.ffn.{0,2}|norm)`,
    `decoder.conv`, `decoder.head` (no bias)."""
    return _toy_classes()["Nested"]()


# ---------------------------------------------------------------------------------------------
# LightningModule wrappers (what FinetuningScheduler sees)


@functools.cache
def _wrapper_class() -> type:
    import lightning.pytorch as pl
    import torch

    class ScheduleTarget(pl.LightningModule):
        """A LightningModule holding the model under test as `self.model` (names `model.*`)."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.1)

        def train_dataloader(self) -> Any:
            return [torch.zeros(1)]

    ScheduleTarget.__qualname__ = "ScheduleTarget"
    ScheduleTarget.__module__ = __name__
    return ScheduleTarget


def wrap(model: Any) -> Any:
    """`model` inside a minimal LightningModule, as attribute `model`."""
    return _wrapper_class()(model)


def deberta_v2_lm() -> Any:
    return wrap(deberta_v2())


def llama_lm() -> Any:
    return wrap(llama())


def llama_tied_lm() -> Any:
    return wrap(llama_tied())


def t5_lm() -> Any:
    return wrap(t5())


def gpt2_lm() -> Any:
    return wrap(gpt2())


def linear11_lm() -> Any:
    return wrap(linear11())


def shared_linear_lm() -> Any:
    return wrap(shared_linear())


def shared_module_lm() -> Any:
    return wrap(shared_module())


def nested_lm() -> Any:
    return wrap(nested())


FACTORIES = {f.__name__: f for f in (deberta_v2, llama, llama_tied, t5, gpt2, linear11, shared_linear, shared_module,
                                     nested, deberta_v2_lm, llama_lm, llama_tied_lm, t5_lm, gpt2_lm, linear11_lm,
                                     shared_linear_lm, shared_module_lm, nested_lm)}
