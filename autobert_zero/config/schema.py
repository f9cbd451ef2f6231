"""The config schema: one dataclass per concern, one docstring per field.

A YAML config has the top-level keys of `Config`; each section maps onto one dataclass below (`search:` onto
`SearchSettings` of `evolve/settings.py`, which lives next to the search). The `deepspeed:` section is not
described here: it is passed to `deepspeed.initialize` verbatim (see `train/engine.py`), except that the batch
keys are derived from the `pretrain:`/`finetune:` sections. Constraints on values are declared in the
annotations: bounds with `annotated_types` (`Gt(0)`, `Le(...)`, ...), choices with `Literal[...]`. The loader
(`load.py`) validates a YAML mapping against these dataclasses with pydantic, strictly (no str → number, no
bool for an int, finite floats, unknown keys refused); the objects stay plain dataclasses. Upper bounds keep
values within what a machine can allocate and what the libraries accept (a seed must fit numpy's 32 bits;
WordPiece training aborts on huge vocabularies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import ConfigDict

from autobert_zero.evolve.settings import BIG, SearchSettings

SizePrior = Literal["params", "flops"]
"""A size measure a rank combination can use: parameters or forward FLOPs per token."""
SIZE_PRIORS: tuple[str, ...] = get_args(SizePrior)

SIZE_KEYS = ("hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings", "type_vocab_size")
"""The `model:` keys that shape weights (a checkpoint made at other values cannot be loaded)."""

SupernetStrategy = Literal["population", "uniform", "fair"]
"""How supernet training picks each step's candidate (see `SupernetConfig.strategy`)."""
SUPERNET_STRATEGIES: tuple[str, ...] = get_args(SupernetStrategy)
POPULATION_STRATEGIES = ("population", "fair")
"""The strategies that draw from `supernet.population`."""

Branch = Literal["norm", "ffn", "uses_v"]
"""A few-shot split of the supernet (see `SupernetConfig.per_branch`)."""

Estimator = Literal["scratch", "biws"]
"""How the evaluator scores a candidate (see `EvaluateConfig.estimator`)."""
ESTIMATORS: tuple[str, ...] = get_args(Estimator)

Fraction = Annotated[float, Ge(0), Lt(1)]
"""A share or probability in [0, 1)."""
Seed = Annotated[int, Ge(0), Le(2**32 - 1)]
"""A seed: non-negative and within numpy's 32 bits."""

SearchConfig = SearchSettings
"""The old name of the `search:` section (kept so existing imports keep working)."""


@dataclass
class ModelSizes:
    """Sizes of the model; the layers themselves (how many, which kind) come from the genotype."""

    hidden_size: Annotated[int, Gt(0), Le(65536)] = 256
    """Width d_model of every layer; must be divisible by `num_attention_heads`."""
    num_attention_heads: Annotated[int, Gt(0), Le(4096)] = 4
    """Heads per attention layer; the head size is hidden_size / num_attention_heads."""
    intermediate_size: Annotated[int, Gt(0), Le(262144)] = 1024
    """Inner width of each layer's feed-forward block (4 × hidden_size in BERT)."""
    hidden_dropout_prob: Fraction = 0.1
    """Dropout on embeddings and on every residual branch."""
    attention_probs_dropout_prob: Fraction = 0.1
    """Dropout on attention probabilities."""
    max_position_embeddings: Annotated[int, Gt(0), Le(65536)] = 512
    """Longest sequence the position embeddings cover."""
    type_vocab_size: Annotated[int, Gt(0), Le(1024)] = 2
    """Number of segment (token type) ids: 2 for sentence pairs."""
    initializer_range: Annotated[float, Gt(0), Le(10.0)] = 0.02
    """Standard deviation of the normal weight initialisation."""
    gradient_checkpointing: bool = False
    """Activation checkpointing while training (pretrain, finetune, candidate training): each encoder layer's
    activations are recomputed in the backward pass instead of kept (`torch.utils.checkpoint`), for less memory
    at about one more forward pass of compute; the losses stay the same. Not saved in exported models."""


