"""The training config schema: one dataclass per concern, one docstring per field.

A YAML config has the top-level keys of `TrainConfig`; each section maps onto one dataclass below. The
`deepspeed:` section is not described here: it is passed to `deepspeed.initialize` verbatim (see
`train/engine.py`), except that the batch keys are derived from the `pretrain:`/`finetune:` sections.
Constraints on values (positive, a probability, an upper bound, ...) are declared with
`field(metadata=...)` and checked by the loader in `train/config.py`, which also rejects unknown and
duplicate keys and non-finite floats. Upper bounds keep values within what a machine can allocate and
what the libraries accept (a seed must fit numpy's 32 bits; WordPiece training aborts on huge vocabularies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

POSITIVE = {"check": "> 0"}
NON_NEGATIVE = {"check": ">= 0"}
FRACTION = {"check": "in [0, 1)"}
BIG = 10**9
"""Upper bound of step and example counts: far beyond any run, far below what breaks arithmetic."""


def positive(at_most: float) -> dict[str, Any]:
    """A value in (0, at_most]: an upper bound keeps sizes within what a machine can allocate."""
    return {"check": "> 0", "max": at_most}


def non_negative(at_most: float) -> dict[str, Any]:
    """A value in [0, at_most]."""
    return {"check": ">= 0", "max": at_most}



@dataclass
class ModelSizes:
    """Sizes of the model; the layers themselves (how many, which kind) come from the genotype."""

    hidden_size: int = field(default=256, metadata=positive(65536))
    """Width d_model of every layer; must be divisible by `num_attention_heads`."""
    num_attention_heads: int = field(default=4, metadata=positive(4096))
    """Heads per attention layer; the head size is hidden_size / num_attention_heads."""
    intermediate_size: int = field(default=1024, metadata=positive(262144))
    """Inner width of each layer's feed-forward block (4 × hidden_size in BERT)."""
    hidden_dropout_prob: float = field(default=0.1, metadata=FRACTION)
    """Dropout on embeddings and on every residual branch."""
    attention_probs_dropout_prob: float = field(default=0.1, metadata=FRACTION)
    """Dropout on attention probabilities."""
    max_position_embeddings: int = field(default=512, metadata=positive(65536))
    """Longest sequence the position embeddings cover."""
    type_vocab_size: int = field(default=2, metadata=positive(1024))
    """Number of segment (token type) ids: 2 for sentence pairs."""
    initializer_range: float = field(default=0.02, metadata=positive(10.0))
    """Standard deviation of the normal weight initialisation."""


@dataclass
class DataConfig:
    """Where the pre-training text and the tokenizer come from, and how text becomes MLM blocks."""

    corpus: str | list[str] | None = None
    """Text/JSON/TSV file(s) or folder(s), or a hub dataset `name[:config]`; null = embedded corpus."""
    text_column: str = "text"
    """Column that holds the text in JSON/TSV/hub corpora (plain text files always give `text`)."""
    tokenizer: str | None = None
    """WordPiece vocab file, tokenizer folder or hub tokenizer name; null = train one on the corpus."""
    vocab_size: int = field(default=8192, metadata={"check": "> 0", "min": 6, "max": 1_000_000})
    """Vocabulary size of a tokenizer trained on the corpus (ignored when `tokenizer` is given)."""
    lowercase: bool = True
    """Lower-case (and strip accents) before WordPiece: for a trained tokenizer and for a vocab file."""
    tokenizer_cache_dir: str | None = None
    """Cache for trained tokenizers, keyed by corpus hash; null = ~/.cache/autobert_zero/tokenizers."""
    max_seq_length: int = field(default=128, metadata=positive(65536))
    """Tokens per pre-training block, [CLS] and [SEP] included."""
    mlm_probability: float = field(default=0.15, metadata=FRACTION)
    """Share of tokens selected for masked-LM prediction (80% [MASK], 10% random, 10% unchanged)."""
    eval_blocks: int = field(default=64, metadata=non_negative(BIG))
    """Blocks held out of training to measure the final MLM loss (0 = no held-out evaluation)."""


