"""The order in which training examples are visited: a pure function of (seed, step), so a resumed run
sees exactly the batches an uninterrupted run would have seen, with no iterator state to save.

Examples form an endless stream of epochs, each a seeded permutation of `range(n)`. Optimizer step `s`
consumes stream positions `[s·B, (s+1)·B)` with B = train_batch_size; within a step, micro-batch `m` of
rank `r` takes the slice starting at `(m·world_size + r)·micro_batch_size`.
"""

from __future__ import annotations

import torch

from autobert_zero.config.load import BatchPlan
from autobert_zero.train.data.seeds import derived_seed


class StreamOrder:
    """Seeded epoch permutations of `n` examples, concatenated into one endless stream."""

    def __init__(self, n: int, seed: int, shuffle: bool = True) -> None:
        assert n > 0
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(derived_seed(self.seed, epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        return self._perms[epoch]

    def positions(self, start: int, count: int) -> torch.Tensor:
        """Example indices at stream positions `[start, start + count)`."""
        out = torch.empty(count, dtype=torch.long)
        pos, filled = start, 0
        while filled < count:
            epoch, offset = divmod(pos, self.n)
            take = min(count - filled, self.n - offset)
            out[filled:filled + take] = self._perm(epoch)[offset:offset + take]
            pos, filled = pos + take, filled + take
        return out

    def micro_batch_start(self, plan: BatchPlan, step: int, micro: int, rank: int) -> int:
        """Stream position of the first example of micro-batch `micro` of step `step` on `rank`."""
        return step * plan.train_batch_size + (micro * plan.world_size + rank) * plan.micro_batch_size

    def micro_batch(self, plan: BatchPlan, step: int, micro: int, rank: int) -> torch.Tensor:
        """Example indices of micro-batch `micro` of optimizer step `step` on `rank` (0-based)."""
        return self.positions(self.micro_batch_start(plan, step, micro, rank), plan.micro_batch_size)