@dataclass
class DataConfig:
    """Where the pre-training text and the tokenizer come from, and how text becomes MLM blocks."""

    corpus: str | list[str] | None = None
    """Text/JSON/TSV file(s) or folder(s), or a hub dataset `name[:config]`; null = embedded corpus."""
    text_column: str = "text"
    """Column that holds the text in JSON/TSV/hub corpora (plain text files always give `text`)."""
    tokenizer: str | None = None
    """WordPiece vocab file, tokenizer folder or hub tokenizer name; null = train one on the corpus."""
    vocab_size: Annotated[int, Ge(6), Le(1_000_000)] = 8192
    """Vocabulary size of a tokenizer trained on the corpus (ignored when `tokenizer` is given)."""
    lowercase: bool = True
    """Lower-case (and strip accents) before WordPiece: for a trained tokenizer and for a vocab file."""
    tokenizer_cache_dir: str | None = None
    """Cache for trained tokenizers, keyed by corpus hash; null = ~/.cache/autobert_zero/tokenizers."""
    max_seq_length: Annotated[int, Gt(0), Le(65536)] = 128
    """Tokens per pre-training block, [CLS] and [SEP] included."""
    mlm_probability: Fraction = 0.15
    """Share of tokens selected for masked-LM prediction (80% [MASK], 10% random, 10% unchanged)."""
    eval_blocks: Annotated[int, Ge(0), Le(BIG)] = 64
    """Blocks held out of training to measure the final MLM loss (0 = no held-out evaluation)."""
    eval_corpus: str | list[str] | None = None
    """Document-disjoint held-out text (file(s)/folder(s), like `corpus`): the held-out blocks come from it
    alone, every training block from `corpus`, and any line of it that also occurs in `corpus` is dropped from
    training. null = the held-out blocks are a seeded draw of `corpus`'s own blocks (not document-disjoint)."""


@dataclass
class PretrainConfig:
    """The masked-LM pre-training loop."""

    max_steps: Annotated[int, Gt(0), Le(BIG)] = 1000
    """Optimizer steps of the run; the learning-rate schedule spans exactly this many steps."""
    micro_batch_size: Annotated[int, Gt(0), Le(65536)] = 32
    """Blocks per process per forward pass (DeepSpeed's train_micro_batch_size_per_gpu)."""
    gradient_accumulation_steps: Annotated[int, Gt(0), Le(65536)] = 1
    """Micro-batches whose gradients add up to one optimizer step."""
    batch_size: Annotated[int, Gt(0), Le(BIG)] | None = None
    """Global batch per step; null = micro_batch_size × gradient_accumulation_steps × world size."""
    lr: Annotated[float, Gt(0), Le(10.0)] = 5e-4
    """Peak learning rate of AdamW (unless the deepspeed section brings its own optimizer)."""
    weight_decay: Annotated[float, Ge(0), Le(10.0)] = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_steps: Annotated[int, Ge(0), Le(BIG)] = 100
    """Linear warm-up steps, then linear decay to 0 at max_steps (unless deepspeed.scheduler is set)."""
    checkpoint_every: Annotated[int, Gt(0), Le(BIG)] = 100
    """Write an engine checkpoint every this many steps (and always at the last step)."""
    keep_checkpoints: Annotated[int, Gt(0), Le(1000)] = 2
    """Number of most recent checkpoints kept on disk; older ones are deleted."""


