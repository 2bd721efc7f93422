"""Differential test: ftsc resolves schedules exactly as FinetuningScheduler (FTS) itself does.

Oracle: FTS's own code, run for real. Each case builds a tiny model (tests/models.py), wraps it
in a LightningModule as `model`, and runs `lightning.Trainer.fit` with a `FinetuningScheduler`
subclass whose `setup` stops right after FTS's own `setup` returns. By then FTS has loaded the
schedule file with its YAML loader, expanded every pattern against
`pl_module.named_parameters()` (`ScheduleParsingMixin._parse_phase`: exact name first, else
`re.match`; shared-parameter aliases pruned with a warning), and run `_validate_phases_disjoint`
(or, with no schedule, generated the implicit schedule through the strategy adapter's
`gen_ft_schedule` -> `ScheduleImplMixin._gen_ft_schedule_impl` and validated it). The expanded
lists are read back from the callback's `ft_schedule`, which `_parse_phase` rewrites in place, so
they are available even when `_validate_phases_disjoint` raises afterwards. No FTS logic is
re-implemented here; the only post-processing is an order-preserving de-duplication of each phase
(ftsc keeps a parameter once per phase; FTS keeps repeats and then reports them as "not disjoint").

ftsc side: `ModelGraph(extract(module))` of the same LightningModule (extracted before FTS freezes
it), `load_text(SourceFile("*.yaml", text))`, `resolve_schedule`, `check_file` and
`default_groups(graph, "fts")`.

Verdicts compared where FTS raises:
- `... did not match any named parameter in the model.`  <->  ftsc FTS202 (same pattern, same phase);
- `Phases are not disjoint ...`                         <->  ftsc FTS203 (same parameters), except a
  parameter matched twice inside one phase: FTS's known false positive, where ftsc reports nothing;
- `Pruning explicitly specified shared parameter ...` (a warning)  <->  ftsc FTS213 (same alias).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("finetuning_scheduler")
pytest.importorskip("transformers")
pytest.importorskip("lightning")

import lightning.pytorch as pl
import torch
from finetuning_scheduler import FinetuningScheduler, FTSCheckpoint, FTSEarlyStopping

from ftsc.analyze.resolve import Resolution, resolve_schedule
from ftsc.cli import check_file
from ftsc.diagnostics import Diagnostic, Severity
from ftsc.frontend import load_text
from ftsc.generate import default_groups
from ftsc.model.build import build, extract
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile
from tests import models

pytestmark = [pytest.mark.torch]

CORPUS = Path(__file__).resolve().parent / "data" / "fts_corpus"
MODELS_FILE = Path(models.__file__).resolve()

# ---------------------------------------------------------------------------------------------
# The oracle: FinetuningScheduler's own setup, stopped right after it
# ---------------------------------------------------------------------------------------------

_NO_MATCH = re.compile(r"The parameter or regex '(?P<pattern>.*)' specified in phase (?P<phase>\d+) of the provided "
                       r"explicit schedule did not match any named parameter in the model\.")
_NOT_DISJOINT = re.compile(r"Phases are not disjoint\. The following parameters are specified in multiple phases: "
                           r"(?P<params>.*)", re.DOTALL)
_PRUNED = re.compile(r"Pruning explicitly specified shared parameter (?P<alias>\S+) from provided schedule "
                     r"\(it will be thawed  when its registered source parameter (?P<primary>\S+) is thawed\.")


class _SetupDone(Exception):
    """Raised once FinetuningScheduler.setup has returned: stops `fit` before any training."""


class _StopAfterSetup(FinetuningScheduler):
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        raise _SetupDone


@dataclass
class FtsOutcome:
    """What FTS made of a schedule."""

    phases: dict[int, list[str]]  # `ft_schedule[d]["params"]` as `_parse_phase` left it (repeats kept), FTS's order
    expanded: list[int]  # the phases `_parse_phase` expanded (all, unless a pattern failed), in FTS's order
    error: str | None = None  # the MisconfigurationException's text (or `re.error: ...`)
    pruned: dict[str, str] = field(default_factory=dict)  # alias -> primary, from the pruning warnings


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def run_fts(module: torch.nn.Module, schedule: Path | None, tmp_path: Path) -> FtsOutcome:
    """Run FinetuningScheduler's setup on `module` with `schedule` (None: the implicit schedule)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    callback = _StopAfterSetup(ft_schedule=str(schedule) if schedule else None, log_dir=str(tmp_path))
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path),
                         callbacks=[callback, FTSEarlyStopping(monitor="val_loss"),
                                    FTSCheckpoint(monitor="val_loss", dirpath=str(tmp_path))])
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trainer.fit(module)
        except _SetupDone:
            pass
        except MisconfigurationException as err:
            error = str(err)
        except re.error as err:  # FTS lets an invalid pattern's error escape unwrapped
            error = f"re.error: {err}"
        else:  # pragma: no cover - the callback always raises
            raise AssertionError("FinetuningScheduler.setup did not run")
    sched = callback.ft_schedule
    assert isinstance(sched, dict), f"FTS did not load the schedule: {error}"
    phases = {int(d): list(sched[d].get("params", None) or []) for d in sched}
    order = list(phases)  # `_validate_ft_sched` walks the phases in mapping order
    expanded = order
    if error and (m := _NO_MATCH.search(error)):
        expanded = order[: order.index(int(m["phase"]))]
    elif error and error.startswith("re.error"):
        # The failing phase still holds its unexpanded patterns (`_parse_phase` assigns at the end).
        expanded = order[: next(i for i, d in enumerate(order) if not all(map(_compiles, phases[d])))]
    pruned = {m["alias"]: m["primary"] for w in caught if (m := _PRUNED.search(str(w.message)))}
    return FtsOutcome(phases=phases, expanded=expanded, error=error, pruned=pruned)


