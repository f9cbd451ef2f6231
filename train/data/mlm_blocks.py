"""Masked-LM data: a corpus → fixed-length token blocks → seeded, reproducible masked batches.

The corpus is tokenized without special tokens, concatenated, and cut into blocks of
`[CLS] + (max_seq_length − 2) tokens + [SEP]` (the tail that does not fill a block is dropped), so every
block is full and no padding is needed. A seeded shuffle holds `eval_blocks` out for evaluation, drawn from
the corpus itself or, document-disjoint, from a separate held-out text (`data.eval_corpus`).
Masking follows BERT (15% of tokens: 80% [MASK], 10% a random token, 10% unchanged), each block with a
generator seeded from (seed, its stream position): a batch is a pure function of the step, and the same
global batch is masked the same way however it is split over processes and accumulation steps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from autobert_zero.config.load import BatchPlan
from autobert_zero.errors import DataError
from autobert_zero.train.data.corpus import Corpus
from autobert_zero.train.data.order import StreamOrder
from autobert_zero.train.data.seeds import HELD_OUT, derived_seed

IGNORE_INDEX = -100
"""Label of positions that are not predicted (the default `ignore_index` of cross-entropy)."""
EVAL_STREAM = 1 << 60
"""Seed key of the first held-out block (far beyond any training stream position)."""


def tokenize_blocks(corpus: Corpus, tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> torch.Tensor:
    """All full blocks of the corpus, shape (num_blocks, max_seq_length), dtype int64."""

    def encode(batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        ids = tokenizer(batch["text"], add_special_tokens=False, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)["input_ids"]
        return {"input_ids": ids}

    tokenized = corpus.dataset.map(encode, batched=True, remove_columns=["text"], desc="tokenizing corpus")
    ids_column = tokenized["input_ids"]
    stream = torch.from_numpy(np.fromiter(itertools.chain.from_iterable(ids_column), dtype=np.int64))
    body = max_seq_length - 2
    num_blocks = len(stream) // body
    if num_blocks == 0:
        raise DataError(f"corpus {corpus.description} gives {len(stream)} tokens, fewer than one block of "
                        f"{body} (data.max_seq_length − 2); give more text or a shorter max_seq_length")
    blocks = torch.empty(num_blocks, max_seq_length, dtype=torch.long)
    blocks[:, 0] = tokenizer.cls_token_id
    blocks[:, 1:-1] = stream[: num_blocks * body].view(num_blocks, body)
    blocks[:, -1] = tokenizer.sep_token_id
    return blocks


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, mask_token_id: int, vocab_size: int,
                probability: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of one block: (masked inputs, labels with IGNORE_INDEX where nothing is predicted)."""
    shape = input_ids.shape
    labels = input_ids.clone()
    chosen = torch.bernoulli(torch.full(shape, probability), generator=generator).bool() & ~special
    if not chosen.any():  # a block with nothing to predict adds nothing to learn from: predict one token
        chosen[int((~special).nonzero()[0, 0])] = True
    labels[~chosen] = IGNORE_INDEX
    inputs = input_ids.clone()
    to_mask = torch.bernoulli(torch.full(shape, 0.8), generator=generator).bool() & chosen
    inputs[to_mask] = mask_token_id
    to_random = torch.bernoulli(torch.full(shape, 0.5), generator=generator).bool() & chosen & ~to_mask
    inputs[to_random] = torch.randint(vocab_size, shape, generator=generator)[to_random]
    return inputs, labels


@dataclass
class MlmData:
    """Training and held-out blocks plus everything needed to turn block indices into a masked batch."""

    train_blocks: torch.Tensor
    eval_blocks: torch.Tensor
    special_ids: torch.Tensor
    mask_token_id: int
    vocab_size: int
    probability: float
    seed: int

    @classmethod
    def build(cls, corpus: Corpus, tokenizer: PreTrainedTokenizerBase, max_seq_length: int,
              probability: float, eval_blocks: int, seed: int, eval_corpus: Corpus | None = None) -> MlmData:
        """Blocks of `corpus`; `eval_blocks` of them held out by a seeded draw, or, with `eval_corpus`
        (document-disjoint held-out text), every block of `corpus` trained on and `eval_blocks` drawn from the
        blocks of `eval_corpus` alone."""
        blocks = tokenize_blocks(corpus, tokenizer, max_seq_length)
        generator = torch.Generator().manual_seed(derived_seed(seed, HELD_OUT))
        if eval_corpus is None:
            held = min(eval_blocks, len(blocks) // 10)
            perm = torch.randperm(len(blocks), generator=generator)
            train, evaluation = blocks[perm[held:]], blocks[perm[:held]]
        else:
            pool = tokenize_blocks(eval_corpus, tokenizer, max_seq_length) if eval_blocks else blocks[:0]
            if len(pool) < eval_blocks:
                raise DataError(f"data.eval_corpus {eval_corpus.description} gives {len(pool)} blocks of "
                                f"{max_seq_length} tokens, fewer than data.eval_blocks = {eval_blocks}; give "
                                f"more held-out text or lower data.eval_blocks")
            train, evaluation = blocks, pool[torch.randperm(len(pool), generator=generator)[:eval_blocks]]
        special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        assert tokenizer.mask_token_id is not None
        return cls(train, evaluation, special, tokenizer.mask_token_id, len(tokenizer), probability, seed)

    @property
    def block_length(self) -> int:
        return self.train_blocks.shape[1]

    def masked(self, blocks: torch.Tensor, keys: range) -> dict[str, torch.Tensor]:
        """A model batch from blocks; block i is masked with a generator seeded from (seed, keys[i])."""
        special = torch.isin(blocks, self.special_ids)
        rows = [mask_tokens(block, special[i], self.mask_token_id, self.vocab_size, self.probability,
                            torch.Generator().manual_seed(derived_seed(self.seed, key)))
                for i, (block, key) in enumerate(zip(blocks, keys, strict=True))]
        inputs = torch.stack([r[0] for r in rows])
        return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs),
                "token_type_ids": torch.zeros_like(inputs), "labels": torch.stack([r[1] for r in rows])}

    def train_batch(self, order: StreamOrder, plan: BatchPlan, step: int, micro: int, rank: int
                    ) -> dict[str, torch.Tensor]:
        """The masked micro-batch `micro` of optimizer step `step` on `rank`."""
        start = order.micro_batch_start(plan, step, micro, rank)
        keys = range(start, start + plan.micro_batch_size)
        return self.masked(self.train_blocks[order.positions(start, plan.micro_batch_size)], keys)

    def eval_batches(self, batch_size: int, offset: int = 0, limit: int | None = None
                     ) -> list[dict[str, torch.Tensor]]:
        """The held-out blocks [offset, offset + limit) in order (limit None: to the end), each masked with a
        fixed seed keyed by its position among all held-out blocks (the same every call, whatever the slice)."""
        n = len(self.eval_blocks) if limit is None else min(len(self.eval_blocks), offset + limit)
        return [self.masked(self.eval_blocks[i:min(n, i + batch_size)],
                            range(EVAL_STREAM + i, EVAL_STREAM + min(n, i + batch_size)))
                for i in range(offset, n, batch_size)]