@dataclass
class FinetuneConfig:
    """The GLUE fine-tuning loop."""

    epochs: Annotated[int, Gt(0), Le(BIG)] = 3
    """Passes over the (possibly subsampled) training split."""
    max_steps: Annotated[int, Gt(0), Le(BIG)] | None = None
    """Stop after this many optimizer steps even if epochs remain; null = no cap."""
    micro_batch_size: Annotated[int, Gt(0), Le(65536)] = 32
    """Examples per process per forward pass."""
    gradient_accumulation_steps: Annotated[int, Gt(0), Le(65536)] = 1
    """Micro-batches whose gradients add up to one optimizer step."""
    batch_size: Annotated[int, Gt(0), Le(BIG)] | None = None
    """Global batch per step; null = micro_batch_size × gradient_accumulation_steps × world size."""
    lr: Annotated[float, Gt(0), Le(10.0)] = 5e-5
    """Peak learning rate of AdamW (unless the deepspeed section brings its own optimizer)."""
    weight_decay: Annotated[float, Ge(0), Le(10.0)] = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_ratio: Fraction = 0.1
    """Share of the steps spent in linear warm-up, then linear decay to 0."""
    max_seq_length: Annotated[int, Gt(0), Le(65536)] = 128
    """Longest tokenized example (pair included); longer ones are truncated."""
    max_train_examples: Annotated[int, Gt(0), Le(BIG)] | None = None
    """Train on a seeded random subset of this many examples; null = the whole training split."""
    eval_batch_size: Annotated[int, Gt(0), Le(65536)] = 64
    """Examples per forward pass when evaluating on the dev split."""


@dataclass
class LoggingConfig:
    """What the loops report while they run."""

    log_every: Annotated[int, Gt(0), Le(BIG)] = 10
    """Write one metrics.jsonl line (and TensorBoard point) every this many optimizer steps."""
    tensorboard: bool = False
    """Also write TensorBoard event files under OUT/tensorboard."""
    progress_bar: bool = True
    """Show tqdm progress bars (on rank 0 only)."""


@dataclass
class SupernetConfig:
    """BIWS supernet training (`abz supernet`): which candidate each MLM step trains.

    The supernet hosts backbones with the layer count of `genotype` at the sizes of `model:`; it trains with
    the `pretrain:` loop (steps, batches, lr, checkpoints) and the `deepspeed:` section.
    """

    strategy: SupernetStrategy = "population"
    """`population`: each step one genotype of `population`, drawn uniformly; `uniform`: each step a fresh
    sample of the grammar sampler; `fair`: drawn from `population` with weights that give every layer choice
    the same exposure (near-copies share one share). Either way the candidate of step s is a function of
    (seed, s). `abz audit` measures how well a supernet trained by each strategy ranks candidates."""
    population: list[str] = field(default_factory=list)
    """For `population` and `fair`: .abz files, folders of .abz files, or .txt files listing .abz paths one per line
    (relative to the .txt file; # comments); relative paths: the working directory, then the shipped files.
    Left empty, the loader fills it in: `genotype`, the search's `seed_genotypes` and the shipped genotypes,
    those with the layer count of `genotype` (see `load.default_population`)."""
    conv_probability: Fraction = 0.5
    """For `uniform`: chance that a sampled layer is a convolution (else an attention graph)."""
    per_branch: list[Branch] = field(default_factory=list)
    """Few-shot splits of the supernet, a subset of: `norm`, `ffn` (held once per branch, attention / conv);
    `uses_v` (attention projections held once for graphs that read V and once for those that do not);
    [] = one set per position."""
    fair_exponent: Annotated[float, Ge(0), Le(1.0)] = 1.0
    """For `fair` (and `search.adapt_strategy: fair`): the exposure weights are raised to this power; 1 =
    every layer choice the same exposure, 0 = uniform over the population, 0.5 = halfway in log terms."""