def dedupe(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


@dataclass
class FtscOutcome:
    resolution: Resolution
    diagnostics: list[Diagnostic]
    graph: ModelGraph

    def codes(self, code: str) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.code == code]


def run_ftsc(module: torch.nn.Module, name: str, text: str) -> FtscOutcome:
    graph = ModelGraph(extract(module))
    loaded = load_text(SourceFile(name, text))
    assert loaded.schedule is not None, [(d.code, d.message) for d in loaded.diagnostics]
    return FtscOutcome(resolution=resolve_schedule(loaded.schedule, graph),
                       diagnostics=check_file(loaded, graph), graph=graph)


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    factory: str  # a LightningModule factory in tests/models.py
    schedule: str  # YAML text, or `corpus:<file>` for a file of tests/data/fts_corpus used verbatim
    # "ok" | "no-match" | "invalid-regex" | "not-disjoint" | "fts-false-positive" | "not-disjoint+fp"
    verdict: str = "ok"
    pruned: tuple[str, ...] = ()  # shared-parameter aliases FTS prunes (ftsc: FTS213)
    source: str = ""  # where the schedule comes from

    def text(self) -> str:
        if self.schedule.startswith("corpus:"):
            return (CORPUS / self.schedule.removeprefix("corpus:")).read_text(encoding="utf-8")
        return self.schedule


def _yaml(*phases: list[str]) -> str:
    """An FTS YAML schedule, patterns single-quoted (as users write regexes with backslashes)."""
    out = []
    for i, params in enumerate(phases):
        out.append(f"{i}:\n  params:{' []' if not params else ''}\n")
        out.extend("  - '" + p.replace("'", "''") + "'\n" for p in params)
    return "".join(out)


