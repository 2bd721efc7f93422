"""Layer-wise lr decay (`lr TOP decay D PRESET per LAYERS { ... }`, fastai's `lr slice(...)`).

The reference lrs are each project's formula re-implemented here, independently of ftsc, from
the source read at these commits (nothing is imported from ftsc to build them):

- BEiT: microsoft/unilm@768a3c873f598bb9b4d4dfb9267b099e35f8fe56, `beit/optim_factory.py`
  (`get_num_layer_for_vit`, `get_parameter_groups`) and `beit/run_class_finetuning.py`
  (`layer_decay ** (num_layers + 1 - i) for i in range(num_layers + 2)`).
- ELECTRA: google-research/electra@8a46635f32083ada044d7e9ad09604742600ee7b,
  `model/optimization.py` (`_get_layer_lrs`: key -> `lr * decay ** (n_layers + 2 - depth)`, a
  variable takes the lr of the key it contains, none raises).
- timm: huggingface/pytorch-image-models@aa4b5850c1543fa488abf260f18390eda46cf85d,
  `timm/optim/_param_groups.py` (`param_groups_layer_decay`), `timm/models/_manipulate.py`
  (`group_with_matcher`, `MATCH_PREV_GROUP`), `timm/models/vision_transformer.py` (`group_matcher`).
- fastai: fastai/fastai@0a20fa1b1c221cb7665d07f6362bfbfa3ffaa87c, `fastai/optimizer.py`
  (`_BaseOptimizer.set_hyper`: `slice(a, b)` -> `even_mults(a, b, n)`, `slice(b)` ->
  `[b/10] * (n-1) + [b]`) and fastcore's `even_mults` (`start * step**i`, `step = (stop/start)**(1/(n-1))`).

Each project names parameters its own way; the tests map the transformers names onto the
project's (the `_beit_name` / `_electra_name` / `_timm_name` functions) the way a port of the
model to that project would: embeddings -> the project's stem/embeddings, `layer.i` -> its blocks,
the final norm and the classifier -> what the project's own models have there.
"""

from __future__ import annotations

import collections
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from ftsc import ir
from ftsc.analyze import prepare
from ftsc.analyze.context import AnalysisContext
from ftsc.cli import main
from ftsc.frontend import load_text
from ftsc.lower import lower
from ftsc.lower.runtime import lower_runtime
from ftsc.model.graph import ModelGraph
from ftsc.source import SourceFile

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


# --- the models --------------------------------------------------------------------------------

def _bert() -> Any:
    with torch.device("meta"):
        return transformers.BertForSequenceClassification(transformers.BertConfig(
            num_hidden_layers=12, hidden_size=32, num_attention_heads=2, intermediate_size=37, vocab_size=100,
            max_position_embeddings=64))


def _vit() -> Any:
    with torch.device("meta"):
        return transformers.ViTForImageClassification(transformers.ViTConfig(
            num_hidden_layers=12, hidden_size=32, num_attention_heads=2, intermediate_size=37, image_size=32,
            patch_size=8, num_labels=3))


@pytest.fixture(scope="module")
def bert() -> tuple[list[str], ModelGraph]:
    from ftsc.model.build import extract

    model = _bert()
    return [n for n, _ in model.named_parameters()], ModelGraph(extract(model))


@pytest.fixture(scope="module")
def vit() -> tuple[list[str], ModelGraph]:
    from ftsc.model.build import extract

    model = _vit()
    return [n for n, _ in model.named_parameters()], ModelGraph(extract(model))


# Where the transformers models keep their parts.
_PARTS = {
    "bert": {"layers": "bert.encoder.layer.{i}", "layer_re": r"bert\.encoder\.layer\.(\d+)\.(.*)",
             "emb": "bert.embeddings.", "norm": None, "num_layers": 12},
    "vit": {"layers": "vit.layers.{i}", "layer_re": r"vit\.layers\.(\d+)\.(.*)",
            "emb": "vit.embeddings.", "norm": "vit.layernorm.", "num_layers": 12},
}


