"""GPU benchmark (issue #19 §3): bf16 masked-LM pre-training throughput and model FLOPs utilisation.

For vanilla BERT, Figure 7 and a searched genotype, at the paper's small (L12 H256 A4) and base (L12 H768
A12) sizes, 128-token blocks: training tokens/s (bf16 autocast, AdamW, one optimizer step per batch, after
warm-up), MFU = achieved training FLOPs / the device's peak dense bf16 FLOPs, and peak memory; each with the
fused attention lowering (scaled_dot_product_attention) and the plain fx ops, and with `torch.compile` on and
off. Training FLOPs per token = 3 × forward FLOPs (the encoder's, counted by `compiler.analysis`, plus the
MLM decoder on the predicted 15%). Without a CUDA device it prints why and exits 0 (nothing written), unless
`--device cpu` asks for a smoke run (tiny sizes, no MFU goal; used by the tests).

    python -m benchmarks.bench_gpu [--sizes small base] [--steps 20] [--device cuda|cpu] [--quick]

Goal (issue #19): MFU ≥ 40% at base size on an H100/H200.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 256},
    "small": {"hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024},
    "base": {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
"""Peak dense bf16 tensor FLOP/s by device name fragment (vendor data sheets, SXM parts)."""
VOCAB = 30522
SEQ = 128
MLM_SHARE = 0.15


def genotypes() -> dict[str, str]:
    """bert, Figure 7, and a searched genotype (the end-to-end found-op arm once committed, else a seeded
    12-layer sample)."""
    import json

    from autobert_zero.grammar import sample_genotype

    out = {name: (REPO / "genotypes" / f"{file}.abz").read_text(encoding="utf-8")
           for name, file in (("bert", "bert"), ("figure7", "autobert_zero"))}
    arms = REPO / "benchmarks" / "results" / "end-to-end" / "arms.json"
    if arms.is_file():
        out["searched"] = json.loads(arms.read_text(encoding="utf-8"))["arms"][0]["genotype"]
    else:
        import random

        out["searched"] = sample_genotype(random.Random(0), 12).to_text()
    return out


def peak_flops(device: Any) -> tuple[str, float | None]:
    import torch

    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    return name, next((v for k, v in PEAK_BF16.items() if k in name), None)


def train_flops_per_token(genotype: str, sizes: dict[str, int]) -> float:
    from autobert_zero.compiler.analysis import StaticSizes, flops_per_token
    from autobert_zero.grammar import parse_genotype

    g = parse_genotype(genotype)
    encoder = flops_per_token(g, StaticSizes(**sizes, vocab_size=VOCAB), SEQ).per_token
    decoder = MLM_SHARE * (2 * sizes["hidden_size"] * VOCAB + 2 * sizes["hidden_size"] ** 2)
    return 3 * (encoder + decoder)


def measure(genotype: str, sizes: dict[str, int], fused: bool, compiled: bool, device: Any, steps: int,
            batch: int) -> dict[str, Any]:
    """Tokens/s, seconds per step and peak memory of `steps` bf16 training steps after 3 warm-up steps."""
    import torch

    from autobert_zero.compiler import AutoBertZeroConfig, AutoBertZeroForMaskedLM

    torch.manual_seed(0)
    config = AutoBertZeroConfig(genotype=genotype, vocab_size=VOCAB, max_position_embeddings=512,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, fused_attention=fused,
                                sparse_mlm_logits=True, **sizes)
    model = AutoBertZeroForMaskedLM(config).to(device)
    step_model: Any = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(5, VOCAB, (batch, SEQ), device=device)
    labels = torch.where(torch.rand(batch, SEQ, device=device) < MLM_SHARE, ids, torch.full_like(ids, -100))
    mask = torch.ones_like(ids)
    dtype = torch.bfloat16

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype):
            loss = step_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"seconds_per_step": seconds, "tokens_per_s": batch * SEQ / seconds, "peak_memory_bytes": peak}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["small", "base"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration (default 20)")
    parser.add_argument("--batch", type=int, default=64, help="blocks per step (default 64)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 steps, no torch.compile (a smoke run)")
    args = parser.parse_args(argv)
    import torch

    from benchmarks.report import print_table, write_json

    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing measured (run it on a GPU machine, or --device cpu for a "
              "smoke run)", file=sys.stderr)
        return 0
    device = torch.device(args.device)
    sizes = ["tiny"] if args.quick else args.sizes
    steps, batch = (2, 4) if args.quick else (args.steps, args.batch)
    name, peak = peak_flops(device)
    rows, results = [], []
    for size, (arch, text), fused, compiled in itertools.product(sizes, genotypes().items(), (True, False),
                                                                 (False,) if args.quick else (False, True)):
        r = measure(text, SIZES[size], fused, compiled, device, steps, batch)
        flops = train_flops_per_token(text, SIZES[size])
        mfu = r["tokens_per_s"] * flops / peak if peak else None
        results.append({"size": size, "genotype": arch, "fused_attention": fused, "torch_compile": compiled,
                        "train_flops_per_token": flops, "mfu": mfu, **r})
        rows.append([size, arch, "fused" if fused else "plain", "on" if compiled else "off",
                     round(r["tokens_per_s"]), "n/a" if mfu is None else f"{100 * mfu:.1f}%",
                     "n/a" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**30:.2f} GiB"])
    print_table(f"bf16 MLM training on {name}", ["size", "genotype", "attention", "compile", "tokens/s", "MFU",
                                                 "peak memory"], rows)
    if not args.quick:
        write_json("gpu", {"command": "python -m benchmarks.bench_gpu " + " ".join(argv or sys.argv[1:]),
                           "device": name, "peak_bf16_flops": peak, "seq_len": SEQ, "batch": batch,
                           "steps": steps, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