# Resolved phases must be equal (and FTS must accept the schedule, or reject it only as stated).
CASES: list[Case] = [
    # --- DeBERTa-v2/v3 (12 layers: `layer.1` is a prefix of `layer.10`/`layer.11`) -----------------
    Case("deberta-rte_boolq", "deberta_v2_lm", "corpus:config_RteBoolqModule_ft_schedule_deberta_base.yaml",
         source="fts_examples RteBoolqModule_ft_schedule_deberta_base.yaml, verbatim ({0,11} quantifier)"),
    Case("deberta-rte_boolq_fsdp", "deberta_v2_lm", "corpus:config_RteBoolqModule_ft_schedule_deberta_base_fsdp.yaml",
         source="fts_examples RteBoolqModule_ft_schedule_deberta_base_fsdp.yaml, verbatim (alternations)"),
    Case("deberta-explicit_reinit_lr", "deberta_v2_lm", "corpus:config_advanced_reinit_lr_explicit_reinit_lr.yaml",
         source="fts_examples advanced/reinit_lr/explicit_reinit_lr.yaml, verbatim"),
    Case("deberta-explicit_reinit_optim_lr", "deberta_v2_lm",
         "corpus:config_advanced_reinit_optim_lr_explicit_reinit_optim_lr.yaml",
         source="fts_examples advanced/reinit_optim_lr/explicit_reinit_optim_lr.yaml, verbatim"),
    Case("deberta-fsdp_tutorial_full", "deberta_v2_lm", _yaml(
        ["model.classifier.*"],
        ["model.pooler.dense.*", "model.deberta.encoder.layer.11.(output|attention|intermediate).*"],
        ["model.deberta.encoder.layer.([0-9]|10).(output|attention|intermediate).*",
         "model.deberta.encoder.LayerNorm.bias", "model.deberta.encoder.LayerNorm.weight",
         "model.deberta.encoder.rel_embeddings.weight",
         "model.deberta.embeddings.LayerNorm.bias", "model.deberta.embeddings.LayerNorm.weight",
         "model.deberta.embeddings.word_embeddings.weight"]),
         source="seeds fsdp_scheduled_fine_tuning.rst, with the commented-out embeddings restored"),
    Case("deberta-prefix_layer_1", "deberta_v2_lm", _yaml(
        ["model.classifier.weight", "model.classifier.bias", "model.pooler"],
        ["model.deberta.encoder.layer.1"],  # prefix: layers 1, 10 and 11
        ["model.deberta.encoder.layer.[2-9].attention", "model.deberta.encoder.layer.[2-9].(intermediate|output)"],
        ["model.deberta.encoder.layer.0.", "model.deberta.encoder.rel_embeddings.weight",
         "model.deberta.encoder.LayerNorm"]),
         source="prefix patterns (`layer.1` catches `layer.10`, `layer.11`); embeddings unscheduled"),
    Case("deberta-anchors_and_classes", "deberta_v2_lm", _yaml(
        [r"model.classifier.(weight|bias)$", "model.pooler.dense.weight$", "model.pooler.dense.bias"],
        [r"model\.deberta\.encoder\.layer\.1[01]\..*"],
        [r"model.deberta.encoder.layer.\d.output.LayerNorm.\w+$", r"model.deberta.encoder.layer.\d\.attention.self"],
        [r"model.deberta.encoder.layer.\d{1}\.(intermediate|output.dense|attention.output)",
         r"model.deberta.(encoder|embeddings).(rel_embeddings|LayerNorm|word_embeddings).*"]),
         source="`$` anchors, escaped dots, \\d{1}, alternations"),
    # --- Llama ------------------------------------------------------------------------------------
    Case("llama-torchtitan_adapted", "llama_lm", _yaml(
        ["model.lm_head.weight", "model.model.norm.*"],
        ["model.model.layers.3.(mlp|post_attention_layernorm|self_attn.[qkvo]_proj.*|input_layernorm).*"],
        ["model.model.layers.[0-2].(mlp|post_attention_layernorm|self_attn.[qkvo]_proj.*|input_layernorm).*",
         "model.model.embed_tokens.weight"]),
         source="fts_examples model_parallel llama_ft_schedule.yaml, names mapped torchtitan -> HF Llama"),
    Case("llama-quantifiers", "llama_lm", _yaml(
        ["model.lm_head.weight", "model.model.norm.weight"],
        [r"model.model.layers.[23].mlp.(gate|up|down)_proj.weight$", r"model.model.layers.[23].\w+_layernorm"],
        ["model.model.layers.[23].self_attn", r"model.model.layers.[01]{1,2}\.mlp",
         r"model.model.layers.[01].(input|post_attention)_layernorm.weight"],
        [r"model.model.layers.{0,3}[01].self_attn.[qk]_proj", r"model.model.layers.[01].self_attn.[vo]_proj.weight",
         "model.model.embed_tokens"]),
         source="`{m,n}` quantifiers (incl. `.{0,3}` on a wildcard), `$`, classes"),
    Case("llama_tied-lm_head_alias", "llama_tied_lm", _yaml(
        ["model.lm_head.weight", "model.model.norm.weight"],
        ["model.model.layers.3.*"],
        [r"model.model.layers.[0-2]\.", "model.model.embed_tokens.weight"]),
         pruned=("model.lm_head.weight",), source="tied lm_head named in phase 0: pruned, thaws in phase 2"),
    # --- T5 (shared embedding tied to encoder/decoder embed_tokens and lm_head) -------------------
    Case("t5-decoder_first", "t5_lm", _yaml(
        ["model.decoder.final_layer_norm.weight", "model.decoder.block.1.*"],
        ["model.decoder.block.0.layer.[12].*", "model.decoder.block.0.layer.0.SelfAttention.(q|k|v|o).weight",
         "model.decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
         "model.decoder.block.0.layer.0.layer_norm.weight"],
        ["model.encoder.*"],
        ["model.shared.weight", "model.encoder.embed_tokens.weight"]),
         pruned=("model.encoder.embed_tokens.weight",), source="alias named next to its primary (FTS213 info)"),
    Case("t5-lm_head_alias", "t5_lm", _yaml(
        ["model.lm_head.weight", "model.decoder.final_layer_norm", "model.encoder.final_layer_norm"],
        [r"model.(en|de)coder.block.1\."],
        [r"model.(en|de)coder.block.0.layer.\d.(SelfAttention|EncDecAttention|DenseReluDense)",
         r"model.(en|de)coder.block.0.layer.\d.layer_norm"],
        ["model.decoder.embed_tokens.weight", "model.shared"]),
         pruned=("model.lm_head.weight", "model.decoder.embed_tokens.weight"),
         source="two tied aliases named, one in the primary's phase"),
    # --- GPT-2 (lm_head tied to wte) --------------------------------------------------------------
    Case("gpt2-blocks", "gpt2_lm", _yaml(
        ["model.lm_head.weight", "model.transformer.ln_f.*"],
        ["model.transformer.h.1.*"],
        ["model.transformer.h.0.(attn|mlp).c_.*", "model.transformer.h.0.ln_[12].(weight|bias)"],
        ["model.transformer.w[tp]e.weight"]),
         pruned=("model.lm_head.weight",), source="tied lm_head pruned; character classes"),
    # --- toy models ---------------------------------------------------------------------------------
    Case("linear11-prefix_1_catches_10", "linear11_lm", _yaml(
        ["model.1"],  # model.1.* and model.10.*
        ["model.[2-9].weight", "model.[2-9].bias"],
        ["model.0.*"]), source="anatomy §1.5: `model.1` matches `model.10`"),
    Case("linear11-fts_intro_adapted", "linear11_lm", _yaml(
        ["model.10.bias", "model.10.weight"],
        ["model.9.*", "model.8.bias", "model.8.weight"],
        [r"model.[0-7]\..*"]), source="seeds fts_introduction.rst (3-phase variant), 4 -> 11 layers"),
    Case("linear11-anchors_quantifiers", "linear11_lm", _yaml(
        [r"model.\d{2}\..*", "model.9.weight$"],
        ["model.9.bias", "model.[5-8].(weight|bias)$"],
        [r"model.[1-4]\."],
        ["model.0.weight", "model.0.bias"]), source="`\\d{2}`, `$` (`model.1.weight$` would not catch model.10)"),
    Case("shared_linear-alias", "shared_linear_lm", _yaml(
        ["model.2.*"],
        ["model.1.weight", "model.1.bias"],
        ["model.0.*"]), pruned=("model.1.weight",), source="anatomy §1.5 shared alias: pruned, thaws in phase 2"),
    Case("shared_module-aliases", "shared_module_lm", _yaml(
        ["model.3.*"],
        ["model.2.weight", "model.0.weight", "model.2.bias", "model.0.bias"]),
         pruned=("model.2.weight", "model.2.bias"), source="a module registered twice: its parameters' second names"),
    Case("nested-mixed", "nested_lm", _yaml(
        ["model.decoder.head.weight", "model.decoder.conv.*", "model.scale_shift"],
        ["model.encoder.1.(mixer|norm).*", "model.encoder.1.parent_param"],
        ["model.encoder.0.mixer.ffn.[02].*", "model.encoder.0.mixer.attn", "model.encoder.0.norm.(weight|bias)$"],
        ["model.encoder.0.parent_param", "model.scale"]),
         source="nested containers, a module's own parameter; exact `model.scale` does not take `model.scale_shift`"),
    Case("nested-partial", "nested_lm", _yaml(
        ["model.decoder"],
        [r"model.encoder.\d.mixer.ffn"]), source="prefix on a ModuleDict; most parameters unscheduled"),
    Case("linear11-empty_phases", "linear11_lm", _yaml(["model.10.*"], [], [r"model.[5-9]\."]) + "3: {}\n",
         source="anatomy §1.8: `params: []` and a phase without `params` are accepted"),
    Case("linear11-string_keys", "linear11_lm",
         "'0':\n  params:\n  - model.10.*\n'1':\n  params:\n  - model.[0-9]\\.\n",
         source="anatomy §1.6: quoted keys are converted to integers (an FTS107 note), resolution unchanged"),
    Case("linear11-keys_out_of_order", "linear11_lm",
         "1:\n  params:\n  - model.[0-9]\\.\n0:\n  params:\n  - model.10.*\n",
         source="anatomy §1.6: phase 1 written before phase 0"),
    # --- FTS raises ---------------------------------------------------------------------------------
    Case("linear11-invalid_regex", "linear11_lm", _yaml(["model.10.*"], ["model.3.(*"]),
         verdict="invalid-regex", source="anatomy §1.5: `re.error: nothing to repeat` escapes FTS unwrapped"),
    Case("linear11-no_match_out_of_order", "linear11_lm",
         "1:\n  params:\n  - model.[0-9]\\.\n0:\n  params:\n  - model.10.*\n  - layer.10\n",
         verdict="no-match", source="FTS reports the first unmatched pattern in file order"),
    Case("linear11-out_of_order_dup_both", "linear11_lm",
         "1:\n  params:\n  - model.[0-9]\\.\n  - model.9.weight\n  - model.1\n0:\n  params:\n  - model.10.*\n",
         verdict="not-disjoint+fp", source="repeats inside phase 1 and `model.1` re-taking phase 0's model.10"),
    Case("linear11-no_match_search", "linear11_lm", _yaml(["model.10.*"], ["weight"], [r"model.[0-9]\..*"]),
         verdict="no-match", source="`weight` is not searched for (re.match from the start)"),
    Case("deberta-no_match_typo", "deberta_v2_lm", _yaml(
        ["model.classifier.*"], ["model.pooler.*", "model.deberta.encoder.layers.11.*"]),
         verdict="no-match", source="`layers` for `layer`"),
    Case("t5-no_match_alias_prefix", "t5_lm", _yaml(
        ["model.decoder.*"], ["model.encoder.embed_tokens"]),
         verdict="no-match", source="a prefix of an alias is not an alias: not pruned"),
    Case("gpt2-no_match_alias_regex", "gpt2_lm", _yaml(["model.transformer.ln_f.*"], ["model.lm_head.*"]),
         verdict="no-match", source="a regex that covers only a tied alias is not pruned: FTS raises"),
    Case("shared_module-no_match_alias_prefix", "shared_module_lm", _yaml(["model.3.*"], ["model.2"]),
         verdict="no-match", source="`model.2` names only a module registered twice (its aliases)"),
    Case("linear11-not_disjoint_prefix", "linear11_lm", _yaml(["model.1"], ["model.10.weight", "model.[2-9]."]),
         verdict="not-disjoint", source="`model.1` in phase 0 already took model.10.weight"),
    Case("deberta-not_disjoint_quantifier", "deberta_v2_lm", _yaml(
        ["model.classifier.*", "model.pooler.dense.*"],
        ["model.deberta.encoder.layer.11.(output|attention|intermediate).*"],
        ["model.deberta.encoder.layer.{0,11}.(output|attention|intermediate).*"]),
         verdict="not-disjoint", source="{0,11} quantifies `.`: phase 2 re-takes layer 11"),
    Case("llama-not_disjoint", "llama_lm", _yaml(
        ["model.lm_head.weight", "model.model.norm.*"],
        ["model.model.layers.3.(mlp|post_attention_layernorm|self_attn.[qkvo]_proj.*|input_layernorm).*"],
        ["model.model.layers.[0-3].*", "model.model.embed_tokens.weight"]),
         verdict="not-disjoint", source="torchtitan schedule with [0-2] widened to [0-3]"),
    Case("linear11-within_phase_dup", "linear11_lm", _yaml(["model.10.*", "model.10.bias"], ["model.[0-9]\\."]),
         verdict="fts-false-positive", source="anatomy §1.5: a repeat inside one phase"),
    Case("deberta-within_phase_dup", "deberta_v2_lm", _yaml(
        ["model.classifier.*", "model.classifier.bias", "model.pooler"],
        ["model.deberta.encoder.layer.11.attention.self.query_proj.weight",
         "model.deberta.encoder.layer.11.(output|attention|intermediate).*"]),
         verdict="fts-false-positive", source="exact name and a regex covering it in one phase"),
    Case("gpt2-dup_within_and_across", "gpt2_lm", _yaml(
        ["model.transformer.ln_f.*", "model.transformer.ln_f.weight"],
        ["model.transformer.h.1.*", "model.transformer.ln_f.bias"]),
         verdict="not-disjoint+fp", source="one repeat inside phase 0, one across phases 0 and 1"),
]

