"""The best genotypes of a search as `.abz` files: `OUT/rank1/genotype.abz`, `OUT/rank2/...`.

Each file starts with comment lines (fitness, id, history index, the formula of every attention graph) and
parses back to the candidate (`abz check` accepts it). The Hugging Face folders beside them are written
by the `abz export` command (`autobert_zero/cli/search.py`, `autobert_zero/cli/export_weights.py`), which may
import the compiler. Each rank folder also gets a model card (`model_card`: the genotype, its sizes and costs,
what its weights are and where they came from, the scores the search gave it) and the export folder an index
(`index_text`); the numbers are computed by the command and handed in, so this module stays free of torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autobert_zero.grammar import AttentionLayer, ConvLayer, Genotype, formula, parse_genotype
from autobert_zero.io import atomic_write_text

from .history import HistoryLine, best_lines


def best_candidates(history: Sequence[Mapping[str, Any]], top: int) -> list[dict[str, Any]]:
    """The `top` best distinct genotypes (by fitness, earliest first on ties) of a history, as JSON objects
    (`StateStore.history`)."""
    return [line.to_json() for line in best_lines(map(HistoryLine.from_json, history), top)]


def genotype_file_text(line: Mapping[str, Any]) -> str:
    """A history line's genotype as a commented .abz text."""
    genotype = parse_genotype(line["genotype"])
    header = [f"# found by abz search: fitness {line['fitness']:.6g}, candidate #{line['index']}, "
              f"id {line['id']}"]
    header += [f"#   {g.name}: {formula(g)}" for g in genotype.graphs]
    return "\n".join(header) + "\n\n" + line["genotype"]


