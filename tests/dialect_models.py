"""Models the freeze-dialect tests and truth recordings run on: small transformers configs.

Each factory takes no arguments and returns a freshly built transformers model (a
`--model tests/dialect_models.py:<factory>` target; built under `with torch.device("meta"):` by
ftsc and by tests/record_dialect_truth.py). Sizes are tiny (hidden 16) but layer counts are real
enough for layer-index surprises (`layers.1` inside `layers.11` needs 12 layers). torch and
transformers are imported inside the functions only.
"""

from __future__ import annotations

from typing import Any

VOCAB = 64
HIDDEN = 16
_COMMON = {"vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": 32, "num_attention_heads": 2,
           "num_key_value_heads": 1, "max_position_embeddings": 64}


def llama12() -> Any:
    """`LlamaForCausalLM`, 12 layers, untied `lm_head`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(num_hidden_layers=12, tie_word_embeddings=False, **_COMMON))


def qwen2_4() -> Any:
    """`Qwen2ForCausalLM`, 4 layers, tied embeddings (q/k/v projections carry biases)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return Qwen2ForCausalLM(Qwen2Config(num_hidden_layers=4, tie_word_embeddings=True, **_COMMON))


def mistral2() -> Any:
    """`MistralForCausalLM`, 2 layers."""
    from transformers import MistralConfig, MistralForCausalLM

    return MistralForCausalLM(MistralConfig(num_hidden_layers=2, tie_word_embeddings=False, **_COMMON))


def llava() -> Any:
    """`LlavaForConditionalGeneration`: a 2-layer CLIP vision tower, a projector and a 4-layer Llama."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              image_size=8, patch_size=4, projection_dim=HIDDEN)
    text = LlamaConfig(num_hidden_layers=4, tie_word_embeddings=False, **_COMMON)
    return LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_index=3))