def _split(model: str, name: str) -> tuple[str, int | None, str]:
    """`(part, layer index, rest)`: part is emb, layer, norm or head."""
    parts = _PARTS[model]
    m = re.fullmatch(parts["layer_re"], name)
    if m:
        return "layer", int(m.group(1)), m.group(2)
    if name.startswith(parts["emb"]):
        return "emb", None, name[len(parts["emb"]):]
    if parts["norm"] and name.startswith(parts["norm"]):
        return "norm", None, name[len(parts["norm"]):]
    return "head", None, name


# --- the references ----------------------------------------------------------------------------

def _beit_name(model: str, name: str) -> str:
    part, i, rest = _split(model, name)
    if part == "layer":
        return f"blocks.{i}.{rest}"
    if part == "emb":
        return {"cls_token": "cls_token", "position_embeddings": "pos_embed"}.get(rest, "patch_embed." + rest)
    return ("norm." if part == "norm" else "head.") + rest


def beit_reference(model: str, names: list[str], lr: float, decay: float) -> dict[str, float]:
    num_layers = _PARTS[model]["num_layers"]
    values = [decay ** (num_layers + 1 - i) for i in range(num_layers + 2)]
    num_max_layer = len(values)

    def layer_id(var: str) -> int:  # BEiT's get_num_layer_for_vit
        if var in ("cls_token", "mask_token", "pos_embed") or var.startswith("patch_embed"):
            return 0
        if var.startswith("rel_pos_bias"):
            return num_max_layer - 1
        if var.startswith("blocks"):
            return int(var.split(".")[1]) + 1
        return num_max_layer - 1

    return {n: lr * values[layer_id(_beit_name(model, n))] for n in names}


def _electra_name(model: str, name: str) -> str:
    part, i, rest = _split(model, name)
    rest = rest.replace(".", "/")
    if part == "layer":
        return f"electra/encoder/layer_{i}/{rest}:0"
    if part == "emb":
        return f"electra/embeddings/{rest}:0"
    return f"task_specific/classifier/{rest}:0"  # ELECTRA scopes everything past the encoder so


def electra_reference(model: str, names: list[str], lr: float, decay: float) -> dict[str, float]:
    n_layers = _PARTS[model]["num_layers"]
    key_to_depths = collections.OrderedDict({"/embeddings/": 0, "/embeddings_project/": 0,
                                             "task_specific/": n_layers + 2})
    for layer in range(n_layers):
        key_to_depths["encoder/layer_" + str(layer) + "/"] = layer + 1
    key_lr = {key: lr * (decay ** (n_layers + 2 - depth)) for key, depth in key_to_depths.items()}
    out = {}
    for n in names:
        var = _electra_name(model, n)
        hits = [key for key in key_lr if key in var]
        if not hits:
            raise ValueError("No learning rate specified for variable", var)
        assert len(hits) == 1, (var, hits)
        out[n] = key_lr[hits[0]]
    return out


def _timm_name(model: str, name: str) -> str:
    part, i, rest = _split(model, name)
    if model == "bert":
        return name
    if part == "layer":
        return f"blocks.{i}.{rest}"
    if part == "emb":
        return {"cls_token": "cls_token", "position_embeddings": "pos_embed"}.get(rest, "patch_embed." + rest)
    return ("norm." if part == "norm" else "head.") + rest


