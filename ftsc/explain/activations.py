"""Activation estimate for transformer blocks: an estimate, and labelled as one everywhere.

Input: a `ModelGraph`, the phase's trainable parameters, `--batch`/`--seq`, the compute dtype
and whether activation checkpointing applies. Output: bytes per rank. Never imports torch.

Blocks are the repeated children of a `ModuleList` (`layers.0`, `layers.1`, ...), in order;
the hidden size is the most common input width of their 2-D weights. Per block, with 16-bit
activations, `34·s·b·h` bytes are saved for backward (Korthikanti et al. 2022, selective
recompute / flash attention, no `s²` term), `2·s·b·h` under activation checkpointing; scaled by
the compute dtype's width. Blocks below the lowest trainable parameter save nothing for
backward (nothing below them needs a gradient), so a phase that trains only the top blocks
pays only for those. "Trains" means: receives a gradient. Under FSDP1 a frozen parameter that
shares a FlatParameter with a trainable one does (in forward it is a view of the FlatParameter,
which requires grad), so the caller passes every member of such a unit; measured on an H200, a
transformers Llama and a ViT whose root unit holds the embeddings and the head store the
activations of every block under FSDP1 even when only the head trains.

A transformers language model's head adds its logits: `b·s·V` float32 values saved for the loss
(transformers computes the cross-entropy in float32), V the rows of the model's output
embeddings (manifest key `hf`); at the peak of backward `LOSS_BACKWARD_TENSORS` more such
tensors are alive (the log-softmax, and the gradients of both).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ftsc.explain.memory import itemsize
from ftsc.model.graph import ModelGraph, parent_of, within

MODULE_LIST = "torch.nn.modules.container.ModuleList"
LOSS_BACKWARD_TENSORS = 3  # logits-sized float32 tensors the loss's backward adds at the peak


def transformer_blocks(graph: ModelGraph) -> tuple[list[str], int]:
    """The repeated blocks (module FQNs in order) of the largest `ModuleList`, and the hidden size.

    Example:
        >>> g = ModelGraph.from_names({"layers.0.w": [8, 4], "layers.1.w": [8, 4], "head.w": [4]},
        ...     classes={"layers": ("torch.nn.modules.container.ModuleList",)})
        >>> transformer_blocks(g)
        (['layers.0', 'layers.1'], 4)
    """
    children: dict[str, list[str]] = {}
    for m in graph.modules[1:]:
        children.setdefault(parent_of(m), []).append(m)
    best: list[str] = []
    for m, kids in children.items():
        if (len(kids) > max(len(best), 1) and graph.is_instance(m, MODULE_LIST)
                and len({graph.module_class(c) for c in kids}) == 1):
            best = kids
    if not best:
        return [], 0
    widths = Counter(e.shape[-1] for e in graph.manifest.parameters if len(e.shape) == 2 and within(e.name, best[0]))
    hidden = max(widths.items(), key=lambda kv: (kv[1], kv[0]))[0] if widths else 0
    return best, hidden


def logits_width(graph: ModelGraph) -> int:
    """The vocabulary size of a transformers language-model head (rows of its output embeddings), else 0.

    Example:
        >>> g = ModelGraph.from_names({"lm_head.weight": [32, 4]})
        >>> logits_width(g)
        0
    """
    hf = graph.manifest.extra.get("hf")
    head = hf.get("output_embeddings") if isinstance(hf, dict) else None
    if not isinstance(head, str) or not graph.has_param(f"{head}.weight"):
        return 0
    shape = graph.param_entries[graph.primary(f"{head}.weight")].shape
    return int(shape[0]) if len(shape) == 2 else 0


def head_bytes(graph: ModelGraph, trainable: frozenset[str], *, batch: int, seq: int) -> int:
    """Float32 logits saved for the loss while anything trains (0 for models without an LM head)."""
    return 4 * batch * seq * logits_width(graph) if trainable else 0


def activation_bytes(graph: ModelGraph, trainable: frozenset[str], *, batch: int, seq: int,
                     compute_dtype: str, checkpointing: bool, blocks: Sequence[str] | None = None,
                     hidden: int | None = None) -> int:
    """Estimated bytes of activations saved for backward on one rank while `trainable` receives
    gradients (blocks only; the head's logits are `head_bytes`).

    Example:
        >>> g = ModelGraph.from_names({"layers.0.w": [8, 4], "layers.1.w": [8, 4]},
        ...     classes={"layers": ("torch.nn.modules.container.ModuleList",)})
        >>> activation_bytes(g, frozenset({"layers.1.w"}), batch=1, seq=2, compute_dtype="bfloat16",
        ...                  checkpointing=False)
        272
    """
    if blocks is None or hidden is None:
        blocks, hidden = transformer_blocks(graph)
    if not blocks or not trainable:
        return 0
    index = {b: i for i, b in enumerate(blocks)}
    last = [-1] * len(blocks)  # registration index of each block's last parameter
    lowest = len(graph.params)
    for i, p in enumerate(graph.params):
        if p in trainable:
            lowest = min(lowest, i)
        owner = parent_of(p)
        while owner and owner not in index:
            owner = parent_of(owner)
        if owner in index:
            last[index[owner]] = i
    stored = sum(1 for i in last if i >= lowest)
    per_block = (2 if checkpointing else 34) * seq * batch * hidden
    return stored * per_block * itemsize(compute_dtype) // 2