_IDS = [c.id for c in CASES]
assert len(set(_IDS)) == len(_IDS)


def _verdict(fts: FtsOutcome) -> str:
    if fts.error is None:
        return "ok"
    if _NO_MATCH.search(fts.error):
        return "no-match"
    if fts.error.startswith("re.error"):
        return "invalid-regex"
    m = _NOT_DISJOINT.search(fts.error)
    assert m, f"unexpected FTS error: {fts.error}"
    reported = m["params"].split(", ")
    # Parameters repeated inside one phase vs. parameters in two or more phases.
    within = {p for names in fts.phases.values() for p, n in Counter(names).items() if n > 1}
    across = {p for p, n in Counter(p for names in fts.phases.values() for p in set(names)).items() if n > 1}
    assert set(reported) == within | across
    if not across:
        return "fts-false-positive"
    return "not-disjoint+fp" if within - across else "not-disjoint"


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_resolution_matches_fts(case: Case, tmp_path: Path) -> None:
    module = models.FACTORIES[case.factory]()
    text = case.text()
    ftsc = run_ftsc(module, f"{case.id}.yaml", text)  # before FTS freezes the module
    path = tmp_path / "schedule.yaml"
    path.write_text(text, encoding="utf-8")
    fts = run_fts(module, path, tmp_path)

    verdict = _verdict(fts)
    assert verdict == case.verdict, fts.error

    # The resolved phases: FTS's lists (repeats removed, order kept) equal ftsc's, phase by phase.
    ftsc_phases = {p.index: list(p.params) for p in ftsc.resolution.phases}
    assert sorted(ftsc_phases) == sorted(fts.phases)
    assert fts.expanded, "FTS expanded no phase"
    for d in fts.expanded:
        assert ftsc_phases[d] == dedupe(fts.phases[d]), f"phase {d}"
    if len(fts.expanded) == len(fts.phases):  # what no phase thaws (FTS: silently never thawed)
        scheduled = {p for names in fts.phases.values() for p in names}
        assert list(ftsc.resolution.unscheduled) == [n for n, _ in module.named_parameters() if n not in scheduled]

    errors = {d.code for d in ftsc.diagnostics if d.severity is Severity.ERROR}
    # Pattern matching nothing: FTS stops at the first one (phase order); ftsc reports each.
    no_match = [(d.data["phase"], d.data["pattern"]) for d in ftsc.codes("FTS202")]
    if verdict == "no-match":
        m = _NO_MATCH.search(fts.error or "")
        assert m is not None
        assert no_match and no_match[0] == (int(m["phase"]), m["pattern"])
    else:
        assert no_match == []
        assert "FTS202" not in errors
    # Disjointness: FTS203 names exactly the parameters FTS reports across phases; nothing for a repeat
    # inside one phase (FTS's false positive).
    across = {p for d in ftsc.codes("FTS203") for p in d.data["params"]}
    if verdict in ("not-disjoint", "not-disjoint+fp"):
        m = _NOT_DISJOINT.search(fts.error or "")
        assert m is not None
        fts_across = {p for p, n in Counter(p for names in fts.phases.values() for p in set(names)).items() if n > 1}
        assert across == fts_across and set(m["params"].split(", ")) >= across
        for d in ftsc.codes("FTS203"):
            for p, phases in d.data["params"].items():
                assert phases == [k for k in fts.phases if p in fts.phases[k]]  # in FTS's (mapping) order
    elif verdict not in ("no-match", "invalid-regex"):  # (there FTS stops before its disjointness check)
        assert across == set() and "FTS203" not in errors
    # An invalid regular expression: FTS raises re.error (unwrapped), ftsc reports FTS101.
    assert ("FTS101" in errors) == (verdict == "invalid-regex")
    # Shared-parameter aliases: FTS prunes with a warning, ftsc reports FTS213 (same alias, same primary).
    assert sorted(fts.pruned) == sorted(case.pruned)
    assert {d.data["alias"]: d.data["primary"] for d in ftsc.codes("FTS213")} == fts.pruned


