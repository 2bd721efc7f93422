"""Validation of `ftsc explain`'s `model_states` (and its peak estimate) against real training steps.

    python benchmarks/bench_explain_memory.py measure --out DIR [--world-sizes 1 2 8] [--tracker]  # on a GPU
    python benchmarks/bench_explain_memory.py measure --cpu --tracker --out DIR ...   # FSDPMemTracker on CPU
    python benchmarks/bench_explain_memory.py compare MEASURED.json [...] --out DIR   # model states
    python benchmarks/bench_explain_memory.py peak MEASURED.json [...] --out DIR      # activations, peak

`measure` builds each model of `explain_models.py` on one CUDA device, freezes it to each phase's
trainable set, wraps it (one device, DDP, FSDP1 with `use_orig_params` True and False, FSDP2) at
world sizes 1, 2 and 8, and runs two training steps (after one discarded warm-up step per model and
precision, which creates cuBLAS's workspaces). World sizes above 1 use torch's `fake`
process group on the one GPU: each rank is simulated separately (its own real local shards, its
own batch), collectives are skipped. It records `torch.cuda.memory_allocated()` right after
`loss.backward()` of the second step (the first step has created the optimizer state), with the
step's outputs, loss and batch released, minus what was allocated before the model was built;
and beside it the bytes the live tensors requested (`requested_bytes.all.current` of
`torch.cuda.memory_stats()`), which leaves out the caching allocator's rounding of each block
(up to 1 MiB per large tensor: a 125 MiB embedding occupies a 126 MiB block). For the same step it
also records the bytes its forward added, the peak of its forward and backward, and the peak of
its optimizer step (`--batch`/`--seq` set the micro-batch; default 2 x 64).
Precisions follow Lightning: `bf16-mixed` is autocast, and under FSDP1 Lightning's
`MixedPrecision(bf16, bf16, bf16)`; FSDP2 adds `MixedPrecisionPolicy(bf16, reduce fp32)`.
`bf16-true` converts the model to bfloat16 before wrapping (no autocast; FSDP1 with the same
`MixedPrecision`, FSDP2 with no policy), as Lightning's true-precision plugins do.

`--tracker` runs the FSDP2 rows under torch's `FSDPMemTracker` and records its categories at the
same point (with `--cpu`, on CPU, where nothing else is measured).

`compare` writes each configuration as a `.ftsc` schedule, runs `ftsc explain --format json` on
it (one process per configuration) and joins the busiest rank's
measurement with explain's `model_states`, per phase, against both the requested bytes and
`memory_allocated()`; it writes `compare.json`, `rows.md` (the error per row) and `summary.md` (one
line per model, strategy and precision), and prints the summary. Writes nothing outside `--out`.
Run `measure` under `PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True` to see `memory_allocated()`
without the default allocator's unsplit block remainders (up to 1 MiB per tensor over 1 MiB).
`peak` runs `ftsc explain --batch B --seq S` per configuration and compares its activation and peak
estimates with the forward's bytes and the larger of the two measured peaks (`peak.md`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from explain_models import BENCHES, Bench

STRATEGIES = ("single", "ddp", "fsdp1", "fsdp1-flat", "fsdp2")
CONFIG_KEYS = ("model", "strategy", "precision", "optimizer", "world_size")
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true")
OPTIMIZERS = ("adamw", "sgd-momentum")
MIB = 1 << 20


# --- configurations -----------------------------------------------------------------------

def schedule_of(bench: Bench, strategy: str) -> tuple[tuple[str, ...], ...]:
    """The phases a strategy trains: whole units for FSDP1 `use_orig_params=False`."""
    return bench.aligned if strategy == "fsdp1-flat" else bench.partial


def trainable(names: Sequence[str], phases: Sequence[Sequence[str]], phase: int) -> list[str]:
    """Parameter names that train in `phase` (cumulative, full-match regexes)."""
    patterns = [re.compile(p) for k in range(phase + 1) for p in phases[k]]
    return [n for n in names if any(p.fullmatch(n) for p in patterns)]


def configs(world_sizes: Sequence[int], models: Sequence[str]) -> Iterator[dict[str, Any]]:
    for model in models:
        for precision in PRECISIONS:
            for optimizer in OPTIMIZERS:
                for strategy in STRATEGIES:
                    for world in world_sizes:
                        if strategy == "single" and world != 1:
                            continue
                        yield {"model": model, "strategy": strategy, "precision": precision,
                               "optimizer": optimizer, "world_size": world}


# --- measurement (torch, one device) --------------------------------------------------------

def _batch(cfg: dict[str, Any], rank: int, step: int, device: Any) -> dict[str, Any]:
    """A micro-batch: `cfg["batch"]` sequences of `cfg["seq"]` tokens (Llama) or images (ViT: 197 tokens)."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(1000 * rank + step)
    batch = cfg.get("batch", 2)
    if cfg["model"] == "llama":
        ids = torch.randint(0, 32000, (batch, cfg.get("seq", 64)), generator=gen).to(device)
        return {"input_ids": ids, "labels": ids}
    pixels = torch.randn(batch, 3, 224, 224, generator=gen).to(device)
    return {"pixel_values": pixels, "labels": torch.randint(0, 10, (batch,), generator=gen).to(device)}


