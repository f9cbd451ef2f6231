"""The arms of a retrain: a search's best genotypes (re-scored on held-out blocks the search never used) and
the baselines, each at an FFN width that puts its parameter count within ±2% of the first baseline's.

Re-scoring (`rescore_best`): the search's own fitness (its config, its supernet checked to be the one it
scored with) on the held-out blocks past the fitness's slice (`evaluate.eval_offset + eval_limit` to the
end of `data.eval_blocks`), which no candidate was scored on, so picking the top K is not a winner's-curse
artefact of the blocks that ranked them. A search that scored every held-out block leaves none: that is an
error unless the caller takes the search's own ranking (`--no-rescore`).

Equal size (`equal_size`): parameters are affine in the FFN width (every layer has one FFN), so the width is
solved from two counts (`compiler.analysis.parameter_report`, no model built) and rounded; an arm that cannot
come within the tolerance (its mixer alone outweighs the target) is reported as such, never silently kept.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autobert_zero.compiler.analysis import StaticSizes, flops_per_token, parameter_report
from autobert_zero.config.load import load_config
from autobert_zero.config.schema import Config, ModelSizes
from autobert_zero.errors import ConfigError, SearchError
from autobert_zero.evolve import HistoryLine
from autobert_zero.evolve.history import best_lines
from autobert_zero.evolve.state import checked_supernet, load_verified_history
from autobert_zero.grammar import Genotype, parse_genotype
from autobert_zero.train.models import load_genotype_file

SIZE_TOLERANCE = 0.02
"""Largest relative difference of an arm's parameters from the first baseline's."""
DEFAULT_BASELINES = ("genotypes/bert.abz", "genotypes/autobert_zero.abz")


@dataclass(frozen=True)
class Candidate:
    """A genotype that enters the retrain, before sizing: a found one (with its search scores) or a baseline."""

    name: str
    kind: str
    """`found` or `baseline`."""
    genotype: Genotype
    source: str
    search_fitness: float | None = None
    rescored_loss: float | None = None


def recorded_candidates(record: dict[str, Any], kinds: Sequence[str] = ("found", "baseline")) -> list[Candidate]:
    """The candidates a retrain's record (`retrain.json`) lists, of the given kinds, in the record's order."""
    return [Candidate(a["name"], a["kind"], parse_genotype(a["genotype"]), a["source"], a["search_fitness"],
                      a["rescored_loss"]) for a in record["arms"] if a["kind"] in kinds]


@dataclass(frozen=True)
class Arm:
    """A candidate at its equal-size FFN width."""

    candidate: Candidate
    intermediate_size: int
    params: int
    params_ratio: float
    """params / the first baseline's params."""
    flops_per_token: float
    within_tolerance: bool

    @property
    def name(self) -> str:
        return self.candidate.name

    def to_json(self) -> dict[str, Any]:
        c = self.candidate
        return {"name": c.name, "kind": c.kind, "genotype": c.genotype.to_text(), "genotype_id": c.genotype.id,
                "source": c.source, "search_fitness": c.search_fitness, "rescored_loss": c.rescored_loss,
                "intermediate_size": self.intermediate_size, "params": self.params,
                "params_ratio": self.params_ratio, "flops_per_token": self.flops_per_token,
                "within_tolerance": self.within_tolerance}


def search_config(search: Path) -> Config:
    """The resolved config a search ran with (`SEARCH/config.yaml`)."""
    path = search / "config.yaml"
    if not path.is_file():
        raise SearchError(f"{search} is not a search folder: it has no config.yaml (expected the --out folder of "
                          f"`abz search`)")
    return load_config(path)


def scored_lines(search: Path) -> tuple[dict[str, Any], list[HistoryLine]]:
    """A search's state and its scored (`ok`) history lines, best first; an error if it has none."""
    if not (search / "state.json").is_file():
        raise SearchError(f"{search} is not a search folder: it has no state.json (expected the --out folder of "
                          f"`abz search`)")
    body, history = load_verified_history(search)
    lines = best_lines(history, len(history))
    if not lines:
        raise SearchError(f"{search} has no scored candidates yet (every history line failed, or none was "
                          f"written); run or resume the search first")
    return body, lines


def rescore_pool(top: int) -> int:
    """How many of the search's best are re-scored to pick `top`: twice as many, at least three more."""
    return max(2 * top, top + 3)


