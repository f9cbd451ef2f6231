"""Supernet candidate switching: `activate` with the compiled-core cache warm vs cold, and `extract`.

A 12-position supernet (hidden 64, 2 heads) switches between sampled candidates. Cold: the core cache is
emptied before each switch, so every attention graph is compiled again (what a recompiling design would
pay). Warm: the same candidates again, their cores already cached. Also timed: `extract` (a stand-alone
model with the inherited weights). Medians over the candidates; ratios from the same process.

    python -m benchmarks.bench_supernet_switch [--candidates 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from autobert_zero import load_genotype
from autobert_zero.compiler import AutoBertZeroConfig, AutoBertZeroSupernetForMaskedLM, clear_core_cache
from benchmarks.report import machine, print_table, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    host = load_genotype("genotypes/autobert_zero.abz")
    config = AutoBertZeroConfig.from_genotype(host, hidden_size=64, num_attention_heads=2, intermediate_size=256,
                                              vocab_size=4096)
    supernet = AutoBertZeroSupernetForMaskedLM(config)
    rng = random.Random(0)
    candidates = [supernet.sample(rng) for _ in range(args.candidates)]

    def timed(action: str) -> list[float]:
        out = []
        for genotype in candidates:
            if action == "cold":
                clear_core_cache()
            t0 = time.perf_counter()
            if action == "extract":
                supernet.extract(genotype)
            else:
                supernet.activate(genotype)
            out.append(1000 * (time.perf_counter() - t0))
        return out

    cold = timed("cold")
    warm = timed("warm")
    extract = timed("extract")
    rows = [[name, statistics.median(v), max(v)] for name, v in
            (("activate, cores compiled (cold)", cold), ("activate, cores cached (warm)", warm),
             ("extract (stand-alone copy)", extract))]
    print_table(f"supernet switching, {args.candidates} sampled 12-layer candidates (ms)", ["what", "median", "max"],
                rows)
    ratio = statistics.median(cold) / statistics.median(warm)
    print(f"cold / warm switching: {ratio:.1f}x")
    write_json("supernet_switch", {"benchmark": "supernet_switch", "machine": machine(),
                                   "candidates": args.candidates, "cold_ms": cold, "warm_ms": warm,
                                   "extract_ms": extract, "median_cold_ms": statistics.median(cold),
                                   "median_warm_ms": statistics.median(warm),
                                   "median_extract_ms": statistics.median(extract), "cold_over_warm": ratio})


if __name__ == "__main__":
    main()
