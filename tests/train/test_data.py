"""Corpora, tokenizers and masked-LM batches: sources, quirks, caching, determinism, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autobert_zero.config.load import BatchPlan
from autobert_zero.errors import DataError
from autobert_zero.train.data.corpus import load_corpus
from autobert_zero.train.data.default_corpus import default_corpus_texts
from autobert_zero.train.data.mlm_blocks import IGNORE_INDEX, MlmData
from autobert_zero.train.data.order import StreamOrder
from autobert_zero.train.data.tokenizer import build_tokenizer, cache_key, load_tokenizer
from tests.support.training import write_corpus


def test_text_folder_with_latin1_crlf_and_blank_lines(tmp_path: Path) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"caf\xe9 au lait\r\n\r\nsecond line\r\n")  # Latin-1 byte, CRLF
    (folder / "README").write_text("  readme text  \n\n")
    (folder / ".hidden").write_text("ignored\n")
    corpus = load_corpus(str(folder))
    assert list(corpus.dataset["text"]) == ["readme text", "caf\ufffd au lait", "second line"]
    assert len(corpus.fingerprint) == 64


def test_json_tsv_and_several_specs(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps({"body": t, "id": i})
                                                   for i, t in enumerate(["one doc", "two docs"])) + "\n")
    (tmp_path / "rows.tsv").write_text('id\tbody\n1\tsays "hi" here\n2\tplain\n')
    corpus = load_corpus([str(tmp_path / "docs.jsonl"), str(tmp_path / "rows.tsv")], text_column="body")
    assert list(corpus.dataset["text"]) == ["one doc", "two docs", 'says "hi" here', "plain"]
    with pytest.raises(DataError, match=r"no column 'text' \(found columns: id, body\)"):
        load_corpus(str(tmp_path / "rows.tsv"))


def test_bad_corpora(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty.txt").write_text("\n   \n\n")
    with pytest.raises(DataError, match="holds no text"):
        load_corpus(str(tmp_path / "empty.txt"))
    with pytest.raises(DataError, match=r"corpus path not found: \./missing\.txt"):
        load_corpus("./missing.txt")
    (tmp_path / "void").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        load_corpus(str(tmp_path / "void"))
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match=r"corpus 'wikitext:wikitext-2-raw-v1' is not a local .* hub dataset failed"):
        load_corpus("wikitext:wikitext-2-raw-v1")


def test_embedded_corpus_is_english_and_deterministic() -> None:
    texts = default_corpus_texts()
    assert len(texts) > 5000 and sum(map(len, texts)) > 1_000_000
    assert load_corpus(None).fingerprint == load_corpus(None).fingerprint
    assert any("def" in t for t in texts[:200])


def test_real_corpora_read_in_place(shared_data: Path) -> None:
    corpus = load_corpus(str(shared_data / "nltk" / "inaugural"))
    assert corpus.num_texts > 1000 and corpus.dataset[0]["text"].startswith("Fellow-Citizens")


def test_trained_tokenizer_is_cached_by_corpus_hash(tmp_path: Path) -> None:
    corpus = load_corpus(str(write_corpus(tmp_path)))
    cache = tmp_path / "cache"
    tok = build_tokenizer(None, corpus, 300, cache_dir=str(cache))
    entry = cache / cache_key(corpus, 300, True)
    assert entry.is_dir() and len(tok) == 300
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    stamp = (entry / "tokenizer.json").stat().st_mtime_ns
    again = build_tokenizer(None, corpus, 300, cache_dir=str(cache))
    assert (entry / "tokenizer.json").stat().st_mtime_ns == stamp  # loaded, not retrained
    assert again("The print statement")["input_ids"] == tok("The print statement")["input_ids"]
    assert cache_key(corpus, 301, True) != cache_key(corpus, 300, True) != cache_key(corpus, 300, False)


def test_vocab_file_tokenizer(shared_data: Path) -> None:
    tok = load_tokenizer(str(shared_data / "vocab" / "bert-base-uncased-vocab.txt"))
    assert tok("Hello world")["input_ids"] == [101, 7592, 2088, 102]
    assert (tok.mask_token_id, tok.pad_token_id) == (103, 0)


def test_bad_tokenizer_specs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tokenizer path not found"):
        load_tokenizer(str(tmp_path / "vocab.txt"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_tokenizer(str(tmp_path / "empty.txt"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="could not be loaded"):
        load_tokenizer(str(tmp_path / "folder"))


def make_data(tmp_path: Path, seed: int = 0) -> MlmData:
    corpus = load_corpus(str(write_corpus(tmp_path)))
    tok = build_tokenizer(None, corpus, 400, cache_dir=str(tmp_path / "cache"))
    return MlmData.build(corpus, tok, 32, 0.15, eval_blocks=8, seed=seed)


def test_blocks_and_masking(tmp_path: Path) -> None:
    data = make_data(tmp_path)
    assert data.train_blocks.shape[1] == 32 and len(data.eval_blocks) == 8
    assert (data.train_blocks[:, 0] == 2).all() and (data.train_blocks[:, -1] == 3).all()
    order = StreamOrder(len(data.train_blocks), seed=0)
    plan = BatchPlan(micro_batch_size=8, gradient_accumulation_steps=1, world_size=1)
    batch = data.train_batch(order, plan, step=3, micro=0, rank=0)
    again = data.train_batch(order, plan, step=3, micro=0, rank=0)
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    other = data.train_batch(order, plan, step=4, micro=0, rank=0)
    assert not torch.equal(batch["labels"], other["labels"])
    predicted = batch["labels"] != IGNORE_INDEX
    assert 0.05 < predicted.float().mean() < 0.3
    assert not predicted[:, 0].any() and not predicted[:, -1].any()  # never [CLS] / [SEP]
    original = data.train_blocks[order.micro_batch(plan, 3, 0, 0)]
    assert torch.equal(batch["labels"][predicted], original[predicted])
    assert torch.equal(batch["input_ids"][~predicted], original[~predicted])
    assert (batch["input_ids"][predicted] == data.mask_token_id).float().mean() > 0.5


def test_stream_order_is_a_seeded_sequence_of_permutations() -> None:
    order = StreamOrder(7, seed=5)
    first, second = order.positions(0, 7), order.positions(7, 7)
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(7))
    assert not torch.equal(first, second)
    assert torch.equal(StreamOrder(7, seed=5).positions(3, 9), torch.cat([first, second])[3:12])
    plan = BatchPlan(micro_batch_size=2, gradient_accumulation_steps=2, world_size=2)
    parts = [order.micro_batch(plan, 1, m, r) for m in range(2) for r in range(2)]
    assert torch.equal(torch.cat(parts), order.positions(8, 8))


_TRAIN_IN_A_FRESH_PROCESS = """
import json, sys
from autobert_zero.train.data.corpus import load_corpus
from autobert_zero.train.data.tokenizer import build_tokenizer
tok = build_tokenizer(None, load_corpus(sys.argv[1]), 512, cache_dir=sys.argv[2])
print(json.dumps(sorted(tok.get_vocab().items(), key=lambda item: item[1])))
"""


def test_wordpiece_training_gives_the_same_vocabulary_in_every_fresh_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.support.paths import REPO
    from tests.support.training import subprocess_env

    corpus = write_corpus(tmp_path)
    vocabularies = []
    for run in range(3):  # a fresh cache each time: each process trains (tokenizers' hash order differs per process)
        proc = subprocess.run([sys.executable, "-c", _TRAIN_IN_A_FRESH_PROCESS, str(corpus), str(tmp_path / f"c{run}")],
                              cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        vocabularies.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert vocabularies[0] == vocabularies[1] == vocabularies[2]
    tokens = [token for token, _ in vocabularies[0]]
    assert len(tokens) == 512 and tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert any(t.startswith("##") and len(t) > 3 for t in tokens)
    assert max(max(t) for t in tokens) < "\U000f0000"  # no private-use spelling left in the vocabulary


def test_eval_corpus_gives_document_disjoint_held_out_blocks(tmp_path: Path) -> None:
    """With `data.eval_corpus` the held-out blocks come from that text alone, and its lines, even when the
    training folder holds them too, are never trained on; the identity of a run names the held-out text."""
    from autobert_zero.train.mlm import prepare_mlm_data
    from tests.support.training import tiny_config

    lines = write_corpus(tmp_path).read_text(encoding="utf-8").splitlines()
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    (train_dir / "a.txt").write_text("\n".join(lines[: len(lines) // 2]) + "\n", encoding="utf-8")
    (train_dir / "b.txt").write_text("\n".join(lines[len(lines) // 2:]) + "\n", encoding="utf-8")
    cfg = tiny_config(tmp_path, data={"corpus": str(train_dir), "eval_corpus": str(train_dir / "b.txt"),
                                      "eval_blocks": 6, "vocab_size": 400,
                                      "tokenizer_cache_dir": str(tmp_path / "cache")})
    prepared = prepare_mlm_data(cfg)
    assert prepared.eval_corpus is not None
    assert set(prepared.corpus.dataset["text"]) == set(lines[: len(lines) // 2]) - set(lines[len(lines) // 2:])
    held_out = {tuple(b.tolist()) for b in prepared.data.eval_blocks}
    assert len(held_out) == 6
    again = prepare_mlm_data(cfg)  # seeded: the same blocks every time
    assert torch.equal(again.data.eval_blocks, prepared.data.eval_blocks)
    # every held-out block is a block of the held-out file, none of the training text
    from autobert_zero.train.data.mlm_blocks import tokenize_blocks
    pool = {tuple(b.tolist()) for b in tokenize_blocks(prepared.eval_corpus, prepared.tokenizer, 32)}
    assert held_out <= pool
    assert not held_out & {tuple(b.tolist()) for b in prepared.data.train_blocks}

    too_many = tiny_config(tmp_path, data={"corpus": str(train_dir), "eval_corpus": str(train_dir / "b.txt"),
                                           "eval_blocks": 100_000, "vocab_size": 400,
                                           "tokenizer_cache_dir": str(tmp_path / "cache")})
    with pytest.raises(DataError, match=r"fewer than data\.eval_blocks = 100000"):
        prepare_mlm_data(too_many)
    only_held_out = tiny_config(tmp_path, data={"corpus": str(train_dir / "b.txt"),
                                                "eval_corpus": str(train_dir / "b.txt"), "vocab_size": 400,
                                                "tokenizer_cache_dir": str(tmp_path / "cache")})
    with pytest.raises(DataError, match=r"holds no text outside data\.eval_corpus"):
        prepare_mlm_data(only_held_out)
