"""Gradual unfreezing of a small Llama under FSDP1 or FSDP2, driven by ftsc's callback or by FTS's.

    python examples/gpu/llama_finetune.py --strategy fsdp2 --out runs/fsdp2
    python examples/gpu/llama_finetune.py --strategy fsdp2 --out runs/fsdp2-resumed \\
        --resume runs/fsdp2/ckpt/epoch=1.ckpt
    python examples/gpu/llama_finetune.py --strategy fsdp1 --scheduler fts --out runs/fsdp1-fts

Lightning starts one process per device itself (no torchrun). The model is a transformers
`LlamaForCausalLM` built from a config (nothing is downloaded); the data is synthetic token
sequences that follow an arithmetic rule, so the loss falls quickly.

The schedule is FTS's YAML format, written to `OUT/schedule.yaml`, and the sharding is configured
the way FTS users configure it: on the strategy (FSDP1 auto-wrap policy, `use_orig_params`,
checkpoint type; or FSDP2's `ModelParallelStrategy`) plus `strategy_adapter_cfg`
(`awp_overrides` for FSDP1, `fsdp_plan` for FSDP2). Moving from FTS to ftsc changes only the
callback's import (see docs/runtime.md); `--scheduler fts` runs FinetuningScheduler itself on
the same model, data, seed and schedule.

Phases: 0 = lm_head + final norm, 1 = the upper half of the decoder layers, 2 = the lower half,
3 = the token embeddings; one epoch each (`max_transition_epoch`), then the last phase trains on.

Output, written by rank 0 to `OUT/stats.json`: per epoch the phase, trainable parameters
(count and numel over all ranks), mean step time and tokens/s (the first steps of each epoch
excluded), peak GPU memory (max over ranks, reset at each phase start) and validation loss; the
sharding self-check's verdict; the checkpoints written. `--accelerator cpu` runs FSDP2 on CPU
processes (gloo), which is what the CPU test suite does at `--size tiny`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings

_T0 = time.perf_counter()


def progress(message: str) -> None:
    """A progress line on stderr: seconds since start, rank, message."""
    rank = os.environ.get("LOCAL_RANK", "0")
    print(f"[llama_finetune +{time.perf_counter() - _T0:6.1f}s rank {rank}] {message}", file=sys.stderr, flush=True)
from pathlib import Path
from typing import Any

# NCCL's NVLink multicast (NVLS) stays off: it can take shared GPUs out of service.
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

import lightning.pytorch as pl
import torch
import yaml

warnings.filterwarnings("ignore", ".*does not have many workers.*")

SIZES: dict[str, dict[str, int]] = {
    # ~0.2 M parameters: CPU tests
    "tiny": {"vocab_size": 128, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
             "num_attention_heads": 4, "num_key_value_heads": 2},
    # ~205 M parameters: the GPU runs in benchmarks/README.md
    "small": {"vocab_size": 32000, "hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 12,
              "num_attention_heads": 16, "num_key_value_heads": 8},
    # ~0.9 B parameters
    "medium": {"vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 16,
               "num_attention_heads": 16, "num_key_value_heads": 8},
}


def fts_schedule(layers: int, lr: float, epochs: int) -> dict[int, dict[str, Any]]:
    """The 4-phase schedule in FTS's format (FTS patterns are `re.match`ed against parameter names)."""
    top = "|".join(str(i) for i in range(layers // 2, layers))
    bottom = "|".join(str(i) for i in range(layers // 2))
    return {
        0: {"params": ["model.lm_head.weight", "model.model.norm.weight"], "max_transition_epoch": 1},
        1: {"params": [rf"model.model.layers.({top})\..*"], "lr": lr, "max_transition_epoch": 2},
        2: {"params": [rf"model.model.layers.({bottom})\..*"], "lr": lr, "max_transition_epoch": 3},
        3: {"params": ["model.model.embed_tokens.weight"], "lr": lr, "max_transition_epoch": epochs},
    }


class ArithmeticTokens(torch.utils.data.Dataset):
    """Sequences `start, start + step, start + 2 step, ...` (mod vocab): learnable from two tokens."""

    def __init__(self, n: int, seq_len: int, vocab: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        start = torch.randint(0, vocab, (n, 1), generator=g)
        step = torch.randint(1, 8, (n, 1), generator=g)
        self.data = (start + step * torch.arange(seq_len)) % vocab

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i]


class LlamaFinetune(pl.LightningModule):
    """`self.model` is a `LlamaForCausalLM`; AdamW with a StepLR schedule."""

    def __init__(self, size: str = "small", lr: float = 3e-4) -> None:
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        self.save_hyperparameters()
        config = LlamaConfig(**SIZES[size], max_position_embeddings=4096, tie_word_embeddings=False)
        config._attn_implementation = "sdpa"
        self.model = LlamaForCausalLM(config)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self.model(input_ids=batch, labels=batch).loss
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val_loss", self.model(input_ids=batch, labels=batch).loss, sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr,
                                      weight_decay=0.0)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.9)}


def _local_numel(p: torch.Tensor) -> int:
    return p.to_local().numel() if hasattr(p, "to_local") else p.numel()


class PhaseStats(pl.Callback):
    """Per epoch: phase, trainable parameters, step time, tokens/s, peak memory, validation loss."""

    def __init__(self, tokens_per_step: int, skip: int = 2) -> None:
        self.tokens_per_step, self.skip = tokens_per_step, skip
        self.rows: list[dict[str, Any]] = []
        self._depth: int | None = None
        self._t0 = 0.0
        self._times: list[float] = []

    @staticmethod
    def _sync(trainer: pl.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def _reduce(self, trainer: pl.Trainer, value: float, op: str) -> float:
        t = torch.tensor(float(value), device=trainer.strategy.root_device)
        return float(trainer.strategy.reduce(t, reduce_op=op)) if trainer.world_size > 1 else value

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        depth = next(c.curr_depth for c in trainer.callbacks if hasattr(c, "curr_depth"))
        if depth != self._depth and trainer.strategy.root_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self._depth = depth
        trainable = [p for p in pl_module.parameters() if p.requires_grad]
        self.rows.append({"epoch": trainer.current_epoch, "phase": depth, "trainable_tensors": len(trainable),
                          "trainable_numel": int(self._reduce(trainer, sum(map(_local_numel, trainable)), "sum")),
                          "param_groups": len(trainer.optimizers[0].param_groups),
                          "lrs": [g["lr"] for g in trainer.optimizers[0].param_groups]})
        self._times = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._sync(trainer)
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._sync(trainer)
        self._times.append(time.perf_counter() - self._t0)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.rows or self.rows[-1]["epoch"] != trainer.current_epoch:
            return  # a run resumed at the end of an epoch: it has no start here
        times = self._times[self.skip:] or self._times
        row = self.rows[-1]
        row["steps_timed"] = len(times)
        if times:  # (a resumed epoch can have no batches left)
            row["step_s"] = round(self._reduce(trainer, sum(times) / len(times), "mean"), 5)
            row["tokens_per_s"] = round(self.tokens_per_step / row["step_s"], 1)
        if trainer.strategy.root_device.type == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**30
            row["peak_mem_gib"] = round(self._reduce(trainer, peak, "max"), 3)
        if "val_loss" in trainer.callback_metrics:
            row["val_loss"] = round(float(trainer.callback_metrics["val_loss"]), 6)
        if trainer.global_rank == 0:
            progress(f"epoch {row['epoch']} phase {row['phase']}: {row.get('tokens_per_s')} tokens/s, "
                     f"peak {row.get('peak_mem_gib')} GiB")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank == 0 and not trainer.sanity_checking:
            progress(f"validation: val_loss {float(trainer.callback_metrics.get('val_loss', float('nan'))):.5f}")


class SelfCheck(logging.Handler):
    """Collects ftsc's sharding self-check verdicts (the plan table at fit start names it)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "match the prediction" in text or "differ from" in text:
            self.messages.append(text.splitlines()[0])


def strategy_and_adapter(name: str, checkpoint: str) -> tuple[Any, dict[str, Any]]:
    """The Lightning strategy and FTS-style `strategy_adapter_cfg` for `name`."""
    if name == "fsdp2":
        from lightning.pytorch.strategies import ModelParallelStrategy

        # `model` last: the module training_step calls, so its group (the final norm) unshards in forward
        plan = {"model.lm_head": {}, r"model.model.layers.\d+$": {}, "model.model.embed_tokens": {}, "model": {}}
        strategy = ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1,
                                         save_distributed_checkpoint=checkpoint == "sharded")
        return strategy, {"fsdp_plan": plan, "fsdp_default_kwargs": {"reshard_after_forward": True}}
    from lightning.pytorch.strategies import FSDPStrategy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    strategy = FSDPStrategy(auto_wrap_policy={LlamaDecoderLayer}, use_orig_params=name == "fsdp1",
                            state_dict_type=checkpoint)
    # The phase-0 and phase-3 modules get FSDP units of their own, so no FlatParameter spans phases.
    return strategy, {"awp_overrides": ["model.lm_head", "model.model.norm", "model.model.embed_tokens"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategy", choices=["fsdp1", "fsdp1-flat", "fsdp2"], default="fsdp2",
                    help="fsdp1: FSDPStrategy (use_orig_params=True); fsdp1-flat: use_orig_params=False; "
                         "fsdp2: ModelParallelStrategy + fully_shard")
    ap.add_argument("--scheduler", choices=["ftsc", "fts"], default="ftsc")
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="training batches per epoch")
    ap.add_argument("--val-steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8, help="per device")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--checkpoint", choices=["full", "sharded"], default="full",
                    help="full: one file gathered on rank 0 (CPU); sharded: a directory of shards")
    ap.add_argument("--restore-best", action="store_true", help="restore the best checkpoint at each transition")
    ap.add_argument("--resume", help="checkpoint to resume from (trainer.fit(ckpt_path=...))")
    ap.add_argument("--accelerator", default="auto")
    ap.add_argument("--precision", help="Lightning precision (default: bf16-mixed on GPUs, 32-true on CPU)")
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(args.seed, workers=True)
    accelerator = args.accelerator if args.accelerator != "auto" else ("gpu" if torch.cuda.is_available() else "cpu")
    if accelerator == "cpu" and args.strategy != "fsdp2":
        raise SystemExit("FSDP1 (Lightning FSDPStrategy) needs GPUs; on CPU use --strategy fsdp2")
    precision = args.precision or ("bf16-mixed" if accelerator == "gpu" else "32-true")
    layers = SIZES[args.size]["num_hidden_layers"]
    schedule_path = out / "schedule.yaml"
    schedule_path.write_text(yaml.safe_dump(fts_schedule(layers, args.lr, args.epochs), sort_keys=False))
    strategy, adapter_cfg = strategy_and_adapter(args.strategy, args.checkpoint)
    if args.scheduler == "fts":
        from finetuning_scheduler import FinetuningScheduler
        from finetuning_scheduler import FTSCheckpoint as Checkpoint
    else:
        from lightning.pytorch.callbacks import ModelCheckpoint as Checkpoint

        from ftsc.lightning import FinetuningScheduler
    scheduler = FinetuningScheduler(ft_schedule=str(schedule_path), max_depth=3, epoch_transitions_only=True,
                                    restore_best=args.restore_best, strategy_adapter_cfg=adapter_cfg)
    tokens_per_step = args.batch_size * args.seq_len * args.devices
    stats = PhaseStats(tokens_per_step)
    checkpoints = Checkpoint(dirpath=str(out / "ckpt"), filename="{epoch}", monitor="val_loss", save_top_k=-1)
    check = SelfCheck()
    logging.getLogger("lightning.pytorch.ftsc").addHandler(check)  # the runtime's logger
    trainer = pl.Trainer(accelerator=accelerator, devices=args.devices, strategy=strategy, precision=precision,
                         max_epochs=args.epochs, limit_train_batches=args.steps, limit_val_batches=args.val_steps,
                         callbacks=[scheduler, stats, checkpoints], logger=False, default_root_dir=str(out),
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    module = LlamaFinetune(args.size, args.lr)  # on CPU, the same weights on every rank (seeded)
    n_params = sum(p.numel() for p in module.parameters())
    vocab = SIZES[args.size]["vocab_size"]
    n_train = args.steps * args.batch_size * args.devices
    train = torch.utils.data.DataLoader(ArithmeticTokens(n_train, args.seq_len, vocab, 0), batch_size=args.batch_size)
    val = torch.utils.data.DataLoader(ArithmeticTokens(args.val_steps * args.batch_size * args.devices, args.seq_len,
                                                       vocab, 1), batch_size=args.batch_size)
    progress(f"model built ({n_params:,} parameters); fitting")
    start = time.perf_counter()
    trainer.fit(module, train, val, ckpt_path=args.resume)
    progress(f"fit done in {time.perf_counter() - start:.1f} s")
    if trainer.global_rank == 0:
        result = {"args": vars(args), "device": torch.cuda.get_device_name() if accelerator == "gpu" else "cpu",
                  "torch": torch.__version__, "lightning": pl.__version__, "world_size": trainer.world_size,
                  "params": n_params, "fit_s": round(time.perf_counter() - start, 2), "epochs": stats.rows,
                  "self_check": check.messages, "final_phase": scheduler.curr_depth,
                  "checkpoints": sorted(p.name for p in (out / "ckpt").iterdir()) if (out / "ckpt").exists() else []}
        (out / "stats.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: result[k] for k in ("fit_s", "final_phase", "self_check")}))


if __name__ == "__main__":
    main()
