"""ftsc: a fine-tuning schedule compiler and static FSDP wrap-alignment analyzer.

The pipeline, one module per stage: `parse` (DSL text -> tree), `build_ir` (tree -> IR),
`frontend` (any file -> IR), `analyze` (IR -> diagnostics), `fmt`/`convert` (IR -> text).
Importing ftsc never imports torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "check_file", "check_text", "load"]


def load(path: str):  # type: ignore[no-untyped-def]
    """Read a schedule file (`.ftsc`, FTS YAML or LightningCLI config) into the IR."""
    from ftsc.frontend import load_file

    return load_file(path)


def check_text(text: str, path: str = "<input>.ftsc", graph=None, *,  # type: ignore[no-untyped-def]
               lightning_config=None):
    """Check schedule text and return its diagnostics, as `ftsc check` does (`ftsc.check.check_text`).

    Example:
        >>> [d.code for d in check_text("phase 1 { thaw a }")]
        ['FTS201']
    """
    from ftsc.check import check_text as check

    return check(text, path, graph, lightning_config=lightning_config)


def check_file(path: str, graph=None, *, lightning_config=None):  # type: ignore[no-untyped-def]
    """Check a schedule file and return its diagnostics, as `ftsc check` does (`ftsc.check.check_file`).

    `graph` is the model: `ftsc.model.load_graph(target, manifest)` or, for a live module,
    `ftsc.model.ModelGraph(ftsc.model.build.extract(module))`.
    """
    from ftsc.check import check_file as check

    return check(path, graph, lightning_config=lightning_config)
