"""Which live CUDA blocks a measured row holds beyond model states (for bench_explain_memory).

    python benchmarks/probe_explain_extra.py --out DIR   # on a GPU

Runs `bench_explain_memory.measure_one` for a few configurations with torch's allocator history
recording on, and writes, per configuration, the live blocks of 4 MiB and more at the measuring
point with the innermost frames of the code that allocated them (torch's `_snapshot`). Writes
`DIR/extra.json`; prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_explain_memory as bem

CASES = [("llama", "fsdp2", 2, 0), ("llama", "fsdp1-flat", 2, 0), ("llama", "single", 1, 0),
         ("llama", "fsdp1", 2, 0), ("vit", "fsdp2", 2, 0)]


def frames(block: dict) -> list[str]:
    out = []
    for f in block.get("frames", []):
        name = f.get("filename", "")
        if "torch/" in name or "transformers/" in name or "bench_" in name:
            out.append(f"{name.split('site-packages/')[-1]}:{f.get('line')} {f.get('name')}")
    return out[:10]


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    result = []
    for model, strategy, world, phase in CASES:
        cfg = {"model": model, "strategy": strategy, "precision": "32-true", "optimizer": "adamw", "world_size": world}
        if strategy != "single":
            bem._pg(world, 0, "fake")
        bem.measure_one(cfg, 0, phase, device)  # warm-up: workspaces and caches exist before `base`
        torch.cuda.memory._record_memory_history(max_entries=200000)
        seen: dict = {}
        real_sync = torch.cuda.synchronize

        def grab(*a, **k):  # the bench synchronizes right before it reads memory_allocated
            real_sync(*a, **k)
            seen["snap"] = torch.cuda.memory._snapshot()
        torch.cuda.synchronize = grab
        try:
            row = bem.measure_one(cfg, 0, phase, device)
        finally:
            torch.cuda.synchronize = real_sync
            torch.cuda.memory._record_memory_history(enabled=None)
        blocks = []
        for seg in seen["snap"]["segments"]:
            for b in seg["blocks"]:
                if b["state"] == "active_allocated" and b["size"] >= 4 << 20:
                    blocks.append({"mib": round(b["size"] / 2**20, 2), "frames": frames(b)})
        blocks.sort(key=lambda b: -b["mib"])
        entry = {**cfg, "phase": phase, "measured_mib": round(row.get("measured", 0) / 2**20, 1), "blocks": blocks}
        result.append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k != "blocks"}), flush=True)
        for b in blocks[:25]:
            print(f"  {b['mib']:9.2f} MiB  {' <- '.join(b['frames'][:4])}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "extra.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