@dataclass
class PretrainConfig:
    """The masked-LM pre-training loop."""

    max_steps: int = field(default=1000, metadata=positive(BIG))
    """Optimizer steps of the run; the learning-rate schedule spans exactly this many steps."""
    micro_batch_size: int = field(default=32, metadata=positive(65536))
    """Blocks per process per forward pass (DeepSpeed's train_micro_batch_size_per_gpu)."""
    gradient_accumulation_steps: int = field(default=1, metadata=positive(65536))
    """Micro-batches whose gradients add up to one optimizer step."""
    batch_size: int | None = field(default=None, metadata=positive(BIG))
    """Global batch per step; null = micro_batch_size × gradient_accumulation_steps × world size."""
    lr: float = field(default=5e-4, metadata=positive(10.0))
    """Peak learning rate of AdamW (unless the deepspeed section brings its own optimizer)."""
    weight_decay: float = field(default=0.01, metadata=non_negative(10.0))
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_steps: int = field(default=100, metadata=non_negative(BIG))
    """Linear warm-up steps, then linear decay to 0 at max_steps (unless deepspeed.scheduler is set)."""
    checkpoint_every: int = field(default=100, metadata=positive(BIG))
    """Write an engine checkpoint every this many steps (and always at the last step)."""
    keep_checkpoints: int = field(default=2, metadata=positive(1000))
    """Number of most recent checkpoints kept on disk; older ones are deleted."""


@dataclass
class FinetuneConfig:
    """The GLUE fine-tuning loop."""

    epochs: int = field(default=3, metadata=positive(BIG))
    """Passes over the (possibly subsampled) training split."""
    max_steps: int | None = field(default=None, metadata=positive(BIG))
    """Stop after this many optimizer steps even if epochs remain; null = no cap."""
    micro_batch_size: int = field(default=32, metadata=positive(65536))
    """Examples per process per forward pass."""
    gradient_accumulation_steps: int = field(default=1, metadata=positive(65536))
    """Micro-batches whose gradients add up to one optimizer step."""
    batch_size: int | None = field(default=None, metadata=positive(BIG))
    """Global batch per step; null = micro_batch_size × gradient_accumulation_steps × world size."""
    lr: float = field(default=5e-5, metadata=positive(10.0))
    """Peak learning rate of AdamW (unless the deepspeed section brings its own optimizer)."""
    weight_decay: float = field(default=0.01, metadata=non_negative(10.0))
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    warmup_ratio: float = field(default=0.1, metadata=FRACTION)
    """Share of the steps spent in linear warm-up, then linear decay to 0."""
    max_seq_length: int = field(default=128, metadata=positive(65536))
    """Longest tokenized example (pair included); longer ones are truncated."""
    max_train_examples: int | None = field(default=None, metadata=positive(BIG))
    """Train on a seeded random subset of this many examples; null = the whole training split."""
    eval_batch_size: int = field(default=64, metadata=positive(65536))
    """Examples per forward pass when evaluating on the dev split."""


@dataclass
class LoggingConfig:
    """What the loops report while they run."""

    log_every: int = field(default=10, metadata=positive(BIG))
    """Write one metrics.jsonl line (and TensorBoard point) every this many optimizer steps."""
    tensorboard: bool = False
    """Also write TensorBoard event files under OUT/tensorboard."""
    progress_bar: bool = True
    """Show tqdm progress bars (on rank 0 only)."""


