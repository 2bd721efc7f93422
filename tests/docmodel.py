"""The model the rule docs and the model UI tests are written against (torch-free).

Parameter names: `model.embed`, `model.encoder.layer.{0..11}` (DeBERTa-style blocks),
`model.layers.{0..11}`, `model.body`, `model.head`; `model.lm_head.weight` is tied to
`model.embed.weight`; `model.layers` and `model.encoder.layer` are ModuleLists.
"""

from __future__ import annotations

from ftsc.model.graph import ModelGraph

HIDDEN = 16


def _names() -> dict[str, tuple[int, ...]]:
    h = HIDDEN
    shapes: dict[str, tuple[int, ...]] = {"model.embed.weight": (100, h)}
    for i in range(12):
        block = f"model.encoder.layer.{i}"
        for sub in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                    "intermediate.dense", "output.dense"):
            shapes[f"{block}.{sub}.weight"] = (h, h)
            shapes[f"{block}.{sub}.bias"] = (h,)
    for i in range(12):
        shapes[f"model.layers.{i}.weight"] = (h, h)
        shapes[f"model.layers.{i}.bias"] = (h,)
    for name in ("body", "head"):
        shapes[f"model.{name}.weight"] = (h, h)
        shapes[f"model.{name}.bias"] = (h,)
    return shapes


def doc_graph() -> ModelGraph:
    """A fresh `ModelGraph` of the doc model."""
    module_list = ("torch.nn.modules.container.ModuleList", "torch.nn.modules.module.Module")
    return ModelGraph.from_names(_names(), aliases={"model.lm_head.weight": "model.embed.weight"},
                                 classes={"model.layers": module_list, "model.encoder.layer": module_list})


MIXED_DTYPE_RULES = ("FTS306", "FTS408")  # their docs need parameters of two dtypes


def mixed_dtype_graph() -> ModelGraph:
    """The doc model with `model.head` in `bfloat16` (the rest `float32`)."""
    from dataclasses import replace

    m = doc_graph().manifest
    params = tuple(p._replace(dtype="bfloat16") if p.name.startswith("model.head.") else p for p in m.parameters)
    return ModelGraph(replace(m, parameters=params))