_TIMM_MATCHERS = {  # vision_transformer.py's group_matcher(coarse=False); a BERT one in its style
    "vit": {"stem": r"^cls_token|reg_token|pos_embed|patch_embed",
            "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]},
    "bert": {"stem": r"^bert\.embeddings", "blocks": [(r"^bert\.encoder\.layer\.(\d+)", None)]},
}


def timm_reference(model: str, names: list[str], lr: float, decay: float) -> dict[str, float]:
    matcher = []
    for ordinal, spec in enumerate(_TIMM_MATCHERS[model].values()):
        for regex, suffix in (spec if isinstance(spec, list) else [(spec, None)]):
            matcher.append((re.compile(regex), (ordinal,), suffix))

    def grouping(name: str) -> tuple[float, ...]:
        for rx, prefix, suffix in matcher:
            m = rx.match(name)
            if m:
                parts = [prefix, m.groups(), suffix]
                return tuple(float(x) for part in parts if part for x in part)
        return (float("inf"),)

    timm_names = {n: _timm_name(model, n) for n in names}
    groups: dict[tuple[float, ...], list[str]] = collections.defaultdict(list)
    for n, t in timm_names.items():
        groups[grouping(t)].append(t)
    layer_of: dict[str, int] = {}
    lid = -1
    for key in sorted(groups):
        if lid < 0 or key[-1] != 99999:
            lid += 1
        for t in groups[key]:
            layer_of[t] = lid
    num_layers = max(layer_of.values()) + 1
    layer_max = num_layers - 1
    scales = [max(0.0, decay ** (layer_max - i)) for i in range(num_layers)]
    return {n: lr * scales[layer_of.get(t, layer_max)] for n, t in timm_names.items()}


def _even_mults(start: float, stop: float, n: int) -> list[float]:
    step = (stop / start) ** (1 / (n - 1))
    return [start * (step ** i) for i in range(n)]


def fastai_reference(model: str, names: list[str], lr: slice) -> dict[str, float]:
    """A splitter giving [embeddings], [layer 0], ..., [layer L-1], [the rest]; `set_hyper('lr', slice)`."""
    groups: list[list[str]] = [[] for _ in range(_PARTS[model]["num_layers"] + 2)]
    for n in names:
        part, i, _ = _split(model, n)
        groups[0 if part == "emb" else i + 1 if part == "layer" else -1].append(n)
    count = len(groups)
    if lr.start:
        lrs = _even_mults(lr.start, lr.stop, count)
    else:
        lrs = [lr.stop / 10] * (count - 1) + [lr.stop]
    return {n: lrs[k] for k, group in enumerate(groups) for n in group}


# --- the schedules -----------------------------------------------------------------------------

def _schedule(model: str, head: str) -> str:
    parts = _PARTS[model]
    places = [f'        embeddings glob "{parts["emb"]}**"']
    if parts["norm"] and "timm" in head:
        places.append(f'        norm glob "{parts["norm"]}*"')
    body = "\n".join(places)
    return f'phase 0 {{\n    thaw glob "**"\n    {head} per {parts["layers"]} {{\n{body}\n    }}\n}}\n'


CASES = [
    ("beit", "lr 0.0005 decay 0.9 beit", lambda m, names: beit_reference(m, names, 5e-4, 0.9)),
    ("electra", "lr 0.0001 decay 0.8 electra", lambda m, names: electra_reference(m, names, 1e-4, 0.8)),
    ("timm", "lr 0.001 decay 0.75 timm", lambda m, names: timm_reference(m, names, 1e-3, 0.75)),
    ("fastai-slice2", "lr slice(1e-06, 0.01)", lambda m, names: fastai_reference(m, names, slice(1e-6, 1e-2))),
    ("fastai-slice1", "lr slice(0.01)", lambda m, names: fastai_reference(m, names, slice(None, 1e-2))),
    ("ulmfit", "lr 0.01 decay 0.38461538461538464 fastai",  # 1/2.6: ULMFiT's slice(lr / 2.6**(n-1), lr)
     lambda m, names: fastai_reference(m, names, slice(0.01 / 2.6 ** 13, 0.01))),
]


def _compiled(text: str, graph: ModelGraph) -> dict[str, Any]:
    loaded = load_text(SourceFile("s.ftsc", text))
    assert loaded.schedule is not None and not loaded.diagnostics, loaded.diagnostics
    ctx = prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))
    return lower(loaded.schedule, ctx.resolution, graph).to_json()


@pytest.mark.parametrize("model", ["bert", "vit"])
@pytest.mark.parametrize("preset, head, reference", CASES, ids=[c[0] for c in CASES])
def test_preset_matches_its_projects_formula(model: str, preset: str, head: str, reference: Any,
                                             request: pytest.FixtureRequest) -> None:
    names, graph = request.getfixturevalue(model)
    want = reference(model, names)
    doc = _compiled(_schedule(model, head), graph)
    (phase,) = doc["phases"]
    got = {n: g["lr"] for g in phase["lr_groups"] for n in g["params"]}
    assert sorted(got) == sorted(names)
    if preset.startswith(("fastai", "ulmfit")):  # a different product order may differ in the last bit
        bad = {n: (got[n], want[n]) for n in names if not math.isclose(got[n], want[n], rel_tol=1e-12)}
    else:
        bad = {n: (got[n], want[n]) for n in names if got[n] != want[n]}
    assert bad == {}
    # the reference really spreads the lrs (slice(b) has two: b/10 and b)
    assert len(set(want.values())) >= (2 if preset == "fastai-slice1" else 13)


