"""autobert_zero.train — everything that runs an optimizer on a genotype.

Read in data-flow order: `data/` (corpus, tokenizer, MLM blocks and masks, the seeded data order, GLUE and
its metrics), the training machinery (`engine`: DeepSpeed; `checkpoint`: crash-safe resume; `run_log`:
metrics.jsonl / TensorBoard; `loop`: the one training loop), `models` (genotype + sizes → model, and the
checks of an `--init` folder), `mlm` (the shared masked-LM run), what drives the loop — `pretrain`,
`finetune`, `supernet` (BIWS supernet training and its adaptation during a search) — then `evaluate`
(candidate scores) and `fitness` (the evaluator behind `evolve`'s Fitness contract), and `audit/` (the
ranking audit: a study of the fitness).

The public functions are imported lazily: importing this package does not import deepspeed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autobert_zero.lazy import lazy_getattr

if TYPE_CHECKING:
    from autobert_zero.config.load import load_config
    from autobert_zero.train.finetune import finetune
    from autobert_zero.train.pretrain import pretrain

__all__ = ["finetune", "load_config", "pretrain"]


__getattr__ = lazy_getattr(__name__, {"load_config": "autobert_zero.config.load", "finetune": ".finetune",
                                      "pretrain": ".pretrain"})