def rescore_best(search: Path, lines: Sequence[HistoryLine], run: Any, show_progress: bool) -> list[float | None]:
    """The held-out MLM loss of each line's genotype under the search's own fitness, on the held-out blocks
    the search never scored on (see the module docstring)."""
    from autobert_zero.train.evaluate import Evaluator

    cfg = search_config(search)
    ev = cfg.evaluate
    remedy = "or pass --no-rescore to take the search's own top K (a winner's curse is then possible)"
    if cfg.search.fitness != "evaluate":
        why = ("the synthetic fitness, which has no held-out blocks to re-score on" if cfg.search.fitness == "synthetic"
               else "the halving fitness, whose scratch runs at growing budgets the re-score does not repeat")
        raise SearchError(f"{search} was scored with {why}; {remedy}")
    if ev.eval_limit is None:
        raise SearchError(f"{search} scored every held-out block (evaluate.eval_limit: null in {search}/config.yaml), "
                          f"so none is left to re-score its best on; run the search with evaluate.eval_limit below "
                          f"data.eval_blocks, {remedy}")
    supernet = None
    if ev.estimator == "biws":
        path, _ = checked_supernet(search, cfg.search.supernet, run, remedy)
        supernet = str(path)
    if supernet is not None and cfg.search.adapt_steps:
        print(f"note: {search} trained its supernet between rounds (search.adapt_steps {cfg.search.adapt_steps}) "
              f"and did not save it; the re-score uses the supernet as saved, before that training, so it may "
              f"separate the search's best less well than the fitness did", file=sys.stderr)
    end = ev.eval_offset + ev.eval_limit
    cfg.evaluate = dataclasses.replace(ev, eval_offset=end, eval_limit=None, size_prior=None, glue_task=None)
    evaluator = Evaluator(cfg, supernet, show_progress=show_progress)
    if len(evaluator.prepared.data.eval_blocks) <= end:
        raise SearchError(f"{search}: its {len(evaluator.prepared.data.eval_blocks)} held-out blocks are all in the "
                          f"fitness's slice (evaluate.eval_offset + eval_limit = {end}); raise data.eval_blocks for "
                          f"the search, {remedy}")
    return [r.eval_loss for r in evaluator.evaluate([parse_genotype(line.genotype) for line in lines])]


def found_candidates(search: Path, top: int, rescore: bool, show_progress: bool) -> list[Candidate]:
    """The search's top `top` genotypes: re-scored from a larger pool (`rescore_pool`) and ranked by the
    re-scored loss, or (`rescore=False`) its own top `top` by search fitness."""
    body, lines = scored_lines(search)
    if top > len(lines):
        raise SearchError(f"--top {top} is more than the {len(lines)} distinct scored candidates of {search}; "
                          f"expected --top 1..{len(lines)}")
    if not rescore:
        return [Candidate(f"found-{i + 1}", "found", parse_genotype(line.genotype),
                          f"{search} candidate #{line.index} (id {line.id[:12]})", line.fitness)
                for i, line in enumerate(lines[:top])]
    pool = lines[:rescore_pool(top)]
    losses = rescore_best(search, pool, body.get("run"), show_progress)
    ranked = sorted(zip(pool, losses, strict=True),
                    key=lambda pair: (pair[1] is None, pair[1] if pair[1] is not None else 0.0, pair[0].index))
    return [Candidate(f"found-{i + 1}", "found", parse_genotype(line.genotype),
                      f"{search} candidate #{line.index} (id {line.id[:12]})", line.fitness, loss)
            for i, (line, loss) in enumerate(ranked[:top])]


def baseline_candidates(files: Sequence[str], taken: Sequence[str]) -> list[Candidate]:
    """Each baseline file as a candidate named by its stem (made unique against `taken`)."""
    names = set(taken)
    out = []
    for file in files:
        genotype = load_genotype_file(file)
        stem = Path(file).stem
        name, n = stem, 2
        while name in names:
            name, n = f"{stem}-{n}", n + 1
        names.add(name)
        out.append(Candidate(name, "baseline", genotype, str(file)))
    return out


def _sizes(model: ModelSizes, vocab_size: int, width: int) -> StaticSizes:
    return StaticSizes(hidden_size=model.hidden_size, num_attention_heads=model.num_attention_heads,
                       intermediate_size=width, vocab_size=vocab_size,
                       max_position_embeddings=model.max_position_embeddings, type_vocab_size=model.type_vocab_size,
                       layer_norm_position=getattr(model, "layer_norm_position", "post"))


def count_params(genotype: Genotype, model: ModelSizes, vocab_size: int, width: int) -> int:
    """Parameters of the genotype's base model at `model`'s sizes with FFN width `width`."""
    return parameter_report(genotype, _sizes(model, vocab_size, width)).total


def equal_size(candidates: Sequence[Candidate], cfg: Config, vocab_size: int) -> list[Arm]:
    """Each candidate at the FFN width that brings its parameters nearest the first baseline's at the config's
    sizes (the first baseline keeps `model.intermediate_size`)."""
    baselines = [c for c in candidates if c.kind == "baseline"]
    if not baselines:
        raise ConfigError("a retrain needs at least one baseline (--baselines FILE ...): the first one sets the "
                          "parameter budget every arm is sized to")
    model = cfg.model
    target = count_params(baselines[0].genotype, model, vocab_size, model.intermediate_size)
    arms = []
    for c in candidates:
        if c is baselines[0]:
            width = model.intermediate_size
        else:
            at = count_params(c.genotype, model, vocab_size, model.intermediate_size)
            slope = count_params(c.genotype, model, vocab_size, model.intermediate_size + 1) - at
            width = max(1, round(model.intermediate_size + (target - at) / slope))
        params = count_params(c.genotype, model, vocab_size, width)
        flops = flops_per_token(c.genotype, _sizes(model, vocab_size, width), cfg.data.max_seq_length).per_token
        ratio = params / target
        arms.append(Arm(c, width, params, ratio, flops, abs(ratio - 1) <= SIZE_TOLERANCE))
    return arms