@dataclass
class SearchConfig:
    """The OP-NAS search (`abz search`): strategy, budget, search space and fitness."""

    strategy: str = "op"
    """`op` (operation priority), `evolution` (regularized evolution, uniform op choice) or `random`."""
    evaluations: int = field(default=200, metadata=positive(BIG))
    """Budget: candidates evaluated in all (the initial population included, duplicates included)."""
    population_size: int = field(default=16, metadata=positive(10**6))
    """P: members of the aging population (and size of the initial population)."""
    tournament_size: int = field(default=4, metadata=positive(10**6))
    """S: members drawn per tournament; the fittest becomes the parent."""
    round_size: int = field(default=1, metadata=positive(10**6))
    """Children made per round from the same population (split across processes under a launcher)."""
    seed_genotypes: list[str] = field(default_factory=list)
    """Genotype files put first into the initial population (the sampler fills the rest)."""
    num_layers: int | None = field(default=None, metadata=positive(1024))
    """Layers of every candidate; null = the layer count of `genotype`."""
    conv_probability: float = field(default=0.5, metadata=FRACTION)
    """Share of conv layers in sampled genotypes (initial population, random search)."""
    ops: list[str] | None = None
    """Ops mutations and the sampler may use; null = every op of the language."""
    conv_types: list[str] | None = None
    """Conv block types allowed; null = all (light, depthwise, sepconv)."""
    kernels: list[int] | None = None
    """Conv kernel sizes allowed; null = all of the language."""
    dilations: list[int] | None = None
    """Conv dilations allowed; null = all of the language."""
    max_nodes: int | None = field(default=None, metadata=positive(1024))
    """Largest attention graph (op nodes); null = the language's limit."""
    mutations: list[str] | None = None
    """Mutation types enabled (names as in evolve/mutations.py, e.g. replace-op); null = all."""
    priority_c: float = field(default=0.5, metadata=non_negative(1e6))
    """c of the priority u_i = μ_i + c·√(2 ln N / N_i): weight of exploration."""
    priority_temperature: float = field(default=0.1, metadata=positive(1e6))
    """Temperature of the softmax over priorities (small = greedy)."""
    reward: str = "fitness"
    """Reward credited to the ops of a child: `fitness` or `improvement` (over the parent)."""
    max_params: int | None = field(default=None, metadata=positive(10**15))
    """Candidates with more parameters are recorded but never join the population; null = no limit."""
    max_flops_per_token: float | None = field(default=None, metadata=positive(1e18))
    """Same for forward FLOPs per token; null = no limit."""
    adapt_steps: int = field(default=0, metadata=non_negative(BIG))
    """Supernet training steps on the live population between rounds (BIWS fitness); 0 = off."""
    adapt_strategy: str = "population"
    """How adaptation draws from the live population: `population` (uniformly) or `fair` (weights that give
    every layer choice the same exposure, as `supernet.strategy: fair`)."""
    fitness: str = "evaluate"
    """`evaluate`: the candidate evaluator with the `evaluate:` section (estimator scratch or biws);
    `synthetic`: a deterministic pure-python stand-in (tests, loop benchmarks; not a model-quality measure)."""
    supernet: str | None = None
    """Folder of a trained supernet (`abz supernet --out`), needed by `evaluate.estimator: biws`."""


@dataclass
class SupernetConfig:
    """BIWS supernet training (`abz supernet`): which candidate each MLM step trains.

    The supernet hosts backbones with the layer count of `genotype` at the sizes of `model:`; it trains with
    the `pretrain:` loop (steps, batches, lr, checkpoints) and the `deepspeed:` section.
    """

    strategy: str = "uniform"
    """`uniform`: each step a fresh sample of the grammar sampler; `population`: each step one genotype of
    `population`, drawn uniformly; `fair`: drawn from `population` with weights that give every layer choice
    the same exposure (near-copies share one share). Either way the candidate of step s is a function of
    (seed, s)."""
    population: list[str] = field(default_factory=list)
    """For `population` and `fair`: .abz files, folders of .abz files, or .txt files listing .abz paths one per line
    (relative to the .txt file; # comments); relative paths: the working directory, then the repository."""
    conv_probability: float = field(default=0.5, metadata=FRACTION)
    """For `uniform`: chance that a sampled layer is a convolution (else an attention graph)."""
    per_branch: list[str] = field(default_factory=list)
    """Few-shot splits of the supernet, a subset of: `norm`, `ffn` (held once per branch, attention / conv);
    `uses_v` (attention projections held once for graphs that read V and once for those that do not);
    [] = one set per position."""
    fair_exponent: float = field(default=1.0, metadata=non_negative(1.0))
    """For `fair` (and `search.adapt_strategy: fair`): the exposure weights are raised to this power; 1 =
    every layer choice the same exposure, 0 = uniform over the population, 0.5 = halfway in log terms."""