VIT_TOKENS = 197  # 14 x 14 patches of a 224-pixel image, plus the class token


def _wrap(model: Any, bench: Bench, cfg: dict[str, Any], device: Any) -> Any:
    import torch

    strategy, bf16 = cfg["strategy"], cfg["precision"] == "bf16-mixed"
    fsdp1_bf16 = cfg["precision"] in ("bf16-mixed", "bf16-true")
    layer_cls = type(next(m for n, m in model.named_modules() if re.fullmatch(bench.layers, n)))
    if strategy == "single":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        ddp.register_comm_hook(None, _no_allreduce)  # the fake group's allreduce future holds no tensor
        return ddp
    if strategy in ("fsdp1", "fsdp1-flat"):
        from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        mp = MixedPrecision(torch.bfloat16, torch.bfloat16, torch.bfloat16) if fsdp1_bf16 else None
        return FullyShardedDataParallel(model, auto_wrap_policy=ModuleWrapPolicy({layer_cls}), mixed_precision=mp,
                                        use_orig_params=strategy == "fsdp1", device_id=device)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kwargs: dict[str, Any] = {}
    if bf16:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for name, module in model.named_modules():
        if re.fullmatch(bench.layers, name):
            fully_shard(module, **kwargs)
    fully_shard(model, **kwargs)
    return model


def _no_allreduce(state, bucket):  # type: ignore[no-untyped-def]
    """DDP comm hook that keeps the bucket as reduced (its memory stays DDP's own)."""
    import torch

    del state
    fut = torch.futures.Future()
    fut.set_result(bucket.buffer())
    return fut


def _optimizer(params: list[Any], name: str) -> Any:
    import torch

    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-5)
    return torch.optim.SGD(params, lr=1e-5, momentum=0.9)


