"""Config values are range-checked at load time, and YAML documents are bounded.

An alias bomb or a recursive alias is refused in well under a second; an infinite learning rate, a seed
wider than numpy's 32 bits, a vocabulary the WordPiece trainer aborts on, or sizes no machine can hold are
`ConfigError`s naming the key, before anything is tokenised or allocated.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autobert_zero.config.load import load_config, parse_yaml
from autobert_zero.errors import ConfigError

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize("text, fragment", [
    (BOMB, "expands to more than"),
    ("a: &a [*a]\n", "recursive alias *a"),
    ("deepspeed: &d {x: *d}\n", "recursive alias *d"),
    ("x: " + "[" * 3000 + "]" * 3000 + "\n", "nest deeper than"),
])
def test_hostile_yaml_is_refused_quickly(text: str, fragment: str) -> None:
    # Refused by a structural bound (expansion count, alias cycle, depth) before anything is expanded: without
    # the bound the bomb expands exponentially and the test never finishes. No wall-clock assertion.
    with pytest.raises(ConfigError, match=r"f\.yaml: not valid YAML") as info:
        parse_yaml(text, "f.yaml")
    assert fragment in str(info.value)


def test_small_aliases_still_work() -> None:
    assert parse_yaml("a: &x {stage: 1}\nb: *x\n", "f.yaml") == {"a": {"stage": 1}, "b": {"stage": 1}}


@pytest.mark.parametrize("text, fragment", [
    ("pretrain:\n  lr: .inf\n", "'pretrain.lr' must be a finite number, got inf"),
    ("pretrain:\n  lr: .nan\n", "'pretrain.lr' must be a finite number"),
    ("finetune:\n  lr: 0\n", "'finetune.lr' must be positive and at most 10.0, got 0"),
    ("seed: 1234567890123456789012345678901\n", "'seed' must be non-negative and at most 4,294,967,295"),
    ("data:\n  vocab_size: 100000000000\n", "'data.vocab_size' must be between 6 and 1,000,000"),
    ("data:\n  vocab_size: 3\n", "'data.vocab_size' must be between 6 and 1,000,000, got 3"),
    ("model:\n  hidden_size: 1000000000\n", "'model.hidden_size' must be positive and at most 65,536"),
    ("model:\n  hidden_size: 65536\n  num_attention_heads: 1\n  intermediate_size: 262144\n"
     "data:\n  vocab_size: 1000000\n", "more than this machine's"),
    ("pretrain:\n  micro_batch_size: 99999999999\n", "'pretrain.micro_batch_size' must be positive and at most"),
    # empty choice lists and layer counts past the language's bound
    ("search:\n  mutations: []\n", "'search.mutations' must be a list of at least 1 value, got []"),
    ("search:\n  ops: []\n", "'search.ops' must be a list of at least 1 value"),
    ("search:\n  kernels: []\n", "'search.kernels' must be a list of at least 1 value"),
    ("search:\n  num_layers: 100000\n", "'search.num_layers' must be positive and at most 256"),
])
def test_out_of_range_values_are_refused_at_load(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, world_size=1)
    assert fragment in str(info.value) and "c.yaml" in str(info.value)


@pytest.mark.parametrize("text", [
    "seed: '" + "x" * 1_000_000 + "'\n",
    "model:\n  hidden_size: [" + ", ".join(["1"] * 5_000) + "]\n",
    "pretrain:\n  ? " + "k" * 1_000_000 + "\n  : 1\n",  # an explicit key: YAML caps implicit ones at 1,024
])
def test_error_messages_cut_the_values_they_echo(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, world_size=1)
    assert len(str(info.value)) < 600 and "characters)" in str(info.value)


def test_a_shipped_config_name_loads_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/tiny.yaml", world_size=1).source.endswith("tiny.yaml")
