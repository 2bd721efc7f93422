"""Models and schedules of the explain memory benchmark (`bench_explain_memory.py`).

Input: nothing (small transformers configs written out here; no download). Output: model
factories usable as `--model benchmarks/explain_models.py:llama` and the phase schedules, as
regexes over parameter names, that the benchmark trains and writes into `.ftsc` files for
`ftsc explain`. Never touches an accelerator by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LLAMA = {"vocab_size": 32000, "hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 8,
         "num_attention_heads": 16, "num_key_value_heads": 4, "max_position_embeddings": 256,
         "tie_word_embeddings": False}
VIT = {"image_size": 224, "patch_size": 16, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
       "intermediate_size": 3072, "num_labels": 10}


def llama() -> Any:
    """A transformers `LlamaForCausalLM` from a small config (about 168M parameters)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(**LLAMA))


def vit() -> Any:
    """A transformers `ViTForImageClassification` from a ViT-Base-sized config (about 86M parameters)."""
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig(**VIT))


@dataclass(frozen=True, slots=True)
class Bench:
    """One benchmark model: its factory, FSDP unit class and two schedules.

    `partial` thaws parts of FSDP units (for FSDP1 `use_orig_params=True`, FSDP2, DDP and one
    device); `aligned` thaws whole units only (FSDP1 `use_orig_params=False` needs that). Each
    schedule lists, per phase, the regexes it adds (phases are cumulative, as in FTS).
    """

    name: str
    factory: str
    layer_class: str
    layers: str
    partial: tuple[tuple[str, ...], ...]
    aligned: tuple[tuple[str, ...], ...]


def _last(n: int) -> int:
    return n - 1


# transformers 5.24 names ViT's blocks `vit.layers.N`; earlier releases `vit.encoder.layer.N`.
_VL = r"vit\.(?:encoder\.layer|layers)"

BENCHES = {
    "llama": Bench(
        name="llama", factory="llama",
        layer_class="transformers.models.llama.modeling_llama.LlamaDecoderLayer",
        layers=r"model\.layers\.\d+",
        partial=((r"lm_head\.weight", r"model\.norm\.weight"),
                 (rf"model\.layers\.{_last(LLAMA['num_hidden_layers'])}\..*",),
                 (r"model\.layers\.[0-6]\.self_attn\..*",)),
        aligned=((r"lm_head\.weight", r"model\.norm\.weight", r"model\.embed_tokens\.weight"),
                 (rf"model\.layers\.{_last(LLAMA['num_hidden_layers'])}\..*",),
                 (r"model\.layers\.[0-6]\..*",)),
    ),
    "vit": Bench(
        name="vit", factory="vit",
        layer_class="transformers.models.vit.modeling_vit.ViTLayer",
        layers=_VL + r"\.\d+",
        partial=((r"classifier\..*", r"vit\.layernorm\..*"),
                 (_VL + rf"\.{_last(VIT['num_hidden_layers'])}\..*",),
                 (_VL + r"\.([0-9]|10)\.attention\..*",)),
        aligned=((r"classifier\..*", r"vit\.layernorm\..*", r"vit\.embeddings\..*"),
                 (_VL + rf"\.{_last(VIT['num_hidden_layers'])}\..*",),
                 (_VL + r"\.([0-9]|10)\..*",)),
    ),
}