def measure_one(cfg: dict[str, Any], rank: int, phase: int, device: Any, tracker: bool = False) -> dict[str, Any]:
    """Build, freeze, wrap and train two steps; bytes allocated after the second backward."""
    import explain_models
    import torch

    bench = BENCHES[cfg["model"]]
    cuda = device.type == "cuda"
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        base_requested = torch.cuda.memory_stats()["requested_bytes.all.current"]
    torch.manual_seed(0)
    with torch.device(device):
        model = getattr(explain_models, bench.factory)()
    if cfg["precision"] == "bf16-true":
        model = model.to(torch.bfloat16)
    names = [n for n, _ in model.named_parameters()]
    train = set(trainable(names, schedule_of(bench, cfg["strategy"]), phase))
    for n, p in model.named_parameters():
        p.requires_grad_(n in train)
    del p  # the loop variable would keep the last original parameter alive once FSDP has sharded it
    numel = sum(p.numel() for n, p in model.named_parameters() if n in train)
    model = _wrap(model, bench, cfg, device)
    opt = _optimizer([p for p in model.parameters() if p.requires_grad], cfg["optimizer"])
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg["precision"] == "bf16-mixed")
    row: dict[str, Any] = {**cfg, "rank": rank, "phase": phase, "trainable_numel": numel}
    mt = None
    if tracker:
        from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker

        mt = FSDPMemTracker(model, opt)
    with mt if mt is not None else _nothing():
        for step in range(2):
            batch = _batch(cfg, rank, step, device)
            if step == 1 and cuda:
                torch.cuda.synchronize()
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            with autocast:
                out = model(**batch)
            loss = out.loss
            if step == 1 and cuda:
                row["forward_bytes"] = torch.cuda.memory_allocated() - before  # saved for backward, and outputs
            loss.backward()
            if step == 1 and cuda:
                torch.cuda.synchronize()
                row["peak_fwd_bwd"] = torch.cuda.max_memory_allocated() - base  # this step's forward and backward
            if step == 1:
                del out, loss, batch
                if cuda:
                    torch.cuda.synchronize()
                    # FSDP1 frees its all-gathered buffers under `record_stream`: the caching allocator
                    # counts such a block as allocated until it processes the block's events, which it
                    # does on the next allocation. Allocate once so that only live tensors are counted.
                    torch.empty(1, device=device)
                    row["measured"] = torch.cuda.memory_allocated() - base
                    # what the tensors asked for, before the caching allocator rounds each block up
                    # (to 512 B, and large blocks to 2 MiB segments whose remainder <= 1 MiB is not split)
                    row["requested"] = torch.cuda.memory_stats()["requested_bytes.all.current"] - base_requested
                if mt is not None:
                    snap = mt.get_tracker_snapshot("current")
                    cats = {str(k): v for k, v in snap[device].items()}
                    row["memtracker"] = cats
                if cuda and mt is None:  # the second optimizer step's own peak (its temporaries)
                    torch.cuda.reset_peak_memory_stats()
                    opt.step()
                    torch.cuda.synchronize()
                    row["step_peak"] = torch.cuda.max_memory_allocated() - base
                break
            opt.step()
            opt.zero_grad(set_to_none=True)
            if mt is not None:
                mt.reset_mod_stats()
    del model, opt
    return row


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _pg(world: int, rank: int, backend: str) -> None:
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group(backend, store=FakeStore(), rank=rank, world_size=world)


def _warm_up(args: argparse.Namespace, device: Any) -> None:
    """One discarded single-device step per model and precision before the first recorded row.

    cuBLAS allocates its workspaces (one per handle and stream: the forward's thread and autograd's
    backward thread each have their own) from the caching allocator at the first matmul and keeps
    them for the process's life; without this the first recorded row counts them (64 MiB on an H200).
    """
    for model in args.models:
        for precision in args.precisions:
            cfg = {"model": model, "strategy": "single", "precision": precision,
                   "optimizer": args.optimizers[0], "world_size": 1, **_shape(args)}
            measure_one(cfg, 0, 2, device)


def _shape(args: argparse.Namespace) -> dict[str, int]:
    """The micro-batch shape `--batch`/`--seq` ask for (rows without it use 2 x 64)."""
    return {"batch": args.batch, "seq": args.seq} if args.batch else {}


def measure(args: argparse.Namespace) -> None:
    import torch
    import transformers

    device = torch.device("cuda", 0) if not args.cpu else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    meta = {"torch": torch.__version__, "transformers": transformers.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "commit": args.commit, "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")}
    start = time.perf_counter()
    backend = "fake"
    if device.type == "cuda":
        _warm_up(args, device)
    for cfg in configs(args.world_sizes, args.models):
        if cfg["strategy"] not in args.strategies or cfg["precision"] not in args.precisions:
            continue
        if cfg["optimizer"] not in args.optimizers:
            continue
        cfg.update(_shape(args))
        for rank in range(cfg["world_size"]):
            if cfg["strategy"] != "single":
                _pg(cfg["world_size"], rank, backend)
            for phase in range(3):
                try:
                    row = measure_one(cfg, rank, phase, device, tracker=args.tracker and cfg["strategy"] == "fsdp2")
                except Exception as err:  # noqa: BLE001 - one failing row is recorded, not fatal
                    row = {**cfg, "rank": rank, "phase": phase, "error": f"{type(err).__name__}: {err}"[:500]}
                rows.append(row)
                print(json.dumps(row), flush=True)
        (out / args.name).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
        if time.perf_counter() - start > args.budget_s:
            print("budget reached; stopping", flush=True)
            break
    meta["wall_s"] = round(time.perf_counter() - start, 1)
    (out / args.name).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


# --- comparison with ftsc explain ----------------------------------------------------------

