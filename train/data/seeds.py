"""Every random stream of training, named: `derived_seed` and the salts that keep the streams apart.

A stream's seed is `derived_seed(run seed, ..., SALT)`; the salt says which stream it is. Two streams take
no salt, because their key is already a position: the permutation of epoch `e` of a `StreamOrder` is
`derived_seed(order seed, e)` (`order.py`), and the mask of the block at stream position `k` is
`derived_seed(data seed, k)` (`mlm_blocks.py`; held-out blocks use keys from `mlm_blocks.EVAL_STREAM` on).

The values are the ones every recorded result, saved search and checkpoint was made with; changing one
changes the data order, masks or dropout of every run after it and makes old runs refuse to resume or
stop reproducing. So they stay as they are, collisions included:

- A two-part seed `derived_seed(cfg.seed, SALT)` equals the seed of epoch `SALT`'s permutation of the
  pre-training order (whose seed is `cfg.seed`) and of the mask of training stream position `SALT`
  (the data seed is `cfg.seed` too): `HELD_OUT` (7) is the seed of the held-out split, of epoch 7's order
  and of block 7's mask; likewise `FINETUNE_ORDER` (3), `FINETUNE_SUBSAMPLE` (11), `CANDIDATE_SCHEDULE`
  (13), `ADAPT_SCHEDULE` (23) and `ADAPT_ORDER` (29). The generators differ (a torch permutation, a
  Bernoulli mask, `random.Random`), so no two streams draw the same numbers for one purpose, but they are
  not independent by construction.
- `numpy.random.SeedSequence` pads short entropy with zeros, so a trailing 0 part changes nothing:
  `derived_seed(s, 0) == derived_seed(s)`. Salts are therefore never 0.

A new stream takes a new salt: not 0, and not one listed here.
"""

from __future__ import annotations

import numpy as np


def derived_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (e.g. run seed, step, micro-batch, rank, salt)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0]) >> 1


DROPOUT = 1
"""MLM training's torch RNG (dropout) per rank: `derived_seed(seed, rank, DROPOUT)` — pre-training,
supernet training, and the evaluator's short candidate runs (seed `evaluate.init_seed`)."""
FINETUNE_DROPOUT = 2
"""Fine-tuning's torch RNG (dropout) per rank: `derived_seed(cfg.seed, rank, FINETUNE_DROPOUT)`."""
FINETUNE_ORDER = 3
"""Seed of fine-tuning's `StreamOrder` over the training split: `derived_seed(cfg.seed, FINETUNE_ORDER)`."""
HELD_OUT = 7
"""The shuffle that picks the held-out MLM blocks: `derived_seed(data seed, HELD_OUT)`."""
FINETUNE_SUBSAMPLE = 11
"""Which training examples `finetune.max_train_examples` keeps: `derived_seed(cfg.seed, FINETUNE_SUBSAMPLE)`."""
CANDIDATE_SCHEDULE = 13
"""Supernet training's candidate draws: the schedule's seed is `derived_seed(cfg.seed, CANDIDATE_SCHEDULE)`,
and step s draws from `random.Random(derived_seed(schedule seed, s, CANDIDATE_SCHEDULE))`."""
ADAPT_SCHEDULE = 23
"""The candidate schedule of supernet adaptation during a search: `derived_seed(cfg.seed, ADAPT_SCHEDULE)`."""
ADAPT_ORDER = 29
"""Seed of the data order of supernet adaptation: `derived_seed(cfg.seed, ADAPT_ORDER)`."""
ADAPT_DROPOUT = 31
"""The torch RNG (dropout) of one adaptation call: `derived_seed(cfg.seed, rank, first step, ADAPT_DROPOUT)`."""