def write_genotypes(best: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """Write `out/rank{i}/genotype.abz` for each line; returns the rank folders."""
    folders = []
    for rank, line in enumerate(best, start=1):
        folder = out / f"rank{rank}"
        atomic_write_text(folder / "genotype.abz", genotype_file_text(line))
        folders.append(folder)
    return folders


# ---------------------------------------------------------------------------------------------------
# model cards


@dataclass(frozen=True)
class WeightsInfo:
    """What an exported rank folder's Hugging Face model holds, for its model card and the index."""

    kind: str
    """"supernet" (supernet-inherited), "untrained" (random initialisation) or "none" (`--no-hf`); a trained
    source (a retrain folder) adds its own kind."""
    label: str
    """One line: what the weights are (the index lists it per rank)."""
    provenance: tuple[str, ...] = ()
    """Markdown bullet texts: where the weights come from (folders, hashes, steps, data)."""
    notes: tuple[str, ...] = ()
    """Paragraphs that qualify the weights (what they are not)."""


@dataclass(frozen=True)
class ModelFacts:
    """Sizes and costs of an exported genotype."""

    sizes: Mapping[str, int]
    """hidden_size, num_attention_heads, intermediate_size, max_position_embeddings and vocab_size."""
    seq_len: int
    flops_per_token: float
    params: int | None
    params_what: str
    """What `params` counts (the exported model class, or the search's own count)."""
    model_class: str | None = None
    """The Hugging Face class of `hf/` (None: no Hugging Face folder)."""
    tokenizer: bool = False


@dataclass(frozen=True)
class ScoreSource:
    """How the search scored its candidates (for the scores' provenance)."""

    fitness: str
    """Which fitness, in words (`search.fitness`, estimator, steps)."""
    held_out: str
    """Where the held-out MLM loss was measured."""
    glue_task: str | None = None
    final_scores: Mapping[str, float | None] = field(default_factory=dict)
    """Genotype id → its score on the search's final, adapted supernet (`summary.json`), where rescored."""


def _number(value: float | None, digits: int = 6) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def layer_lines(genotype: Genotype) -> list[str]:
    """One line per layer: the attention graph's name and formula, or the conv layer's kind and sizes."""
    lines = []
    for index, layer in enumerate(genotype.layers, start=1):
        if isinstance(layer, AttentionLayer):
            lines.append(f"{index}. attention `{layer.graph}`: `{formula(genotype.graph(layer.graph))}`")
        else:
            assert isinstance(layer, ConvLayer)
            lines.append(f"{index}. conv `{layer.kind}` kernel {layer.kernel}, dilation {layer.dilation}")
    return lines


def model_card(line: Mapping[str, Any], rank: int, search: Path, weights: WeightsInfo, facts: ModelFacts,
               scoring: ScoreSource) -> str:
    """The README.md of an exported rank folder: the genotype (text and per-layer formulas), its sizes and
    costs, what the weights are and where they came from, and the scores the search gave it."""
    genotype = parse_genotype(line["genotype"])
    s = facts.sizes
    out = [f"# rank {rank} of `abz search` {search}", "",
           f"Genotype id `{line['id']}` (a hash of the canonical genotype: it names the architecture wherever "
           f"it is found, whatever the graphs are called). Weights: **{weights.label}**.", "",
           "## Files", "",
           "- `genotype.abz`: the genotype (`abz check`, `abz show`, `abz pretrain --genotype` read it)"]
    if facts.model_class is not None:
        load = ("`AutoModelForMaskedLM.from_pretrained(\"hf\")` and `AutoTokenizer.from_pretrained(\"hf\")`"
                if facts.tokenizer else "`AutoModel.from_pretrained(\"hf\")` (no tokenizer: the vocabulary size is "
                f"{s['vocab_size']}, `--vocab-size`)")
        out.append(f"- `hf/`: a Hugging Face `{facts.model_class}` folder; load it with {load}: with "
                   f"`trust_remote_code=True` where only torch and transformers are installed (the folder carries "
                   f"its modeling code), or after `autobert_zero.register_auto_classes()`")
    else:
        out.append("- no Hugging Face folder (exported with `--no-hf`)")
    out += ["", "## Architecture", "", f"{genotype.num_layers} layers:", "", *layer_lines(genotype), "",
            "```", line["genotype"].strip(), "```", "",
            f"- sizes: hidden {s['hidden_size']}, {s['num_attention_heads']} heads, FFN {s['intermediate_size']}, "
            f"{s['max_position_embeddings']} positions, vocabulary {s['vocab_size']}",
            f"- parameters: {'n/a' if facts.params is None else f'{facts.params:,}'} ({facts.params_what})",
            f"- FLOPs per token: {facts.flops_per_token / 1e6:.3f} MFLOPs (forward, encoder only, at sequence "
            f"length {facts.seq_len}; `compiler.analysis`)", "",
            "## Weights", "", f"**{weights.label}**", ""]
    out += [f"- {item}" for item in weights.provenance]
    for note in weights.notes:
        out += ["", note]
    status = line["status"] + (f" ({line['reason']})" if line.get("reason") else "")
    scored_params = "n/a" if line.get("params") is None else f"{line['params']:,}"
    out += ["", "## Scores", "",
            f"Candidate #{line['index']} of {search / 'history.jsonl'} (line {line['index'] + 1}, round "
            f"{line['round']}, made by `{line['mutation']}`), rank {rank} by fitness among the search's distinct "
            f"scored genotypes.", "",
            f"- fitness: {_number(line['fitness'])} ({scoring.fitness}; higher is better)",
            f"- held-out MLM loss: {_number(line.get('eval_loss'))} ({scoring.held_out})"]
    if scoring.final_scores.get(line["id"]) is not None:
        out.append(f"- fitness on the search's final, adapted supernet (not saved): "
                   f"{_number(scoring.final_scores[line['id']])} (`summary.json`, final_supernet_scores)")
    if line.get("glue_score") is not None or scoring.glue_task is not None:
        out.append(f"- GLUE dev score ({scoring.glue_task or 'second stage'}): {_number(line.get('glue_score'))}")
    out += [f"- status: {status}",
            f"- as scored by the search: {scored_params} parameters, {_number(line.get('flops_per_token'))} "
            f"FLOPs per token", ""]
    return "\n".join(out)


def index_text(search: Path, entries: Sequence[tuple[Mapping[str, Any], WeightsInfo]]) -> str:
    """The README.md of an export folder: one row per rank folder."""
    rows = [f"# best genotypes of `abz search` {search}", "",
            "Each `rankN/` folder holds `genotype.abz`, a model card (`README.md`) and, unless exported with "
            "`--no-hf`, a Hugging Face folder `hf/`.", "",
            "| rank | id | fitness | held-out MLM loss | weights |", "|---|---|---|---|---|"]
    for rank, (line, weights) in enumerate(entries, start=1):
        rows.append(f"| [{rank}](rank{rank}/README.md) | `{line['id'][:12]}` | {_number(line['fitness'])} | "
                    f"{_number(line.get('eval_loss'))} | {weights.label} |")
    return "\n".join(rows) + "\n"