def ftsc_source(bench: Bench, cfg: dict[str, Any]) -> str:
    """The configuration as a `.ftsc` schedule (phases, sharding block, precision)."""
    phases = schedule_of(bench, cfg["strategy"])
    lines = ["schedule {", "    max_depth = 2", "}", ""]
    for k, pats in enumerate(phases):
        lines.append(f"phase {k} {{")
        lines += [f"    thaw /{p}/" for p in pats]
        lines += ["}", ""]
    strategy, precision = cfg["strategy"], cfg["precision"]
    if strategy in ("fsdp1", "fsdp1-flat"):
        lines += ["fsdp {", f"    auto_wrap_policy = [{bench.layer_class}]",
                  f"    use_orig_params = {'true' if strategy == 'fsdp1' else 'false'}",
                  f'    precision = "{precision}"', "}"]
    elif strategy == "fsdp2":
        lines += ["fsdp2 {", f"    data_parallel_size = {cfg['world_size']}", "    tensor_parallel_size = 1",
                  f'    precision = "{precision}"']
        if precision == "bf16-mixed":
            lines.append("    fsdp_default_kwargs = {mp_policy = {param_dtype = bf16, reduce_dtype = float32}}")
        lines += [f"    shard /{bench.layers}/", '    shard ""', "}"]
    return "\n".join(lines) + "\n"


def explain_inputs(bench: Bench, cfg: dict[str, Any], work: Path) -> tuple[Path, Path | None]:
    """The configuration as files: its `.ftsc` schedule, and for one device or DDP (no sharding
    block) a LightningCLI trainer config naming the strategy, precision and devices."""
    path = work / f"{cfg['model']}_{cfg['strategy']}_{cfg['precision']}_{cfg['world_size']}.ftsc"
    path.write_text(ftsc_source(bench, cfg))
    if cfg["strategy"] not in ("single", "ddp"):
        return path, None
    trainer = work / f"{path.stem}.trainer.yaml"
    strategy = "ddp" if cfg["strategy"] == "ddp" else "auto"
    trainer.write_text(f"trainer:\n  strategy: {strategy}\n  precision: {cfg['precision']}\n"
                       f"  devices: {cfg['world_size']}\n")
    return path, trainer