@dataclass
class EvaluateConfig:
    """Candidate evaluation (`abz evaluate`, the search's fitness): how a genotype gets its score.

    Every estimator scores on the same held-out blocks and mask positions (`data.eval_blocks`).
    """

    estimator: str = "scratch"
    """`scratch`: a fresh model trained `steps` MLM steps; `biws`: the supernet's weights inherited
    (`--supernet DIR`), then `steps` steps of the extracted copy (0 = none)."""
    steps: int = field(default=20, metadata=non_negative(BIG))
    """MLM training steps per candidate (batch sizes of `pretrain:`), each a fixed function of the step."""
    lr: float = field(default=1e-3, metadata=positive(10.0))
    """Peak AdamW learning rate of those steps (linear warm-up, then linear decay to 0 at `steps`)."""
    warmup_steps: int = field(default=0, metadata=non_negative(BIG))
    """Linear warm-up steps of the per-candidate schedule."""
    init_seed: int | None = field(default=None, metadata=non_negative(2**32 - 1))
    """Seed of a scratch model's initialisation and of the training data order; null = `seed`. The held-out
    blocks always come from `seed`, so runs with different init seeds are scored on the same data."""
    eval_batch_size: int = field(default=32, metadata=positive(BIG))
    """Held-out blocks per forward pass."""
    size_prior: str | None = None
    """Rank combination: null = score is −held-out loss; `params` or `flops` = the score is a weighted mean of
    the candidate's rank by loss and its rank by size (larger ranks higher) among every candidate the
    Evaluator has scored so far (so scores stay comparable across calls)."""
    prior_weight: float = field(default=0.5, metadata=FRACTION)
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

    reference_steps: int = field(default=300, metadata=positive(BIG))
    """Steps of the full-budget scratch training that every estimator is scored against."""
    reference_warmup_steps: int = field(default=30, metadata=non_negative(BIG))
    """Linear warm-up steps of the reference runs (the short estimators use `evaluate.warmup_steps`)."""
    reference_seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Init/data-order seeds of the reference (two or more, distinct): the reference is their mean score and
    τ between the first two is the noise ceiling."""
    biws_steps: list[int] = field(default_factory=lambda: [0, 5, 20])
    """BIWS estimators tried: k steps of training of each inherited candidate (0 = inherit, then score). Each k
    also gets a scratch run at the same seconds per candidate and a rank combination with the size prior."""
    neighbours: int | None = field(default=None, metadata=positive(BIG))
    """Mutated neighbours of Figure 7 among the candidates; null = a third of them."""
    size_prior: str = "params"
    """Prior of the rank combinations: `params` or `flops` (forward FLOPs per token)."""
    bootstrap_samples: int = field(default=1000, metadata=positive(1_000_000))
    """Resamples of the bootstrap intervals (seeded by `seed`)."""
    cache_dir: str | None = None
    """Reference results by (genotype id, seed, config hash), reused across audits and after a kill;
    null = ~/.cache/autobert_zero/audit."""


@dataclass
class TrainConfig:
    """A whole training config file: the top-level YAML keys."""

    genotype: str = "genotypes/bert.abz"
    """Genotype file of the backbone (relative paths: the working directory, then the repository)."""
    seed: int = field(default=0, metadata=non_negative(2**32 - 1))
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
    search: SearchConfig = field(default_factory=SearchConfig)
    """The OP-NAS search (`abz search`)."""
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    """BIWS supernet training (`abz supernet`)."""
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    """Candidate evaluation (`abz evaluate` and the search's fitness)."""
    audit: AuditConfig = field(default_factory=AuditConfig)
    """The ranking audit (`abz audit`)."""
    deepspeed: dict[str, Any] = field(default_factory=dict)
    """DeepSpeed config, passed verbatim (batch keys are derived from pretrain/finetune)."""
    source: str = field(default="<config>", metadata={"internal": True})
    """Where the config came from (for error messages); not a YAML key."""