def test_presets_differ_where_their_projects_do(vit: tuple[list[str], ModelGraph]) -> None:
    """BEiT puts the final norm at the head's lr, timm with the last block; ELECTRA's layers sit one
    step lower than BEiT's (its head is depth L+2)."""
    _, graph = vit
    lrs = {}
    for preset in ("beit", "timm", "electra"):
        doc = _compiled(_schedule("vit", f"lr 1.0 decay 0.5 {preset}"), graph)
        lrs[preset] = {n: g["lr"] for g in doc["phases"][0]["lr_groups"] for n in g["params"]}
    assert lrs["beit"]["vit.layernorm.weight"] == 1.0 and lrs["timm"]["vit.layernorm.weight"] == 0.5
    assert lrs["beit"]["vit.layers.11.mlp.fc1.weight"] == 0.5 and lrs["electra"]["vit.layers.11.mlp.fc1.weight"] == 0.25
    assert lrs["beit"]["vit.embeddings.cls_token"] == 0.5 ** 13 and lrs["electra"]["vit.embeddings.cls_token"] == 0.5 ** 14


def test_compile_cli_json_lists_the_groups(tmp_path: Path, bert: tuple[list[str], ModelGraph],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from ftsc.model import manifest

    names, graph = bert
    manifest.write(graph.manifest, tmp_path / "bert.json")
    sched = tmp_path / "s.ftsc"
    sched.write_text('phase 0 {\n    thaw classifier.weight\n    thaw classifier.bias\n}\n\n'
                     'phase 1 {\n    thaw glob "bert.**"\n    lr 0.0001 decay 0.8 electra per bert.encoder.layer.{i} {\n'
                     '        embeddings glob "bert.embeddings.**"\n    }\n}\n')
    code = main(["compile", str(sched), "--manifest", str(tmp_path / "bert.json"), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    p0, p1 = doc["phases"]
    assert "lr_groups" not in p0 and p0["lr"] is None  # the contract's fields, unchanged
    assert p1["lr"] == 1e-4 and set(p1) == {"index", "name", "params", "lr", "max_transition_epoch", "lr_groups"}
    want = electra_reference("bert", [n for n in names if n.startswith("bert.")], 1e-4, 0.8)
    assert {n: g["lr"] for g in p1["lr_groups"] for n in g["params"]} == want
    assert [g["name"] for g in p1["lr_groups"]] == ["embeddings", *(f"layer {i}" for i in range(12)), "head"]


# --- the language ------------------------------------------------------------------------------

def _load(text: str) -> Any:
    return load_text(SourceFile("x.ftsc", text))


def test_forms_build_the_ir() -> None:
    s = _load('phase 0 { thaw a lr 2e-5 decay 0.8 electra per enc.layer.{i} { embeddings glob "emb.**" } }\n'
              'phase 1 { thaw b lr slice(1e-6, 1e-3) per glob "h.{i}.**.weight" }\n'
              'phase 2 { thaw c lr slice(0.01) per blocks.{i} }\n'
              'phase 3 { thaw d lr 1 decay 1 per x_{i} { norm n } }\n').schedule
    d0, d1, d2, d3 = (p.lr_decay for p in s.phases)
    assert (d0.lr, d0.decay, d0.start, d0.preset, d0.layers.pattern) == (2e-5, 0.8, None, ir.LrPreset.ELECTRA,
                                                                         "enc.layer.{i}")
    assert d0.embeddings == (ir.Selector(kind=ir.SelectorKind.GLOB, pattern="emb.**"),)
    assert (d1.lr, d1.decay, d1.start, d1.preset, d1.layers.kind) == (1e-3, None, 1e-6, ir.LrPreset.FASTAI,
                                                                      ir.SelectorKind.GLOB)
    assert (d2.lr, d2.decay, d2.start) == (0.01, None, None)
    assert d3.preset is ir.LrPreset.BEIT and d3.norm[0].pattern == "n"
    assert ir.load(json.loads(json.dumps(ir.dump(s)))) == s


def test_lr_stays_a_setting_name_everywhere() -> None:
    """`lr` is a keyword where statements start, yet `lr = X` still reads as the setting everywhere."""
    s = _load("phase 0 { thaw lr } phase 1 { thaw lr.x lr = 0.5 reinit optimizer torch.optim.SGD(lr = 0.1) "
              "reinit lr_scheduler a.B { pl_lrs_cfg = {name = lr} } }").schedule
    assert [p.selectors[0].pattern for p in s.phases] == ["lr", "lr.x"]
    assert s.phases[1].lr == 0.5 and s.phases[1].reinits[0].init_args[0].name == "lr"


@pytest.mark.parametrize("text, code", [
    ("phase 0 { thaw a lr 0 decay 0.8 per l.{i} }", "FTS102"),
    ("phase 0 { thaw a lr 1 decay 1.5 per l.{i} }", "FTS102"),
    ("phase 0 { thaw a lr 1 decay -1 per l.{i} }", "FTS102"),
    ("phase 0 { thaw a lr slice(0, 1) per l.{i} }", "FTS102"),
    ('phase 0 { thaw a lr 1 decay 0.5 per glob "l.{i}.{i}" }', "FTS102"),
    ('phase 0 { thaw a lr 1 decay 0.5 per glob "l.{i}.[" }', None),  # an open class is literal in a glob
    ("phase 0 { thaw a lr 1 decay 0.5 electra per l.{i} { norm n } }", "FTS102"),
    ("phase 0 { thaw a lr slice(1) per l.{i} { norm n } }", "FTS102"),
    ("phase 0 { thaw a lr 1 decay 0.5 per l.{i} lr 1 decay 0.5 per m.{i} }", "FTS104"),
    ("phase 0 { thaw a lr = 1 lr 1 decay 0.5 per l.{i} }", "FTS209"),
    ("phase 0 { thaw a lr 1 decay 0.5 per l.{i} { embeddings /(/ } }", "FTS101"),
    ("phase 0 { thaw a lr 1 decay 0.5 beit per l }", "FTS001"),
    ("phase 0 { thaw a lr 1 decay 0.5 per l.{j} }", "FTS001"),
    ("schedule { lr 1 decay 0.5 per l.{i} }", "FTS001"),
])
def test_invalid_forms_are_reported(text: str, code: str | None) -> None:
    codes = {d.code for d in _load(text).diagnostics}
    assert codes == ({code} if code else set()), codes


def test_fmt_writes_the_canonical_form_and_round_trips() -> None:
    from ftsc.fmt import format_schedule

    src = ('phase 1 { thaw b   lr 2E-5 decay .8 per enc.layer.{i} {embeddings glob "emb.**", e.w norm n}  }\n'
           'phase 2 { thaw c lr slice(1e-6,1e-3) per glob "h.{i}" }')
    loaded = _load(src)
    out = format_schedule(loaded.schedule, loaded.comments, loaded.source)
    assert out == ('phase 1 {\n    thaw b\n    lr 2e-05 decay 0.8 beit per enc.layer.{i} {\n'
                   '        embeddings glob "emb.**"\n        embeddings e.w\n        norm n\n    }\n}\n\n'
                   'phase 2 {\n    thaw c\n    lr slice(1e-06, 0.001) per glob "h.{i}"\n}\n')
    again = _load(out)
    assert again.schedule == loaded.schedule and format_schedule(again.schedule) == out


def test_convert_to_fts_yaml_refuses_the_decay_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sched = tmp_path / "s.ftsc"
    sched.write_text("phase 0 {\n    thaw a\n}\n\nphase 1 {\n    thaw b\n    lr 0.001 decay 0.8 electra per l.{i}\n}\n")
    assert main(["convert", str(sched), "--to", "fts-yaml"]) == 1
    err = capsys.readouterr().err
    assert "FTS501" in err and "layer-wise lrs cannot be expressed in FTS YAML" in err
    assert main(["convert", str(sched), "--to", "ftsc"]) == 0
    assert "lr 0.001 decay 0.8 electra per l.{i}" in capsys.readouterr().out


# --- FTS215 ------------------------------------------------------------------------------------

def _check(text: str, names: list[str]) -> list[Any]:
    from ftsc.cli import check_file

    return [d for d in check_file(_load(text), ModelGraph.from_names(names)) if d.code == "FTS215"]


NAMES = ["emb.word.weight", "emb.LayerNorm.weight", "emb.LayerNorm.bias",
         *(f"layers.{i}.{m}.{k}" for i in range(3) for m in ("attn", "ln") for k in ("weight", "bias")),
         "head.weight", "head.bias"]


def test_fts215_weights_only_pattern_leaves_the_biases_at_the_head_lr() -> None:
    (d,) = _check('phase 0 { thaw glob "**" lr 1 decay 0.5 per glob "layers.{i}.*.weight" }', NAMES)
    assert sorted(d.data["params"]) == sorted(f"layers.{i}.{m}.bias" for i in range(3) for m in ("attn", "ln"))
    assert d.data["params"]["layers.0.attn.bias"] == {"lr": 1.0, "layer_lr": 0.125}


def test_fts215_an_embeddings_placement_without_its_layernorm() -> None:
    (d,) = _check('phase 0 { thaw glob "**" lr 1 decay 0.5 per layers.{i} { embeddings emb.word.weight, '
                  'emb.LayerNorm.weight } }', NAMES)
    assert list(d.data["params"]) == ["emb.LayerNorm.bias"]


def test_fts215_clean_forms() -> None:
    assert _check('phase 0 { thaw glob "**" lr 1 decay 0.5 per layers.{i} { embeddings glob "emb.**" } }', NAMES) == []
    # weights of a layer's attention only: the norm module's weight and bias stay together, the
    # attention bias is left out of its layer: only that one is reported
    (d,) = _check('phase 0 { thaw glob "**" lr 1 decay 0.5 per glob "layers.{i}.attn.weight" }', NAMES)
    assert sorted(d.data["params"]) == [f"layers.{i}.{m}" for i in range(3) for m in ("attn.bias", "ln.bias",
                                                                                       "ln.weight")]


# --- runtime -----------------------------------------------------------------------------------

def test_runtime_plan_carries_the_groups(bert: tuple[list[str], ModelGraph]) -> None:
    names, graph = bert
    text = _schedule("bert", "lr 0.0001 decay 0.8 electra")
    loaded = load_text(SourceFile("s.ftsc", text))
    ctx = prepare(loaded.schedule, AnalysisContext(loaded.source, loaded.kind, graph))
    plan = lower_runtime(loaded.schedule, ctx.resolution)
    groups = plan.phases[0].lr_groups
    assert {n: g["lr"] for g in groups for n in g["params"]} == electra_reference("bert", names, 1e-4, 0.8)
    plain = lower_runtime(load_text(SourceFile("t.ftsc", 'phase 0 { thaw glob "**" }')).schedule, ctx.resolution)
    assert plain.phases[0].lr_groups is None and plain.fingerprint() != plan.fingerprint()


def _layered_module() -> Any:
    import lightning.pytorch as pl
    from torch import nn

    class Layered(pl.LightningModule):
        """embed -> 3 x (Linear, LayerNorm) -> head."""

        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(8, 8)
            self.layers = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8)) for _ in range(3))
            self.head = nn.Linear(8, 1)

        def forward(self, x: Any) -> Any:
            x = self.embed(x)
            for layer in self.layers:
                x = layer(x)
            return self.head(x)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            return nn.functional.mse_loss(self(x), y)

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log("val_loss", nn.functional.mse_loss(self(x), y))

        def configure_optimizers(self) -> Any:
            opt = torch.optim.SGD(self.parameters(), lr=0.5)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)}

    return Layered()


