"""Compiler benchmark: genotype latency, and the compiled vanilla genotype vs `transformers.BertModel`.

1. Latency (median over repeats): parse; validate + canonicalise; compile to modules (fx cores + layers),
   for the shipped genotypes and random 12-layer genotypes.
2. Forward+backward throughput of `from_hf_bert(bert)` vs the same `BertModel` (same weights, same batch
   with padding), interleaved A/B/B/A in one process; ratio = BERT time / ours (≥ 1 means not slower).
   Our fused path (scaled_dot_product_attention lowering), the plain fx path, and optionally torch.compile.
3. Peak memory of one training step, each model in a fresh subprocess (peak RSS over the step, with
   glibc returning large blocks to the OS so RSS follows live tensors); ratio = ours / BERT (≤ 1 is good).

    python benchmarks/bench_compiler.py [--quick] [--compile] [--device cuda --dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertModel

from autobert_zero.compiler import AutoBertZeroConfig, AutoBertZeroModel, build_encoder, clear_core_cache, from_hf_bert
from autobert_zero.grammar import parse_genotype, sample_genotype, validate
from autobert_zero.grammar.canonical import canonicalize
from benchmarks.report import print_table, write_json

REPO = Path(__file__).resolve().parents[1]
SIZES: dict[str, Any] = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                         "intermediate_size": 1024}


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def cold_compile(genotype: Any, config: AutoBertZeroConfig) -> None:
    """IR → fx cores → layer modules, with an empty core cache (weights allocated, not initialised)."""
    clear_core_cache()
    build_encoder(genotype, config, init_std=None)


def latency(repeats: int) -> list[dict[str, Any]]:
    rng = random.Random(0)
    cases = [(name, (REPO / "genotypes" / name).read_text()) for name in ("bert.abz", "autobert_zero.abz")]
    cases += [(f"random-{i}", sample_genotype(rng, 12).to_text()) for i in range(5)]
    rows = []
    for name, text in cases:
        genotype = parse_genotype(text)
        config = AutoBertZeroConfig(genotype=text, hidden_size=256, num_attention_heads=4, intermediate_size=1024,
                                    vocab_size=1000)
        rows.append({
            "genotype": name,
            "parse_ms": median_ms(lambda t=text: parse_genotype(t), repeats),  # type: ignore[misc]
            "validate_canonical_ms": median_ms(lambda g=genotype: (validate(g), canonicalize(g)), repeats),  # type: ignore[misc]
            "compile_ms": median_ms(lambda g=genotype, c=config: cold_compile(g, c), repeats),  # type: ignore[misc]
            "model_ms": median_ms(lambda c=config: AutoBertZeroModel(c), max(5, repeats // 4)),  # type: ignore[misc]
        })
    return rows


def batch(device: str) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (8, 128), generator=gen)
    mask = torch.ones(8, 128, dtype=torch.long)
    for row, length in enumerate([128, 128, 120, 100, 96, 80, 64, 128]):
        mask[row, length:] = 0
    types = torch.zeros(8, 128, dtype=torch.long)
    types[:, 64:] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "token_type_ids": types.to(device)}


def train_step(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> None:
    out = model(**inputs).last_hidden_state
    out.float().pow(2).mean().backward()
    for p in model.parameters():
        p.grad = None


def throughput(rounds: int, use_compile: bool, device: str, dtype: torch.dtype) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=1000, **SIZES))
    bert = bert.to(device=device, dtype=dtype).train()  # type: ignore[call-arg]
    models: dict[str, torch.nn.Module] = {"transformers.BertModel": bert}
    fused = from_hf_bert(bert).to(device=device, dtype=dtype).train()
    models["abz vanilla (fused sdpa)"] = fused
    plain = from_hf_bert(bert)
    plain.config.fused_attention = False
    plain = AutoBertZeroModel(plain.config)
    plain.load_state_dict(fused.state_dict())
    models["abz vanilla (fx ops)"] = plain.to(device=device, dtype=dtype).train()
    if use_compile:
        models["abz vanilla (fused + torch.compile)"] = torch.compile(fused)  # type: ignore[assignment]
    inputs = batch(device)
    for model in models.values():
        for _ in range(2):
            train_step(model, inputs)
    times: dict[str, list[float]] = {name: [] for name in models}
    order = list(models)
    for r in range(rounds):
        for name in order if r % 2 == 0 else reversed(order):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            train_step(models[name], inputs)
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["transformers.BertModel"])
    tokens = inputs["input_ids"].numel()
    return [{"model": name, "median_ms": statistics.median(t) * 1e3, "tokens_per_s": tokens / statistics.median(t),
             "ratio_vs_bert": base / statistics.median(t)} for name, t in times.items()]


MEMORY_CHILD = """
import json, sys, torch
from transformers import BertConfig, BertModel
from autobert_zero.compiler import from_hf_bert
from benchmarks.bench_compiler import SIZES, batch, train_step
torch.set_num_threads(2)
torch.manual_seed(0)
model = BertModel(BertConfig(vocab_size=1000, **SIZES)).train()
if sys.argv[1] == "abz":
    model = from_hf_bert(model).train()
inputs = batch("cpu")
train_step(model, inputs)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
before = status("VmRSS:")
train_step(model, inputs)
print(json.dumps({"peak_step_bytes": status("VmHWM:") - before}))
"""


def peak_memory() -> list[dict[str, Any]]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(REPO)}
    rows = []
    for which in ("bert", "abz"):
        samples = []
        for _ in range(3):
            out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, which], capture_output=True, text=True,
                                 env=env, cwd=REPO, check=True, timeout=600)
            samples.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_step_bytes"])
        rows.append({"model": which, "peak_step_mib": statistics.median(samples) / 2**20})
    rows.append({"model": "ratio abz/bert", "peak_step_mib": rows[1]["peak_step_mib"] / rows[0]["peak_step_mib"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the fused model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    dtype = getattr(torch, args.dtype)
    lat = latency(repeats=20 if args.quick else 100)
    print_table("Latency per genotype (median ms; 12 layers, hidden 256; compile = IR → fx cores → layer modules, "
                "cold cache; model = whole HF model incl. embeddings and weight init)",
                ["genotype", "parse", "validate+canonical", "compile", "model"],
                [[r["genotype"], r["parse_ms"], r["validate_canonical_ms"], r["compile_ms"], r["model_ms"]]
                 for r in lat])
    thr = throughput(rounds=6 if args.quick else 20, use_compile=args.compile, device=args.device, dtype=dtype)
    print_table(f"Forward+backward, hidden 256, 4 layers, batch 8×128 with padding ({args.device}, {args.dtype})",
                ["model", "median ms", "tokens/s", "ratio vs BERT"],
                [[r["model"], r["median_ms"], r["tokens_per_s"], r["ratio_vs_bert"]] for r in thr])
    mem = peak_memory() if args.device == "cpu" else []
    if mem:
        print_table("Peak memory of one training step (MiB above the pre-step RSS; fresh process each)",
                    ["model", "peak MiB"], [[r["model"], r["peak_step_mib"]] for r in mem])
    suffix = "" if args.device == "cpu" else f"_{args.device}_{args.dtype}"
    write_json(f"compiler{suffix}", {"latency": lat, "throughput": thr, "peak_memory": mem,
                                     "settings": {"quick": args.quick, "compile": args.compile}})


if __name__ == "__main__":
    main()