@dataclass
class EvaluateConfig:
    """Candidate evaluation (`abz evaluate`, the search's fitness): how a genotype gets its score.

    Every estimator scores on the same held-out blocks and mask positions (`data.eval_blocks`).
    """

    estimator: Estimator = "scratch"
    """`scratch`: a fresh model trained `steps` MLM steps; `biws`: the supernet's weights inherited
    (`--supernet DIR`), then `steps` steps of the extracted copy (0 = none). The default is `scratch` only
    because it needs no supernet folder; the ranking audit measured `biws` (k = 5) as the better ranker at
    equal cost, which is what `configs/tiny.yaml` and `configs/audit.yaml` use."""
    steps: Annotated[int, Ge(0), Le(BIG)] = 20
    """MLM training steps per candidate (batch sizes of `pretrain:`), each a fixed function of the step."""
    lr: Annotated[float, Gt(0), Le(10.0)] = 1e-3
    """Peak AdamW learning rate of those steps (linear warm-up, then linear decay to 0 at `steps`)."""
    warmup_steps: Annotated[int, Ge(0), Le(BIG)] = 0
    """Linear warm-up steps of the per-candidate schedule."""
    init_seed: Seed | None = None
    """Seed of a scratch model's initialisation and of the training data order; null = `seed`. The held-out
    blocks always come from `seed`, so runs with different init seeds are scored on the same data."""
    eval_batch_size: Annotated[int, Gt(0), Le(BIG)] = 32
    """Held-out blocks per forward pass."""
    eval_offset: Annotated[int, Ge(0), Le(BIG)] = 0
    """First held-out block scored: a candidate is scored on the held-out blocks [eval_offset, eval_offset +
    eval_limit). With `data.eval_blocks` larger than the fitness's slice, the blocks past it form a second
    held-out set the fitness never sees (the search benchmark re-scores final bests there)."""
    eval_limit: Annotated[int, Gt(0), Le(BIG)] | None = None
    """Held-out blocks scored from `eval_offset`; null = all the rest."""
    size_prior: SizePrior | None = None
    """Rank combination: null = score is −held-out loss; `params` or `flops` = the score is a weighted mean of
    the candidate's rank by loss and its rank by size (larger ranks higher) among every candidate the
    Evaluator has scored so far (so scores stay comparable across calls)."""
    prior_weight: Fraction = 0.5
    """Weight of the size rank in the combination (the loss rank gets 1 − prior_weight)."""
    glue_task: str | None = None
    """Second stage: after MLM, fine-tune on this GLUE task (`finetune:` section) and score by its dev
    metric (higher is better); null = no second stage."""
    glue_data_dir: str | None = None
    """Folder of GLUE TSV folders for the second stage; null = ABZ_DATA_DIR/glue (the shared data)."""


@dataclass
class AuditConfig:
    """The ranking audit (`abz audit`): reference budget, estimators tried, candidate mix and statistics.

    The reference is scratch training (the `evaluate:` estimator `scratch`) for `reference_steps` steps, once
    per reference seed (as `evaluate.init_seed`; the held-out blocks always come from `seed`).
    """

    reference_steps: Annotated[int, Gt(0), Le(BIG)] = 300
    """Steps of the full-budget scratch training that every estimator is scored against."""
    reference_warmup_steps: Annotated[int, Ge(0), Le(BIG)] = 30
    """Linear warm-up steps of the reference runs (the short estimators use `evaluate.warmup_steps`)."""
    reference_seeds: Annotated[list[Seed], MinLen(2)] = field(default_factory=lambda: [0, 1])
    """Init/data-order seeds of the reference (two or more, distinct): the reference is their mean score; the
    noise ceiling of every figure is each seed against the mean of the others (leave-one-out; with two seeds,
    seed vs seed)."""
    biws_steps: Annotated[list[Annotated[int, Ge(0), Le(BIG)]], MinLen(1)] = field(default_factory=lambda: [0, 5, 20])
    """BIWS estimators tried: k steps of training of each inherited candidate (0 = inherit, then score). Each k
    also gets a scratch run at the same seconds per candidate and a rank combination with the size prior."""
    biws_lrs: list[Annotated[float, Gt(0), Le(1.0)]] = field(default_factory=list)
    """Scheduled BIWS fine-tunes: for each k > 0 of `biws_steps` and each peak learning rate here, an estimator
    `biws_k<k>_lr<lr>` (warm-up a tenth of k, then linear decay to 0); [] = none beyond `biws_steps`' own."""
    halving_steps: list[Annotated[int, Gt(0), Le(BIG)]] = field(default_factory=list)
    """Scratch budgets of the rungs of the `halving` estimator (successive halving: BIWS k = 0 prunes, then
    scratch runs of growing budget order the survivors), strictly increasing, each at most `reference_steps`;
    needs 0 in `biws_steps`; [] = no `halving` estimator."""
    halving_eta: Annotated[int, Ge(2), Le(BIG)] = 3
    """Pruning factor of `halving`: each rung keeps the best ceil(n / eta) of the n candidates of the one before."""
    neighbours: Annotated[int, Gt(0), Le(BIG)] | None = None
    """Mutated neighbours of Figure 7 among the candidates; null = a third of them."""
    size_prior: SizePrior = "params"
    """Prior of the rank combinations: `params` or `flops` (forward FLOPs per token)."""
    bootstrap_samples: Annotated[int, Gt(0), Le(1_000_000)] = 1000
    """Resamples of the bootstrap intervals (seeded by `seed`; candidates, and supernets when several)."""
    cache_dir: str | None = None
    """Reference results by (genotype id, seed, config hash), and the estimates and cost timing of each audit
    setting (under estimates/), reused across audits and after a kill; null = ~/.cache/autobert_zero/audit."""


