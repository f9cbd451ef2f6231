"""The tokenizer of a pre-training run: a given WordPiece vocab file, a tokenizer folder, a hub tokenizer,
or a WordPiece vocab trained on the corpus with `tokenizers` and cached by corpus hash.

Trained tokenizers are BERT-style (BertNormalizer, BertPreTokenizer, WordPiece with `##` continuations,
special tokens [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0–4) and saved with `save_pretrained` into
`<cache>/<key>/`, where the key hashes the corpus text, the vocab size and the casing. The folder is
written under a temporary name and renamed into place unless one is already there
(`io.atomic_new_directory`), so concurrent processes (ranks) end up loading one copy.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, BertTokenizer, PreTrainedTokenizerBase

from autobert_zero.config.paths import tokenizer_cache_dir
from autobert_zero.errors import DataError
from autobert_zero.io import atomic_new_directory
from autobert_zero.train.data.corpus import Corpus

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_TRAINER_VERSION = "wordpiece-v2"
"""v2: the same vocabulary in every process (see `train_wordpiece`)."""


def _check_special_tokens(tok: PreTrainedTokenizerBase, source: str) -> PreTrainedTokenizerBase:
    missing = [name for name in ("pad_token", "cls_token", "sep_token", "mask_token") if getattr(tok, name) is None]
    if missing:
        raise DataError(f"tokenizer {source} lacks {', '.join(missing)}; masked-LM pre-training needs "
                        f"[PAD], [CLS], [SEP] and [MASK] tokens")
    return tok


def load_tokenizer(spec: str, lowercase: bool = True) -> PreTrainedTokenizerBase:
    """A tokenizer from a vocab file (one token per line), a `save_pretrained` folder or a hub name."""
    path = Path(spec).expanduser()
    if path.is_file():
        vocab = [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines()]
        if not any(vocab):
            raise DataError(f"vocab file {path} is empty (expected one WordPiece token per line)")
        # transformers 5: BertTokenizer(vocab_file=...) ignores the file; `vocab=` is the working spelling.
        tok: PreTrainedTokenizerBase = BertTokenizer(vocab=str(path), do_lower_case=lowercase)
        return _check_special_tokens(tok, str(path))
    if path.is_dir():
        try:
            tok = AutoTokenizer.from_pretrained(str(path))
        except Exception as exc:
            raise DataError(f"tokenizer folder {path} could not be loaded: {exc} (expected the output of "
                            f"save_pretrained, with tokenizer.json or vocab.txt)") from None
        return _check_special_tokens(tok, str(path))
    if spec.startswith((".", "/", "~")) or path.suffix:
        raise DataError(f"tokenizer path not found: {spec} (expected a vocab file, a tokenizer folder or a "
                        f"hub tokenizer name)")
    try:
        tok = AutoTokenizer.from_pretrained(spec)
    except Exception as exc:
        raise DataError(f"tokenizer '{spec}' is not a local file or folder, and loading it from the hub failed: "
                        f"{type(exc).__name__}: {exc}. Offline machines: give a vocab file "
                        f"(e.g. shared/data/vocab/bert-base-uncased-vocab.txt) or omit data.tokenizer "
                        f"to train one on the corpus") from None
    return _check_special_tokens(tok, spec)


def _iter_texts(corpus: Corpus, batch_size: int = 10_000) -> Iterator[list[str]]:
    for batch in corpus.dataset.iter(batch_size=batch_size):
        yield batch["text"]


def _private_chars(avoid: set[str], count: int) -> list[str]:
    """`count` private-use characters (planes 15 and 16) that are not in `avoid`."""
    pool = (chr(c) for c in (*range(0xF0000, 0xFFFFE), *range(0x100000, 0x10FFFE)))
    chars = [c for c in itertools.islice((c for c in pool if c not in avoid), count)]
    if len(chars) < count:
        raise DataError(f"the corpus uses {count} distinct characters, more than WordPiece training can handle")
    return chars


def train_wordpiece(corpus: Corpus, vocab_size: int, lowercase: bool = True,
                    show_progress: bool = False) -> PreTrainedTokenizerBase:
    """Train a BERT-style WordPiece tokenizer on the corpus (no caching; see `cached_wordpiece`), the same
    vocabulary in every process.

    `tokenizers`' WordPieceTrainer gives its `##` tokens ids in hash-map order, which differs per process and
    breaks ties between equally frequent merges (huggingface/tokenizers#1794): the vocabulary changed from one
    fresh training to the next. So the same BPE merges are computed here with each continuing character
    spelled as its own private-use character — every symbol is then in the initial alphabet, whose ids are in
    character order — and `##` is put back afterwards.
    """
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for texts in _iter_texts(corpus):
        for text in texts:
            counts.update(word for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    alphabet = sorted({c for word in counts for c in word} - {" "})
    continuing = dict(zip(alphabet, _private_chars(set(alphabet), len(alphabet)), strict=True))
    bare = {spelled: c for c, spelled in continuing.items()}

    def spelled(word: str) -> str:
        return word[0] + "".join(continuing[c] for c in word[1:])

    def words() -> Iterator[str]:
        for word, count in sorted(counts.items()):
            yield (spelled(word) + " ") * count

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=show_progress,
                                  initial_alphabet=alphabet)
    tok.train_from_iterator(words(), trainer=trainer, length=len(counts))
    vocab: dict[str, int] = {}
    for token, _ in sorted(tok.get_vocab().items(), key=lambda item: item[1]):
        plain = "".join(bare.get(c, c) for c in token)
        vocab.setdefault(f"##{plain}" if token[0] in bare else plain, len(vocab))
    return BertTokenizer(vocab=vocab, do_lower_case=lowercase, strip_accents=lowercase)


def cache_key(corpus: Corpus, vocab_size: int, lowercase: bool) -> str:
    """Cache entry name of the tokenizer trained on `corpus` with these settings."""
    text = f"{_TRAINER_VERSION}|{corpus.fingerprint}|{vocab_size}|{'uncased' if lowercase else 'cased'}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_wordpiece(corpus: Corpus, vocab_size: int, lowercase: bool = True, cache_dir: str | None = None,
                     show_progress: bool = False) -> PreTrainedTokenizerBase:
    """The WordPiece tokenizer trained on `corpus`, from the cache if there, else trained and cached."""
    target = tokenizer_cache_dir(cache_dir) / cache_key(corpus, vocab_size, lowercase)
    if not target.is_dir():
        with atomic_new_directory(target) as tmp:  # a concurrent process's copy, if first, is kept
            train_wordpiece(corpus, vocab_size, lowercase, show_progress).save_pretrained(str(tmp))
            (tmp / "corpus.txt").write_text(f"{corpus.description}\nsha256 {corpus.fingerprint}\n")
    return AutoTokenizer.from_pretrained(str(target))


def build_tokenizer(spec: str | None, corpus: Corpus, vocab_size: int, lowercase: bool = True,
                    cache_dir: str | None = None, show_progress: bool = False) -> PreTrainedTokenizerBase:
    """The run's tokenizer: `spec` if given (see `load_tokenizer`), else one trained on the corpus."""
    if spec:
        return load_tokenizer(spec, lowercase)
    return cached_wordpiece(corpus, vocab_size, lowercase, cache_dir, show_progress)
