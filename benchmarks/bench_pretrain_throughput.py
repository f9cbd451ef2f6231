"""Pre-training throughput: the vanilla genotype vs `transformers.BertForMaskedLM`, same recipe.

Three models get the same sizes (the config's `model:` section, as many layers as the genotype), the same
DeepSpeed engine set-up (the config's `deepspeed:` section, AdamW, warm-up schedule), and the same masked
batches: our compiled genotype with the dense MLM head (logits at every position, as BERT computes them),
the same genotype as pre-training uses it (`sparse_mlm_logits`: the head runs only at the ~15% labelled
positions), and `BertForMaskedLM` with its defaults. Two ratios, each ours / BERT (≥ 1: not slower):
- like for like = dense genotype / BERT: what the compiler itself costs or saves;
- as used = sparse genotype / BERT: what `abz pretrain` gets, the sparse head's saving included.
Timed chunks of optimizer steps rotate through the models in mirrored order (A B C C B A) in one process,
so machine noise hits all alike; tokens/s = tokens seen / time spent in that model's chunks.
Writes benchmarks/results/pretrain_throughput_<config name>.json.

    python -m benchmarks.bench_pretrain_throughput [--config configs/tiny.yaml] [--rounds 6] [--steps 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertForMaskedLM

from autobert_zero.config.load import batch_plan, load_config
from autobert_zero.train.data.order import StreamOrder
from autobert_zero.train.engine import build_engine, init_distributed
from autobert_zero.train.mlm import mlm_step, prepare_mlm_data
from autobert_zero.train.models import build_mlm_model, load_genotype_file, model_kwargs
from benchmarks.report import print_table, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--genotype", default="genotypes/bert.abz", help="a vanilla-attention genotype")
    parser.add_argument("--corpus", default=None, help="default: the embedded corpus")
    parser.add_argument("--rounds", type=int, default=6, help="A/B/B/A rounds")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per timed chunk")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    args = parser.parse_args()

    cfg = load_config(args.config)
    rank, world = init_distributed()
    plan = batch_plan(cfg, "pretrain", world)
    cfg.data = dataclasses.replace(cfg.data, corpus=args.corpus, eval_blocks=0)
    prepared = prepare_mlm_data(cfg)
    tokenizer, data = prepared.tokenizer, prepared.data
    order = StreamOrder(len(data.train_blocks), cfg.seed)
    genotype = load_genotype_file(args.genotype)
    layers = genotype.num_layers
    assert tokenizer.pad_token_id is not None
    kwargs = model_kwargs(cfg.model, len(tokenizer), tokenizer.pad_token_id)
    dense = build_mlm_model(genotype, cfg.model, len(tokenizer), tokenizer.pad_token_id, cfg.seed)
    dense.config.sparse_mlm_logits = False  # logits at every position, as BertForMaskedLM computes them
    models = {
        "genotype_dense": dense,
        "genotype_sparse": build_mlm_model(genotype, cfg.model, len(tokenizer), tokenizer.pad_token_id,
                                           cfg.seed),
        "bert": BertForMaskedLM(BertConfig(num_hidden_layers=layers, **kwargs)),
    }
    assert models["genotype_sparse"].config.sparse_mlm_logits
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    engines = {name: build_engine(m, cfg.deepspeed, plan, cfg.pretrain.lr, cfg.pretrain.weight_decay,
                                  cfg.pretrain.max_steps, cfg.pretrain.warmup_steps) for name, m in models.items()}
    step = {name: 0 for name in engines}
    seconds = {name: 0.0 for name in engines}

    def run(name: str, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            mlm_step(engines[name], data, order, plan, step[name], rank)
            step[name] += 1
        return time.perf_counter() - start

    for name in engines:
        run(name, args.warmup)
    timed_steps = {name: 0 for name in engines}
    names = list(engines)
    for r in range(args.rounds):
        order_r = names[r % len(names):] + names[:r % len(names)]  # each model leads in turn
        for name in order_r + order_r[::-1]:
            seconds[name] += run(name, args.steps)
            timed_steps[name] += args.steps
    tokens_per_step = plan.train_batch_size * data.block_length
    rate = {name: tokens_per_step * timed_steps[name] / seconds[name] for name in engines}
    rows: list[list[Any]] = [[name, layers, params[name], timed_steps[name], seconds[name], rate[name]]
                             for name in engines]
    title = (f"MLM pre-training throughput, {args.config}: H={cfg.model.hidden_size} A={cfg.model.num_attention_heads} "
             f"FFN={cfg.model.intermediate_size}, batch {plan.train_batch_size} × {data.block_length} tokens, "
             f"ZeRO {cfg.deepspeed.get('zero_optimization', {}).get('stage', 0)}, threads {torch.get_num_threads()}")
    print_table(title, ["model", "layers", "params", "timed steps", "seconds", "tokens/s"], rows)
    like_for_like = rate["genotype_dense"] / rate["bert"]
    as_used = rate["genotype_sparse"] / rate["bert"]
    print(f"\nratio like for like (dense MLM head both sides) = {like_for_like:.3f}")
    print(f"ratio as used (our sparse MLM head vs BertForMaskedLM's default) = {as_used:.3f}")
    write_json(f"pretrain_throughput_{Path(args.config).stem}", {
        "config": args.config, "genotype": args.genotype, "layers": layers, "params": params,
        "tokens_per_step": tokens_per_step, "rounds": args.rounds, "steps_per_chunk": args.steps,
        "seconds": seconds, "tokens_per_s": rate,
        "ratio_like_for_like": like_for_like, "ratio_as_used": as_used,
    })


if __name__ == "__main__":
    main()
