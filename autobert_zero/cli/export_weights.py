"""What `abz export` puts into the Hugging Face folders of a search's best genotypes, and what it says about it.

A weights source writes a genotype's model into `rankN/hf` and describes the weights for the model card
(`evolve.export.WeightsInfo`):

- `SupernetWeights`: a search scored through a supernet (`search.fitness: evaluate` with `evaluate.estimator:
  biws`). The supernet folder of the search's config.yaml is checked against the identity the search recorded
  (`evolve.state.supernet_identity`: the sha256 of its `final/` files and its step), loaded (`load_supernet`),
  and each genotype's weights extracted from it (`supernet.extract`, as `Evaluator._candidate_model` does for
  `biws`); the folder gets the supernet's tokenizer too.
- `UntrainedWeights`: `--untrained`, a randomly initialised model as `abz compile` builds it.

`weights_source` picks one (None for `--no-hf`) and refuses, before anything is written, a search that holds
no weights to export without `--untrained` (synthetic fitness, the `scratch` estimator: every candidate was
trained from scratch and not saved) and a supernet that is gone or changed since the search. A retrain folder
(trained models of the best genotypes) would add a third source with the same `info` / `sizes` / `write`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from autobert_zero.cli.genotype import build_model, model_sizes, save_into
from autobert_zero.cli.options import DEFAULT_VOCAB_SIZE, SIZE_OVERRIDES
from autobert_zero.errors import AbzError, ConfigError, SearchError
from autobert_zero.evolve.export import WeightsInfo
from autobert_zero.evolve.state import checked_supernet
from autobert_zero.grammar import Genotype
from autobert_zero.json_files import read_json

if TYPE_CHECKING:
    from autobert_zero.config.schema import Config

MODEL_SIZE_KEYS = ("hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings")


class WeightsSource(Protocol):
    """Where the weights of an export's Hugging Face folders come from."""

    info: WeightsInfo
    sizes: dict[str, int]
    """The model sizes of `MODEL_SIZE_KEYS` and `vocab_size`."""
    tokenizer: bool
    """Whether `write` saves a tokenizer beside the model."""

    def write(self, genotype: Genotype, folder: Path) -> tuple[str, int]:
        """Write the genotype's model into `folder` (atomically); (model class name, parameter count)."""
        ...


def no_hf_sizes(cfg: Config) -> dict[str, int]:
    """The sizes a `--no-hf` export's card states: the search config's model and vocabulary size."""
    return {**{key: getattr(cfg.model, key) for key in MODEL_SIZE_KEYS}, "vocab_size": cfg.data.vocab_size}


class UntrainedWeights:
    """`--untrained`: a randomly initialised model (seed `--seed`) at the search config's sizes with the flag
    overrides (`cli.genotype.model_sizes`), as `abz compile` builds it; no tokenizer."""

    tokenizer = False

    def __init__(self, cfg: Config, args: argparse.Namespace) -> None:
        self.args = args
        self.model_sizes = model_sizes(cfg.model, args)  # the checks of compile, before anything is written
        self.sizes = {**{key: self.model_sizes[key] for key in MODEL_SIZE_KEYS}, "vocab_size": args.vocab_size}
        self.info = WeightsInfo(
            "untrained", f"untrained: random initialisation, seed {args.seed}",
            (f"random initialisation (`torch.manual_seed({args.seed})`, `--seed`), as `abz compile` builds it; "
             f"never trained", "no tokenizer is saved (the vocabulary size is `--vocab-size`)"),
            ("These weights are random: the scores below belong to the candidate as the search scored it, not to "
             "this model. Pre-train it (`abz pretrain --genotype rankN/genotype.abz`) before use.",))

    def write(self, genotype: Genotype, folder: Path) -> tuple[str, int]:
        model = build_model(genotype, self.model_sizes, self.args.vocab_size, self.args.head, self.args.seed)
        folder.mkdir(parents=True, exist_ok=True)
        save_into(model, folder)
        return type(model).__name__, sum(p.numel() for p in model.parameters())


class SupernetWeights:
    """The weights a `biws` search inherited from its supernet (see the module doc)."""

    tokenizer = True

    def __init__(self, folder: Path, cfg: Config, identity: Mapping[str, Any], head: str) -> None:
        from autobert_zero.train.supernet import load_supernet

        self.folder, self.head = folder, head
        self.supernet, self.tokenizer_object = load_supernet(folder, cfg)
        config = self.supernet.config
        self.sizes = {**{key: int(getattr(config, key)) for key in MODEL_SIZE_KEYS},
                      "vocab_size": len(self.tokenizer_object)}
        self.info = _supernet_info(folder, cfg, identity)

    def write(self, genotype: Genotype, folder: Path) -> tuple[str, int]:
        from autobert_zero.train.mlm import export_model

        child = self.supernet.extract(genotype)  # the weights `Evaluator._candidate_model` scores for biws
        model = child if self.head == "mlm" else child.autobert
        export_model(model, self.tokenizer_object, folder)
        return type(model).__name__, sum(p.numel() for p in model.parameters())