def explain_json(bench: Bench, cfg: dict[str, Any], work: Path, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run `ftsc explain --format json [extra]` on the configuration; the parsed §5.3 report."""
    path, trainer = explain_inputs(bench, cfg, work)
    cmd = [sys.executable, "-m", "ftsc", "explain", str(path), "--model",
           f"{Path(__file__).resolve().parent / 'explain_models.py'}:{bench.factory}",
           "--world-size", str(cfg["world_size"]), "--optimizer", cfg["optimizer"], "--format", "json", *extra]
    if trainer is not None:
        cmd += ["--lightning-config", str(trainer)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
    if proc.returncode not in (0, 1):
        return {"error": (proc.stderr or proc.stdout).strip()[-800:], "cmd": cmd[3:]}
    return json.loads(proc.stdout)


def compare(args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    metas = []
    for path in args.measured:
        data = json.loads(Path(path).read_text())
        metas.append(data["meta"])
        rows += data["rows"]
    if len({m.get("alloc_conf", "") for m in metas}) > 1:
        raise SystemExit("compare: the results were measured under different PYTORCH_CUDA_ALLOC_CONF settings")
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    table = []
    for cfg, group in _by_config(rows, CONFIG_KEYS):
        report = explain_json(BENCHES[cfg["model"]], cfg, work)
        for phase in range(3):
            ranks = [r for r in group if r["phase"] == phase]
            bad = [r for r in ranks if "measured" not in r]
            entry = {**cfg, "phase": phase, "ranks": len(ranks)}
            if bad or not ranks:
                entry["error"] = bad[0].get("error", "missing") if bad else "missing"
            else:
                # Compare with the bytes the tensors requested when recorded (older results have only
                # `memory_allocated`, which adds the caching allocator's rounding of every block).
                key_of = "requested" if all("requested" in r for r in ranks) else "measured"
                busiest = max(ranks, key=lambda r: r[key_of])
                entry.update(measured=busiest[key_of], basis=key_of, allocated=busiest["measured"],
                             busiest_rank=busiest["rank"], spread=busiest[key_of] - min(r[key_of] for r in ranks))
                if "memtracker" in busiest:
                    cats = busiest["memtracker"]  # FSDPMemTracker's categories, each rounded up to 512 B
                    entry["memtracker"] = cats.get("Total", sum(v for k, v in cats.items() if k != "Total"))
            if "error" in report:
                entry["explain_error"] = report["error"]
            elif "measured" in entry:
                mem = report["phases"][phase]["memory"]
                entry["explain"] = mem["model_states"]
                entry["explain_parts"] = {k: mem[k] for k in ("params", "buffers", "grads", "optimizer")}
                entry.update(_errors(mem["model_states"], entry["measured"]))
                entry.update(_errors(mem["model_states"], entry["allocated"], "_allocated"))
                if "memtracker" in entry:
                    entry["error_bytes_memtracker"] = mem["model_states"] - entry["memtracker"]
            table.append(entry)
    (work / "compare.json").write_text(json.dumps({"meta": metas, "rows": table}, indent=1) + "\n")
    (work / "rows.md").write_text(markdown(table) + "\n")
    (work / "summary.md").write_text(summary(table) + "\n")
    print(summary(table))


def _by_config(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Rows grouped by the values of `keys` (ranks and phases of one configuration), as
    `(configuration, rows)` in table order: model, strategy as listed, precision, optimizer, W."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    order = sorted(groups, key=lambda k: (k[0], STRATEGIES.index(k[1]), *k[2:5]))
    return [(dict(zip(keys, k, strict=True)), groups[k]) for k in order]


def _measured_peak(row: dict[str, Any]) -> int:
    """The step's peak: its forward and backward, or its optimizer step where measured."""
    return max(row["peak_fwd_bwd"], row.get("step_peak", 0))


def _pct(estimate: int, measured: int) -> str:
    return f"{100 * (estimate - measured) / measured:+.1f}"


def peak(args: argparse.Namespace) -> None:
    """explain's activation and peak estimates (`--batch`/`--seq` of each row) against the GPU's
    bytes added by the forward (saved for backward, and the outputs) and its forward+backward peak."""
    rows = [r for path in args.measured for r in json.loads(Path(path).read_text())["rows"] if "peak_fwd_bwd" in r]
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    head = ("| model | strategy | precision | W | batch x seq | phase | forward MiB (measured) | activations MiB "
            "(explain) | error % | peak MiB (measured) | measured peak in | peak MiB (explain) | error % |")
    out = [head, "|---" * 13 + "|"]
    for cfg, group in _by_config(rows, (*CONFIG_KEYS, "batch", "seq")):
        batch, seq = cfg["batch"] or 2, cfg["seq"] or 64
        seq = VIT_TOKENS if cfg["model"] == "vit" else seq
        report = explain_json(BENCHES[cfg["model"]], cfg, work, ("--batch", str(batch), "--seq", str(seq)))
        for phase in range(3):
            ranks = [r for r in group if r["phase"] == phase]
            if not ranks or "error" in report:
                continue
            busiest = max(ranks, key=_measured_peak)
            mem = report["phases"][phase]["memory"]
            out.append("| " + " | ".join([
                cfg["model"], cfg["strategy"], cfg["precision"], str(cfg["world_size"]), f"{batch} x {seq}", str(phase),
                f"{busiest['forward_bytes'] / MIB:.0f}", f"{mem['activations'] / MIB:.0f}",
                _pct(mem["activations"], busiest["forward_bytes"]), f"{_measured_peak(busiest) / MIB:.0f}",
                "optimizer step" if busiest.get("step_peak", 0) > busiest["peak_fwd_bwd"] else "forward/backward",
                f"{mem['peak'] / MIB:.0f}", _pct(mem["peak"], _measured_peak(busiest))]) + " |")
    (work / "peak.md").write_text("\n".join(out) + "\n")
    print("\n".join(out))


def _errors(explain: int, measured: int, suffix: str = "") -> dict[str, Any]:
    """explain - measured, in bytes and %, and whether it is within the issue's 2 % or 16 MiB."""
    err = explain - measured
    return {f"error_bytes{suffix}": err, f"error_pct{suffix}": round(100 * err / measured, 3),
            f"ok{suffix}": abs(err) <= max(0.02 * measured, 16 * MIB)}


def _span(entries: list[dict[str, Any]], key: str, unit: float, fmt: str = "+.2f") -> str:
    return f"{min(e[key] for e in entries) / unit:{fmt}} .. {max(e[key] for e in entries) / unit:{fmt}}"


def summary(table: list[dict[str, Any]]) -> str:
    """One line per model, strategy and precision: rows within the bound, error range (both bases)."""
    head = ("| model | strategy | precision | rows | within bound (requested) | error MiB (requested) "
            "| within bound (allocated) | error MiB (allocated) | error % (allocated) |")
    out = [head, "|---|---|---|---:|---:|---|---:|---|---|"]
    keys = sorted({(e["model"], e["strategy"], e["precision"]) for e in table},
                  key=lambda k: (k[0], STRATEGIES.index(k[1]), k[2]))
    for key in keys:
        rows = [e for e in table if (e["model"], e["strategy"], e["precision"]) == key]
        done = [e for e in rows if "ok" in e]
        cells = [*key, str(len(rows)), str(sum(e["ok"] for e in done))]
        if not done:
            out.append("| " + " | ".join(cells + ["", "0", "", ""]) + " |")
            continue
        cells += [_span(done, "error_bytes", MIB), str(sum(e["ok_allocated"] for e in done)),
                  _span(done, "error_bytes_allocated", MIB), _span(done, "error_pct_allocated", 1)]
        out.append("| " + " | ".join(cells) + " |")
    done = [e for e in table if "ok" in e]
    out.append("")
    out.append(f"{len(table)} rows; {sum(e['error_bytes'] == 0 for e in done)} byte-exact and "
               f"{sum(e['ok'] for e in done)} within 2 % or 16 MiB of the requested bytes; "
               f"{sum(e['ok_allocated'] for e in done)} within the bound of `memory_allocated()`.")
    tracked = [e for e in done if "error_bytes_memtracker" in e]
    if tracked:
        out.append(f"FSDPMemTracker on {len(tracked)} rows: explain - tracker total "
                   f"{_span(tracked, 'error_bytes_memtracker', 1, '+,.0f')} bytes.")
    return "\n".join(out)


def markdown(table: list[dict[str, Any]]) -> str:
    head = ("| model | strategy | precision | optimizer | W | phase | measured MiB (busiest rank) | rank spread MiB "
            "| allocated MiB | explain MiB | error MiB | error % | ok | error MiB (allocated) | ok (allocated) |")
    out = [head, "|---" * 15 + "|"]
    for e in table:
        cells = [e["model"], e["strategy"], e["precision"], e["optimizer"], str(e["world_size"]), str(e["phase"])]
        if "measured" not in e:
            out.append("| " + " | ".join(cells + ["failed: " + e.get("error", "")[:60]] + [""] * 8) + " |")
            continue
        cells += [f"{e['measured'] / MIB:.1f}", f"{e['spread'] / MIB:.1f}", f"{e['allocated'] / MIB:.1f}"]
        if "explain" in e:
            cells += [f"{e['explain'] / MIB:.1f}", f"{e['error_bytes'] / MIB:+.2f}", f"{e['error_pct']:+.2f}",
                      "yes" if e["ok"] else "**no**", f"{e['error_bytes_allocated'] / MIB:+.2f}",
                      "yes" if e["ok_allocated"] else "**no**"]
        else:
            cells += ["explain failed", "", "", "", "", ""]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", required=True)
    m.add_argument("--name", default="explain_memory_measured.json")
    m.add_argument("--world-sizes", type=int, nargs="+", default=[1, 2, 8])
    m.add_argument("--models", nargs="+", default=list(BENCHES))
    m.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    m.add_argument("--precisions", nargs="+", default=list(PRECISIONS))
    m.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS))
    m.add_argument("--tracker", action="store_true", help="also record FSDPMemTracker's categories (FSDP2 rows)")
    m.add_argument("--cpu", action="store_true", help="run on CPU (FSDPMemTracker only; no memory_allocated)")
    m.add_argument("--commit", default="")
    m.add_argument("--budget-s", type=float, default=1e9)
    m.add_argument("--batch", type=int, default=0, help="micro-batch size (default 2)")
    m.add_argument("--seq", type=int, default=64, help="Llama sequence length with --batch (default 64)")
    for name in ("compare", "peak"):
        c = sub.add_parser(name)
        c.add_argument("measured", nargs="+")
        c.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    {"measure": measure, "compare": compare, "peak": peak}[args.cmd](args)


if __name__ == "__main__":
    main()
