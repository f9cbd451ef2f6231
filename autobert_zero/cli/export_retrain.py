"""`abz export RETRAIN_DIR --top K --out DIR`: the trained models of a finished retrain (`abz retrain`).

Arms are ranked by their mean held-out MLM loss over pre-training seeds (found and baseline arms alike: if a
baseline wins, it is rank 1). Each `rankN/` folder holds `genotype.abz`, a model card `README.md` (the
genotype and its formulas, sizes, parameters, FLOPs per token, training data, steps and lr, the held-out loss
of every seed and the GLUE scores, and where each came from) and `hf/`: the pre-trained Hugging Face folder
(model and tokenizer) of the arm's best seed, copied from `RETRAIN_DIR/runs/ARM/seedS/final`; with
`--all-seeds`, `hf-seedS/` for every seed instead. The retrain's weights are what they are: the size and
`--untrained` flags are refused.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autobert_zero.cli.options import SIZE_OVERRIDES
from autobert_zero.errors import ConfigError, SearchError
from autobert_zero.io import atomic_directory, atomic_write_text
from autobert_zero.json_files import read_json
from autobert_zero.run_dir import check_out_dir, open_run_dir

RECORD_FILE = "retrain.json"
RESULTS_FILE = "results.json"


def is_retrain(folder: Path) -> bool:
    return (folder / RECORD_FILE).is_file()


def _refuse_flags(args: argparse.Namespace, source: Path) -> None:
    given = [flag for key, flag in SIZE_OVERRIDES.items() if getattr(args, key, None) is not None]
    given += ["--vocab-size"] if args.vocab_size is not None else []
    given += ["--config"] if args.config is not None else []
    given += ["--untrained"] if args.untrained else []
    given += [f"--head {args.head}"] if args.head != "mlm" else []
    if given:
        raise ConfigError(f"{', '.join(given)}: {source} is a retrain; its exports are the trained masked-LM models at "
                          f"the retrain's sizes. Drop these flags (fine-tune an export with `abz finetune --init`)")


def ranked_arms(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The arms by mean held-out MLM loss, best first (ties: the results' order)."""
    summary = results["analysis"]["arms"]
    return sorted(results["arms"], key=lambda a: summary[a["name"]]["heldout_loss"]["mean"])


def _seed_losses(results: Mapping[str, Any], arm: str) -> dict[str, float]:
    return {seed: float(run["heldout_loss"]) for seed, run in results["pretrain"][arm].items()}


def model_card(results: Mapping[str, Any], arm: Mapping[str, Any], rank: int, source: Path,
               exported: Mapping[str, str]) -> str:
    """README.md of one exported arm."""
    from autobert_zero.evolve.export import layer_lines
    from autobert_zero.grammar import parse_genotype

    genotype = parse_genotype(arm["genotype"])
    entries = results["analysis"]["arms"][arm["name"]]
    config = read_json(source / RECORD_FILE)
    flat = config["config"]
    data = config.get("data", {})
    losses = _seed_losses(results, arm["name"])

    def interval(entry: Mapping[str, Any]) -> str:
        if entry["low"] is None:
            return f"{entry['mean']:.4f} (one seed)"
        return f"{entry['mean']:.4f} [95% CI {entry['low']:.4f}, {entry['high']:.4f}] over {entry['n']} seeds"

    lines = [f"# rank {rank} of `abz retrain` {source.resolve()}: {arm['name']} ({arm['kind']})", "",
             f"Genotype id `{arm['genotype_id']}`. Weights: **pre-trained from scratch by `abz retrain`** "
             f"({results['pretrain_steps']} steps), not inherited from a supernet.", "", "## Files", "",
             "- `genotype.abz`: the genotype"]
    lines += [f"- `{name}/`: {what}; load with `AutoModelForMaskedLM.from_pretrained(\"{name}\", "
              f"trust_remote_code=True)` (only torch and transformers needed: the folder carries its modeling code; "
              f"or after `import autobert_zero` without it) and `AutoTokenizer.from_pretrained(\"{name}\")`"
              for name, what in
              exported.items()]
    lines += ["", "## Architecture", "", f"{genotype.num_layers} layers:", "", *layer_lines(genotype), "",
              "```", arm["genotype"].strip(), "```", "",
              f"- sizes: hidden {flat.get('model.hidden_size')}, {flat.get('model.num_attention_heads')} heads, "
              f"FFN {arm['intermediate_size']} (sized to {100 * (arm['params_ratio'] - 1):+.1f}% of "
              f"{results['arms_reference']}'s parameters)",
              f"- parameters: {arm['params']:,} (base model, `compiler.analysis`)",
              f"- FLOPs per token: {arm['flops_per_token'] / 1e6:.3f} MFLOPs (forward, encoder)", "",
              "## Training", "",
              f"- corpus: {data.get('corpus') or 'the embedded default corpus'}; held-out: "
              + (f"document-disjoint text {data.get('eval_corpus')}" if data.get("eval_corpus") else
                 "blocks drawn from the corpus (not document-disjoint)"),
              f"- {results['pretrain_steps']} steps, peak lr {arm['lr']:g} (chosen by the retrain's lr sweep), "
              f"seeds {', '.join(losses)}", "", "## Scores", "",
              f"- held-out MLM loss: {interval(entries['heldout_loss'])}; per seed: "
              + ", ".join(f"seed {s} {v:.4f}" for s, v in losses.items())]
    for endpoint, entry in entries.items():
        if endpoint != "heldout_loss":
            lines.append(f"- GLUE {endpoint} (dev): {interval(entry)}")
    if arm["search_fitness"] is not None:
        lines.append(f"- search fitness {arm['search_fitness']:.4f}"
                     + (f", re-scored held-out loss {arm['rescored_loss']:.4f}" if arm["rescored_loss"] is not None
                        else "") + f" ({arm['source']})")
    lines += ["", f"From {source.resolve() / RESULTS_FILE}; the comparison with the other arms is in "
              f"{source.resolve() / 'report.md'}.", ""]
    return "\n".join(lines)