def _supernet_info(folder: Path, cfg: Config, identity: Mapping[str, Any]) -> WeightsInfo:
    summary = _mapping(folder / "summary.json")
    corpus = summary.get("corpus")
    corpus_sha = _corpus_sha256(folder, identity.get("step"))
    data = f"training data: {corpus if isinstance(corpus, str) else 'not recorded'}"
    if corpus_sha is not None:
        data += f" (corpus sha256 `{corpus_sha}`)"
    strategy = summary.get("strategy")
    provenance = [
        f"supernet folder: `{folder}` (`search.supernet` of the search's config.yaml)",
        f"supernet weights sha256: `{identity['sha256']}` (every file of `final/`; the identity the search "
        f"recorded, checked when exporting)",
        f"supernet training steps: {identity.get('step') if identity.get('step') is not None else 'not recorded'}"
        + (f" (candidate strategy `{strategy}`)" if isinstance(strategy, str) else ""),
        data,
        "extracted with `supernet.extract` (the weights the `biws` estimator inherits) and saved with the "
        "supernet's tokenizer",
    ]
    notes = ["These are the supernet's shared weights as this genotype inherits them, not a model trained on its "
             "own: fine-tune or pre-train it further before relying on it."]
    ev, search = cfg.evaluate, cfg.search
    if search.adapt_steps > 0:
        notes.append(f"The search adapted a copy of the supernet in memory between rounds (`search.adapt_steps` = "
                     f"{search.adapt_steps}); that copy was not saved. These are the supernet's weights as they were "
                     f"before the search's own adaptation steps, so candidates scored after the first adaptation "
                     f"were scored on other weights than these.")
    if ev.steps > 0:
        notes.append(f"The search trained each candidate's copy `evaluate.steps` = {ev.steps} MLM steps before "
                     f"scoring it, and did not save it: the scores below belong to that trained copy, not to these "
                     f"weights.")
    if search.adapt_steps <= 0 and ev.steps == 0:
        notes.append("The search scored exactly these weights (`evaluate.steps` 0, `search.adapt_steps` 0): the "
                     "held-out MLM loss below is this model's.")
    return WeightsInfo("supernet", "supernet-inherited (weights extracted from the search's supernet)",
                       tuple(provenance), tuple(notes))


def _mapping(path: Path) -> dict[str, Any]:
    """A JSON object file, or {} when it is missing or not one (it only adds detail to a model card)."""
    try:
        data = read_json(path) if path.is_file() else None
    except AbzError:
        return {}
    return data if isinstance(data, dict) else {}


def _corpus_sha256(folder: Path, step: Any) -> str | None:
    """The corpus sha256 the supernet's newest checkpoint records, when that checkpoint is of its final step."""
    checkpoints = folder / "checkpoints"
    try:
        tag = (checkpoints / "latest").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not tag or "/" in tag or "\\" in tag or tag.startswith("."):
        return None
    state = _mapping(checkpoints / tag / "trainer_state.json")
    sha = state.get("data.corpus_sha256")
    return sha if isinstance(sha, str) and state.get("step") == step else None


def weights_source(search: Path, cfg: Config, run: Mapping[str, Any] | None,
                   args: argparse.Namespace) -> WeightsSource | None:
    """The source of the export's Hugging Face folders (None with `--no-hf`), every check made: a search holds
    the weights it scored only when scored through a supernet (`biws`); any other needs `--untrained`."""
    if args.no_hf:
        return None
    if args.untrained:
        if args.vocab_size is None:
            args.vocab_size = DEFAULT_VOCAB_SIZE
        return UntrainedWeights(cfg, args)
    if cfg.search.fitness != "evaluate" or cfg.evaluate.estimator != "biws":
        how = ("the synthetic fitness (no model at all)" if cfg.search.fitness == "synthetic" else
               "the `scratch` estimator (each candidate trained from scratch for a few steps, never saved)"
               if cfg.search.fitness == "evaluate" else
               "the `halving` fitness (its best ranked by scratch runs, never saved)")
        raise SearchError(f"{search} was scored with {how}, so it holds no trained weights to export; pass "
                          f"--untrained for randomly initialised Hugging Face folders, or --no-hf for the .abz files "
                          f"and model cards only")
    given = [flag for key, flag in SIZE_OVERRIDES.items() if getattr(args, key, None) is not None]
    given += ["--vocab-size"] if args.vocab_size is not None else []
    given += ["--config"] if args.config is not None else []
    if given:
        raise ConfigError(f"{', '.join(given)}: the supernet-inherited weights of {search} have the supernet's sizes "
                          f"and vocabulary; drop these flags, or pass --untrained for random weights at other sizes")
    if args.head == "classifier":
        raise ConfigError("--head classifier: the supernet holds no classification head, so it would be random; "
                          "export --head mlm (the default) and fine-tune it (`abz finetune --init rankN/hf`), or "
                          "pass --untrained")
    return _open_supernet(search, cfg, run, args.head)


def _open_supernet(search: Path, cfg: Config, run: Mapping[str, Any] | None, head: str) -> SupernetWeights:
    """The search's supernet, after checking it is the one the search recorded (its weights and step)."""
    remedy = ("restore the supernet folder the search used, or pass --untrained for randomly initialised "
              "Hugging Face folders (--no-hf: the .abz files and model cards only)")
    path, recorded = checked_supernet(search, cfg.search.supernet, run, remedy)
    return SupernetWeights(path, cfg, recorded, head)