def test_case_counts() -> None:
    equal = [c for c in CASES if c.verdict in ("ok", "not-disjoint", "not-disjoint+fp", "fts-false-positive")]
    assert len(equal) >= 15  # pairs whose full resolved phase lists are compared
    assert {c.verdict for c in CASES} >= {"ok", "no-match", "not-disjoint", "fts-false-positive"}
    assert any(c.pruned for c in CASES)


# ---------------------------------------------------------------------------------------------
# The implicit (default) schedule: FTS's `gen_ft_schedule` vs ftsc's `default_groups(graph, "fts")`
# ---------------------------------------------------------------------------------------------

LM_FACTORIES = ["deberta_v2_lm", "llama_lm", "llama_tied_lm", "t5_lm", "gpt2_lm", "linear11_lm", "shared_linear_lm",
                "shared_module_lm", "nested_lm"]


@pytest.mark.parametrize("factory", LM_FACTORIES)
def test_default_schedule_matches_fts(factory: str, tmp_path: Path) -> None:
    module = models.FACTORIES[factory]()
    graph = ModelGraph(extract(module))
    fts = run_fts(module, None, tmp_path)
    assert fts.error is None
    assert [fts.phases[d] for d in sorted(fts.phases)] == default_groups(graph, "fts")


# ---------------------------------------------------------------------------------------------
# The factories as `--model` targets: the meta-device build ftsc does sees the same parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", sorted(models.FACTORIES))
def test_meta_build_matches_real_module(factory: str) -> None:
    real = extract(models.FACTORIES[factory]())
    meta = extract(build(f"{MODELS_FILE}:{factory}"))
    assert [(p.name, p.shape, p.aliases) for p in meta.parameters] == \
        [(p.name, p.shape, p.aliases) for p in real.parameters]