def export_retrain(args: argparse.Namespace) -> int:
    """The command (see the module docstring); every check passes before anything is written."""
    source, out = Path(args.file), Path(args.out)
    _refuse_flags(args, source)
    if not (source / RESULTS_FILE).is_file():
        raise SearchError(f"{source} is a retrain that has not finished ({RESULTS_FILE} is missing); continue it "
                          f"with `abz retrain ... --out {source} --resume`")
    results = read_json(source / RESULTS_FILE)
    arms = ranked_arms(results)
    if args.top > len(arms):
        raise SearchError(f"--top {args.top} is more than the {len(arms)} arms of {source}; expected 1..{len(arms)}")
    chosen = arms[:args.top]
    plans: list[tuple[dict[str, Any], dict[str, Path]]] = []
    for arm in chosen:
        losses = _seed_losses(results, arm["name"])
        seeds = list(losses) if args.all_seeds else [min(losses, key=lambda s: losses[s])]
        runs = source / "runs" / arm["name"]
        folders = {("hf-seed" + s if args.all_seeds else "hf"): runs / f"seed{s}" / "final" for s in seeds}
        for folder in folders.values():
            if not args.no_hf and not (folder / "config.json").is_file():
                raise SearchError(f"{folder} is missing (the trained model of {arm['name']}); the retrain folder "
                                  f"is incomplete")
        plans.append((arm, folders))
    outputs = [*(f"rank{i + 1}" for i in range(len(chosen))), "README.md"]
    check_out_dir(out, "abz export", force=args.force, outputs=outputs)
    index = [f"# trained models of `abz retrain` {source.resolve()}", "",
             "| rank | arm | kind | held-out MLM loss (mean over seeds) | parameters | folder |",
             "|---|---|---|---|---|---|"]
    with open_run_dir(out, "abz export", force=args.force, outputs=outputs):
        for rank, (arm, folders) in enumerate(plans, start=1):
            folder = out / f"rank{rank}"
            folder.mkdir(parents=True, exist_ok=True)
            header = [f"# {arm['name']} ({arm['kind']}) of abz retrain {source.resolve()}: id {arm['genotype_id']}"]
            atomic_write_text(folder / "genotype.abz", "\n".join(header) + "\n\n" + arm["genotype"])
            exported: dict[str, str] = {}
            if not args.no_hf:
                for name, final in folders.items():
                    with atomic_directory(folder / name) as tmp:
                        shutil.copytree(final, tmp, dirs_exist_ok=True)
                    exported[name] = f"the pre-trained model and tokenizer of {final.parent.name}"
            atomic_write_text(folder / "README.md", model_card(results, arm, rank, source, exported))
            mean = results["analysis"]["arms"][arm["name"]]["heldout_loss"]["mean"]
            index.append(f"| [{rank}](rank{rank}/README.md) | {arm['name']} | {arm['kind']} | {mean:.4f} | "
                         f"{arm['params']:,} | rank{rank}/ |")
            print(f"{folder}: {arm['name']} ({arm['kind']}), held-out MLM loss {mean:.4f} (mean over "
                  f"{len(_seed_losses(results, arm['name']))} seeds); weights: trained by abz retrain")
        atomic_write_text(out / "README.md", "\n".join(index) + "\n")
    return 0
