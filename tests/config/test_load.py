"""Strict config loading: unknown/duplicate keys, types, bounds, batch arithmetic, the shipped presets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autobert_zero.config.load import batch_plan, config_from_dict, load_config, parse_yaml
from autobert_zero.errors import ConfigError
from autobert_zero.train.engine import deepspeed_config
from tests.support.paths import REPO

PRESETS = sorted((REPO / "configs").glob("*.yaml"))


def load_text(tmp_path: Path, text: str, world_size: int = 1):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, world_size=world_size)


def error_of(tmp_path: Path, text: str, world_size: int = 1) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, world_size)
    return str(info.value)


def test_unknown_key_names_path_file_and_closest_key(tmp_path: Path) -> None:
    message = error_of(tmp_path, "pretrain:\n  learning_rat: 0.1\n")
    assert "'pretrain.learning_rat'" in message
    assert "c.yaml" in message
    message = error_of(tmp_path, "pretrain:\n  micro_batch: 4\n")
    assert "did you mean 'pretrain.micro_batch_size'" in message


def test_unknown_top_level_section_suggests_closest(tmp_path: Path) -> None:
    assert "did you mean 'deepspeed'" in error_of(tmp_path, "deepspeeed:\n  zero_optimization: {stage: 1}\n")


def test_duplicate_key_names_path_and_lines(tmp_path: Path) -> None:
    message = error_of(tmp_path, "model:\n  hidden_size: 64\n  hidden_size: 128\n")
    assert "duplicate key 'model.hidden_size'" in message and "line 3" in message and "line 2" in message


def test_duplicate_key_inside_deepspeed_section(tmp_path: Path) -> None:
    message = error_of(tmp_path, "deepspeed:\n  bf16: {enabled: true, enabled: false}\n")
    assert "deepspeed.bf16.enabled" in message


@pytest.mark.parametrize("text, fragment", [
    ("pretrain:\n  lr: fast\n", "'pretrain.lr' must be float, got 'fast'"),
    ("pretrain:\n  max_steps: 2.5\n", "'pretrain.max_steps' must be int"),
    ("pretrain:\n  max_steps: -3\n", "'pretrain.max_steps' must be positive and at most 1,000,000,000"),
    ("data:\n  mlm_probability: 1.5\n", "'data.mlm_probability' must be in [0, 1)"),
    ("logging:\n  tensorboard: 1\n", "'logging.tensorboard' must be bool"),
    ("seed: true\n", "'seed' must be int"),
    ("model: 3\n", "'model' must be a mapping"),
])
def test_bad_values_name_the_key_and_expectation(tmp_path: Path, text: str, fragment: str) -> None:
    assert fragment in error_of(tmp_path, text)


def test_exponent_floats_without_dot_parse(tmp_path: Path) -> None:
    assert load_text(tmp_path, "pretrain:\n  lr: 5e-4\n").pretrain.lr == pytest.approx(5e-4)


def test_batch_arithmetic_error_shows_the_equation(tmp_path: Path) -> None:
    text = "pretrain:\n  micro_batch_size: 8\n  gradient_accumulation_steps: 2\n  batch_size: 64\n"
    message = error_of(tmp_path, text, world_size=2)
    assert "pretrain.batch_size = 64" in message
    assert "8 × 2 × 2 = 32" in message
    assert load_text(tmp_path, text.replace("64", "32"), world_size=2).pretrain.batch_size == 32


def test_deepspeed_batch_key_conflict_is_an_error(tmp_path: Path) -> None:
    text = "pretrain:\n  micro_batch_size: 4\nfinetune:\n  micro_batch_size: 4\ndeepspeed:\n  train_batch_size: 8\n"
    message = error_of(tmp_path, text)
    assert "deepspeed.train_batch_size = 8 conflicts with 4" in message
    assert load_text(tmp_path, text.replace("8", "4")).deepspeed["train_batch_size"] == 4


def test_deepspeed_section_is_passed_verbatim_plus_batch_keys(tmp_path: Path) -> None:
    text = ("pretrain:\n  micro_batch_size: 4\n  gradient_accumulation_steps: 3\n"
            "deepspeed:\n  zero_optimization: {stage: 2, overlap_comm: false}\n  gradient_clipping: 0.5\n"
            "  some_future_key: [1, 2]\n")
    cfg = load_text(tmp_path, text, world_size=2)
    ds = deepspeed_config(cfg.deepspeed, batch_plan(cfg, "pretrain", 2))
    assert ds == {"zero_optimization": {"stage": 2, "overlap_comm": False}, "gradient_clipping": 0.5,
                  "some_future_key": [1, 2], "train_batch_size": 24, "train_micro_batch_size_per_gpu": 4,
                  "gradient_accumulation_steps": 3}


def test_cross_field_checks(tmp_path: Path) -> None:
    assert "not divisible" in error_of(tmp_path, "model:\n  hidden_size: 30\n  num_attention_heads: 4\n")
    assert "exceeds model.max_position_embeddings" in error_of(
        tmp_path, "model:\n  max_position_embeddings: 64\ndata:\n  max_seq_length: 128\n"
                  "finetune:\n  max_seq_length: 64\n")
    assert "stage = 4" in error_of(tmp_path, "deepspeed:\n  zero_optimization: {stage: 4}\n")


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    assert "not valid YAML" in error_of(tmp_path, "pretrain: [unclosed\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_yaml("- a\n- b\n", "list.yaml")


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_presets_load_and_every_key_is_commented(preset: Path) -> None:
    cfg = load_config(preset, world_size=1)
    assert cfg.source == str(preset)
    for n, line in enumerate(preset.read_text(encoding="utf-8").splitlines(), start=1):
        if re.match(r"^\s*[A-Za-z_][\w]*\s*:", line):
            assert "#" in line, f"{preset.name}:{n}: key without a comment: {line.strip()}"


def test_presets_have_the_paper_sizes() -> None:
    sizes = {p.stem: load_config(p, world_size=1).model for p in PRESETS}
    assert {"tiny", "small", "base"} <= set(sizes)
    assert (sizes["small"].hidden_size, sizes["small"].num_attention_heads, sizes["small"].intermediate_size) == (
        256, 4, 1024)
    assert (sizes["base"].hidden_size, sizes["base"].num_attention_heads, sizes["base"].intermediate_size) == (
        768, 12, 3072)


def test_config_from_dict_defaults_are_valid() -> None:
    cfg = config_from_dict({}, world_size=1)
    assert cfg.genotype == "genotypes/bert.abz" and cfg.deepspeed == {}