@dataclass
class LanguageConfig:
    """The search space's language (`grammar/loading.py`): a grammar and an op module or plugin; all null = the
    built-in language. Every command that reads a genotype uses it, and what it makes records it (grammar text,
    op source or plugin version, sha256s)."""

    grammar: str | None = None
    """Grammar file (.lark; relative paths: the working directory); null = the built-in grammar, with the ops of
    `ops`/`plugin` added to its rule `op` (or the op module's own `GRAMMAR`)."""
    ops: str | None = None
    """Op module: a .py file (relative paths: the working directory) or an importable module name, defining
    `OPS` (a list of OpSpec) and `IMPLS` (op name → implementation); its ops may not reuse built-in names."""
    plugin: str | None = None
    """Name of an installed op plugin (entry-point group `autobert_zero.ops`) instead of `ops`."""


@dataclass
class Config:
    """A whole config file: the top-level YAML keys."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    """How the loader validates a config (and every section in it): no str → number, no bool for a number,
    finite floats only, unknown keys refused."""

    genotype: str = "genotypes/bert.abz"
    """Genotype file of the backbone (relative paths: the working directory, then the shipped copy)."""
    seed: Seed = 0
    """Seed of weight initialisation, data order, masking and dropout."""
    model: ModelSizes = field(default_factory=ModelSizes)
    """Model sizes."""
    data: DataConfig = field(default_factory=DataConfig)
    """Pre-training corpus and tokenizer."""
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    """Masked-LM pre-training loop."""
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    """GLUE fine-tuning loop."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Progress bars, metrics lines, TensorBoard."""
    search: SearchSettings = field(default_factory=SearchSettings)
    """The OP-NAS search (`abz search`)."""
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    """BIWS supernet training (`abz supernet`)."""
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    """Candidate evaluation (`abz evaluate` and the search's fitness)."""
    audit: AuditConfig = field(default_factory=AuditConfig)
    """The ranking audit (`abz audit`)."""
    language: LanguageConfig = field(default_factory=LanguageConfig)
    """The genotype language (null everywhere: the built-in one)."""
    deepspeed: dict[str, Any] = field(default_factory=dict)
    """DeepSpeed config, passed verbatim (batch keys are derived from pretrain/finetune)."""
    source: str = field(default="<config>", metadata={"internal": True})
    """Where the config came from (for error messages); set by the loader, refused as a YAML key."""


TrainConfig = Config
"""The old name of `Config` (kept so existing imports keep working)."""
