"""Read-only context every analysis pass receives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftsc import ir
from ftsc.analyze.resolve import Resolution
from ftsc.frontend import InputKind
from ftsc.model.graph import ModelGraph

if TYPE_CHECKING:
    from ftsc.shard import FSDP1Analysis, FSDP2Analysis
from ftsc.source import SourceFile


@dataclass(frozen=True, slots=True)
class AnalysisContext:
    """The file being checked, how it was written, and, with a model, its graph and resolution.

    `resolution` (and `fsdp1`/`fsdp2` when the schedule has an `fsdp`/`fsdp2` block) are filled by `analyze()`
    before the passes run whenever `graph` is given.
    """

    source: SourceFile
    kind: InputKind
    graph: ModelGraph | None = None
    resolution: Resolution | None = None
    fsdp1: FSDP1Analysis | None = None
    fsdp2: FSDP2Analysis | None = None

    @staticmethod
    def example(text: str, params: Sequence[str], path: str = "example.ftsc",
                aliases: Mapping[str, str] | None = None) -> tuple[ir.Schedule, AnalysisContext]:
        """`(schedule, context)` for schedule `text` against a model made of `params` (doc examples)."""
        from ftsc.analyze import prepare
        from ftsc.frontend import load_text

        loaded = load_text(SourceFile(path, text))
        assert loaded.schedule is not None, loaded.diagnostics
        graph = ModelGraph.from_names(params, aliases)
        return loaded.schedule, prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))

    @property
    def fts_semantics(self) -> bool:
        """True for FTS YAML inputs, whose options come from the callback, not the file."""
        return self.kind is not InputKind.DSL
