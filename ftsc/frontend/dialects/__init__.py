"""Freeze dialects: other projects' fine-tuning configs read as a one-phase schedule plus a wrap plan.

Input: a loaded YAML document (`YNode`) and, once known, the model graph. Output: which dialect
a document is (`detect`, by content), and the `Imported` schedule (`load`). Each dialect is one
module with `NAME`, `detect(root)` and `load(source, root, graph)`; add a module to `DIALECTS`
to add a dialect. Never imports torch.
"""

from __future__ import annotations

from types import ModuleType

from ftsc.frontend.dialects import axolotl, llama_factory
from ftsc.frontend.dialects.common import Imported
from ftsc.frontend.yaml_nodes import YNode
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile

DIALECTS: dict[str, ModuleType] = {m.NAME: m for m in (axolotl, llama_factory)}


def detect(root: YNode | None) -> str | None:
    """The dialect a YAML document is written in, by its keys (None for none)."""
    if root is None or not isinstance(root.value, dict):
        return None
    return next((name for name, module in DIALECTS.items() if module.detect(root)), None)


def load(name: str, source: SourceFile, root: YNode, graph: ModelGraph | None) -> Imported:
    """Read `root` as dialect `name` against `graph` (None: what can be said without a model)."""
    return DIALECTS[name].load(source, root, graph)


__all__ = ["DIALECTS", "Imported", "detect", "load"]
