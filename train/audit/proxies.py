"""Zero-cost proxies: rivals to BIWS that score a candidate at initialisation, with no training step.

Each candidate's model is the one the scratch estimator would start from: `train.models.build_mlm_model` with
the config's `model:` sizes, the audit tokenizer's vocabulary and pad id, and the estimators' init seed — the
model `train.evaluate.Evaluator` builds for `scratch` — on the CPU, in eval mode (no dropout: a proxy is a
function of the genotype and the seed alone), under a forked torch RNG (the caller's stream is untouched).

- `init_loss` is not computed here: the audit takes it from the Evaluator itself (the `scratch` estimator with
  0 steps: the held-out MLM loss at initialisation on the audit's own held-out blocks; score −loss).
- `grad_norm` (`grad_norm`): the L2 norm over every parameter of the gradient of the MLM loss on one fixed
  training batch — the first `pretrain.micro_batch_size` training blocks, masked with their own stream keys
  (`MlmData.masked`), the same batch for every candidate. Higher ranks higher (Abdelfattah et al. 2021).
- `synflow` (`synflow`): the synaptic flow of Tanaka et al. 2020 adapted to a masked LM: in float64, every
  parameter replaced by its absolute value, the token lookup replaced by an all-ones input embedding
  (`inputs_embeds` = 1, one sequence of the block length; the model still adds its position and segment
  embeddings and its embedding LayerNorm), R = the sum of every MLM logit at every position, score =
  Σ over parameters of |θ ⊙ ∂R/∂θ|. Unlike the ReLU networks of the paper, LayerNorm, softmax and the
  other ops are not positively homogeneous, so the score is a data-free saliency, not the exact path norm;
  the (tied) word embedding gets its gradient through the MLM output layer only. Higher ranks higher.

`zero_cost` returns one `Outcome` per proxy (score, seconds = model build + the proxy's own passes, the
parameter count); a proxy that raises or gives a non-finite value is `failed` with the reason.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from autobert_zero.config.schema import Config
from autobert_zero.errors import AbzError
from autobert_zero.grammar import Genotype
from autobert_zero.train.audit.report import Outcome

PROXIES = ("grad_norm", "synflow")
"""The proxies computed here (`init_loss` comes from the Evaluator)."""


def fixed_batch(prepared: Any, size: int) -> dict[str, torch.Tensor]:
    """The proxies' one training batch: the first `size` training blocks, masked with keys 0..size − 1."""
    data = prepared.data
    size = max(1, min(size, len(data.train_blocks)))
    return data.masked(data.train_blocks[:size], range(size))


def _model(genotype: Genotype, cfg: Config, prepared: Any, seed: int) -> Any:
    from autobert_zero.train.models import build_mlm_model

    tokenizer = prepared.tokenizer
    model = build_mlm_model(genotype, cfg.model, len(tokenizer), tokenizer.pad_token_id, seed)
    model.eval()
    return model


def grad_norm(model: Any, batch: dict[str, torch.Tensor]) -> float:
    """‖∂ MLM loss / ∂θ‖₂ over every parameter, on `batch`."""
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()
    total = sum(float(p.grad.double().pow(2).sum()) for p in model.parameters() if p.grad is not None)
    return math.sqrt(total)


def synflow(model: Any, length: int) -> float:
    """Σ |θ ⊙ ∂R/∂θ| with |θ|, float64 and an all-ones input embedding (see the module docstring). Changes
    the model's weights in place (it is thrown away afterwards)."""
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad(set_to_none=True)
    ones = torch.ones(1, length, model.config.hidden_size, dtype=torch.float64)
    logits = model(inputs_embeds=ones, attention_mask=torch.ones(1, length, dtype=torch.long),
                   token_type_ids=torch.zeros(1, length, dtype=torch.long)).logits
    logits.sum().backward()
    return sum(float((p.detach() * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)


def zero_cost(genotype: Genotype, cfg: Config, prepared: Any, seed: int, batch: dict[str, torch.Tensor] | None = None
              ) -> dict[str, Outcome]:
    """Every proxy of `PROXIES` for one candidate, from one model build (synflow, which changes the weights,
    goes last); each proxy's seconds are the build's plus its own passes (what it costs alone)."""
    from autobert_zero.compiler import count_parameters

    batch = batch if batch is not None else fixed_batch(prepared, cfg.pretrain.micro_batch_size)
    length = int(batch["input_ids"].shape[1])
    measures: dict[str, Callable[[Any], float]] = {"grad_norm": lambda m: grad_norm(m, batch),
                                                   "synflow": lambda m: synflow(m, length)}
    results: dict[str, Outcome] = {}
    with torch.random.fork_rng(devices=[]):
        t0 = time.perf_counter()
        try:
            model = _model(genotype, cfg, prepared, seed)
        except (AbzError, RuntimeError, ValueError) as exc:  # a candidate that cannot be built
            seconds = time.perf_counter() - t0
            return {name: Outcome(None, None, seconds, "failed", f"{type(exc).__name__}: {exc}") for name in PROXIES}
        build = time.perf_counter() - t0
        params = count_parameters(model)
        for name in PROXIES:
            t1 = time.perf_counter()
            try:
                value = measures[name](model)
            except (AbzError, RuntimeError, ValueError) as exc:  # a candidate that cannot be run
                value, reason = math.nan, f"{type(exc).__name__}: {exc}"
            else:
                reason = "" if math.isfinite(value) else f"{name} is {value}"
            seconds = build + time.perf_counter() - t1
            results[name] = (Outcome(value, None, seconds, "ok", "", params) if not reason
                             else Outcome(None, None, seconds, "failed", reason, params))
    return results