def _fit(tmp_path: Path, text: str, epochs: int) -> list[list[tuple[float, float, tuple[str, ...]]]]:
    """Per epoch start: each optimizer group's (lr, scheduler base lr, parameter names)."""
    import lightning.pytorch as pl

    from ftsc.lightning import FinetuningScheduler

    rows: list[list[tuple[float, float, tuple[str, ...]]]] = []

    class Groups(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            names = {id(p): n for n, p in pl_module.named_parameters()}
            sched = trainer.lr_scheduler_configs[0].scheduler
            rows.append([(g["lr"], base, tuple(names[id(p)] for p in g["params"]))
                         for g, base in zip(trainer.optimizers[0].param_groups, sched.base_lrs, strict=True)])

    sched = tmp_path / "s.ftsc"
    sched.write_text(text)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 8, generator=g)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    trainer = pl.Trainer(max_epochs=epochs, callbacks=[FinetuningScheduler(ft_schedule=str(sched),
                                                                           epoch_transitions_only=True), Groups()],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    trainer.fit(_layered_module(), data, data)
    return rows


def _beit_lr(name: str, top: float, decay: float, num_layers: int = 3) -> float:
    """BEiT's rule for this module: embed id 0, layers.i id i+1, the rest id L+1; lr x d^(L+1-id)."""
    layer_id = 0 if name.startswith("embed.") else int(name.split(".")[1]) + 1 if name.startswith("layers.") \
        else num_layers + 1
    return top * decay ** (num_layers + 1 - layer_id)


def test_runtime_groups_carry_the_lrs_once_the_phase_starts(tmp_path: Path) -> None:
    rows = _fit(tmp_path, 'phase 0 {\n    thaw head.weight\n    thaw head.bias\n    until epoch 1\n}\n\n'
                          'phase 1 {\n    thaw glob "embed.*"\n    thaw glob "layers.**"\n'
                          '    lr 0.01 decay 0.5 beit per layers.{i} {\n        embeddings glob "embed.*"\n    }\n}\n',
                epochs=3)
    assert [len(r) for r in rows] == [1, 5, 5]  # phase 0's group, then + embeddings and one per layer
    start = rows[1]
    for lr, base, names in start[1:]:
        (want,) = {_beit_lr(n, 0.01, 0.5) for n in names}
        assert lr == want and base == want, names
    assert [n for _, _, names in start[1:] for n in names] == [
        "embed.weight", "embed.bias", *(f"layers.{i}.{k}.{w}" for i in range(3) for k in (0, 1)
                                        for w in ("weight", "bias"))]
    # the lr scheduler goes on from each group's own lr
    assert [lr for lr, _, _ in rows[2][1:]] == [_beit_lr(names[0], 0.01, 0.5) * 0.5 for _, _, names in start[1:]]


def test_runtime_phase_zero_decay_replaces_the_optimizers_groups(tmp_path: Path) -> None:
    rows = _fit(tmp_path, 'phase 0 {\n    thaw glob "**"\n    lr slice(0.001, 0.1) per layers.{i} {\n'
                          '        embeddings glob "embed.*"\n    }\n}\n', epochs=1)
    (first,) = rows
    # fastai slice(a, b) over the 5 groups the module has (embed, 3 layers, head): a x (b/a)^(k/4)
    want = [0.001 * (100 ** (k / 4)) for k in range(5)]
    assert [names[0].split(".")[0] for _, _, names in first] == ["embed", "layers", "layers", "layers", "head"]
    assert all(math.isclose(lr, w, rel_tol=1e-12) for (lr, _, _), w in zip(first, want, strict=True))


@pytest.mark.parametrize("doc", ["docs/lr-decay.md", "docs/language.md"])
def test_doc_schedules_load_cleanly(doc: str) -> None:
    from .conftest import REPO

    text = (REPO / doc).read_text()
    blocks = re.findall(r"^```ftsc[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    decay_blocks = [b for b in blocks if " per " in b]
    assert decay_blocks
    for block in decay_blocks:
        loaded = load_text(SourceFile("doc.ftsc", block))
        assert loaded.schedule is not None and loaded.diagnostics == [], (block, loaded.diagnostics)
        assert any(p.lr_decay is not None for p in loaded.schedule.phases)
