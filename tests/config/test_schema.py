"""The schema's declared choices and types as the loader enforces them, the internal `source` field, the old
names, and what an empty `supernet.population` resolves to."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest

from autobert_zero.config.load import check_field, config_from_dict, load_config, parse_yaml
from autobert_zero.config.schema import Config, ModelSizes, SearchConfig, SupernetConfig, TrainConfig
from autobert_zero.errors import ConfigError
from autobert_zero.evolve.mutations import Mutation
from autobert_zero.evolve.settings import MutationName, SearchSettings
from tests.support.paths import GENOTYPES, REPO

PRESETS = sorted((REPO / "configs").glob("*.yaml"))
VANILLA = "attention vanilla { return matmul(softmax(scale(matmul(Q, transpose(K)))), V) }\n"


def load(text: str) -> Config:
    return config_from_dict(parse_yaml(text, "c.yaml"), "c.yaml", world_size=1)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(text)
    return str(info.value)


def genotype_file(folder: Path, layers: int, name: str | None = None) -> str:
    path = folder / (name or f"bert{layers}.abz")
    path.write_text(VANILLA + "backbone {\n" + "  attention vanilla\n" * layers + "}\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("text, fragment", [
    ("supernet:\n  strategy: uniforn\n", "'supernet.strategy' must be one of 'population', 'uniform', 'fair', "
                                         "got 'uniforn'"),
    ("supernet:\n  per_branch: [norm, fnn]\n", "'supernet.per_branch[1]' must be one of 'norm', 'ffn', 'uses_v'"),
    ("evaluate:\n  estimator: supernet\n", "'evaluate.estimator' must be one of 'scratch', 'biws'"),
    ("evaluate:\n  size_prior: param\n", "'evaluate.size_prior' must be one of 'params', 'flops', null"),
    ("audit:\n  size_prior: null\n", "'audit.size_prior' must be one of 'params', 'flops', got None"),
    ("search:\n  strategy: anneal\n", "'search.strategy' must be one of 'op', 'evolution', 'random'"),
    ("search:\n  reward: better\n", "'search.reward' must be one of 'fitness', 'improvement'"),
    ("search:\n  adapt_strategy: uniform\n", "'search.adapt_strategy' must be one of 'population', 'fair'"),
    ("search:\n  fitness: real\n", "'search.fitness' must be one of 'evaluate', 'synthetic'"),
    ("search:\n  mutations: [replace-op, swap]\n", "'search.mutations[1]' must be one of 'replace-op', "),
])
def test_choices_name_the_key_and_every_choice(text: str, fragment: str) -> None:
    message = error_of(text)
    assert fragment in message and message.startswith("c.yaml: ")


@pytest.mark.parametrize("text, fragment", [
    ("pretrain:\n  max_steps: '3'\n", "'pretrain.max_steps' must be int, got '3' (str)"),
    ("pretrain:\n  max_steps: true\n", "'pretrain.max_steps' must be int, got True (bool)"),
    ("search:\n  kernels: [3, x]\n", "'search.kernels[1]' must be int, got 'x' (str)"),
    ("search:\n  seed_genotypes: a.abz\n", "'search.seed_genotypes' must be list[str], got 'a.abz' (str)"),
    ("pretrain:\n  batch_size: x\n", "'pretrain.batch_size' must be int | null, got 'x'"),
    ("data:\n  corpus: [a, 3]\n", "'data.corpus' must be str | list[str] | null, got ['a', 3]"),
    ("audit:\n  reference_seeds: [0]\n", "'audit.reference_seeds' must be a list of at least 2 values, got [0]"),
    ("audit:\n  reference_seeds: [0, -1]\n", "'audit.reference_seeds[1]' must be non-negative and at most 4,294,"),
    ("audit:\n  biws_steps: []\n", "'audit.biws_steps' must be a list of at least 1 value, got []"),
    ("search:\n  max_flops_per_token: .nan\n", "'search.max_flops_per_token' must be a finite number"),
    ("deepspeed:\n  1: 2\n", "'deepspeed' has the key 1; keys must be str"),
    ("pretrain:\n  1: 2\n", "unknown key 'pretrain.1' in pretrain"),
    ("search:\n  popsize: 3\n", "did you mean 'search.population_size'?"),
])
def test_types_and_bounds_name_the_key(text: str, fragment: str) -> None:
    assert fragment in error_of(text)


def test_an_unknown_key_is_reported_before_a_bad_value() -> None:
    assert "unknown key 'pretrain.learning_rat'" in error_of("pretrain:\n  lr: fast\n  learning_rat: 1\n")


def test_values_keep_their_types_and_null_sections_take_defaults() -> None:
    cfg = load("pretrain:\n  lr: 1\naudit:\nsearch: null\n")
    assert cfg.pretrain.lr == 1.0 and isinstance(cfg.pretrain.lr, float)
    assert cfg.audit == Config().audit and cfg.search == SearchSettings()
    assert isinstance(cfg.search, SearchSettings) and isinstance(cfg.model, ModelSizes)


def test_source_is_set_by_the_loader_and_refused_in_yaml(tmp_path: Path) -> None:
    message = error_of("source: other.yaml\n")
    assert "unknown key 'source' in the top level" in message and "source," not in message
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\n", encoding="utf-8")
    cfg = load_config(path, world_size=1)
    assert cfg.source == str(path)
    assert dataclasses.replace(cfg, seed=4).source == str(path)  # a plain dataclass: replace keeps it
    assert "source" in dataclasses.asdict(cfg) and "strategy" in dataclasses.asdict(cfg)["search"]


def test_check_field_checks_a_command_line_value_as_the_loader_does() -> None:
    with pytest.raises(ConfigError, match=r"command line: '--hidden' must be positive and at most 65,536, got 0"):
        check_field(ModelSizes, "hidden_size", 0, "--hidden", "command line")
    with pytest.raises(ConfigError, match=r"'--seed' must be int, got True"):
        check_field(Config, "seed", True, "--seed", "command line")
    check_field(Config, "seed", 2**32 - 1, "--seed", "command line")


def test_old_names_still_import() -> None:
    assert SearchConfig is SearchSettings and TrainConfig is Config


def test_mutation_names_are_the_mutations() -> None:
    assert get_args(MutationName) == tuple(m.value for m in Mutation)


def test_evolve_settings_import_neither_train_nor_the_config() -> None:
    code = ("import sys, autobert_zero.evolve.settings; "
            "print([m for m in sys.modules if m.startswith(('autobert_zero.train', 'autobert_zero.config'))])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------
# supernet.population left empty


def test_presets_use_the_default_supernet_strategy() -> None:
    """The shipped configs train supernets as the default does: `population`, the audit's best; but for the
    end-to-end experiment's searches from scratch, pre-registered with `uniform` (the distribution they start
    from: no BERT or Figure-7 seed for a population to hold)."""
    assert SupernetConfig().strategy == "population"
    assert load_config(REPO / "configs" / "end-to-end.yaml", world_size=1).supernet.strategy == "uniform"
    for preset in (p for p in PRESETS if p.name != "end-to-end.yaml"):
        supernet = load_config(preset, world_size=1).supernet
        assert supernet.strategy == "population", preset.name
        assert {Path(p).name for p in supernet.population} == {"bert.abz", "autobert_zero.abz"}, preset.name


def test_an_empty_population_is_the_genotype_the_seeds_and_the_shipped_genotypes() -> None:
    assert load("{}").supernet.population == ["genotypes/bert.abz", "genotypes/autobert_zero.abz"]
    seeds = "search:\n  seed_genotypes: [genotypes/autobert_zero.abz, genotypes/bert.abz]\n"
    assert load("genotype: genotypes/autobert_zero.abz\n" + seeds).supernet.population == [
        "genotypes/autobert_zero.abz", "genotypes/bert.abz"]  # each file once, in order of mention
    assert load(f"genotype: {GENOTYPES / 'bert.abz'}\n").supernet.population == [
        str(GENOTYPES / "bert.abz"), "genotypes/autobert_zero.abz"]  # the same file under another name: once


def test_an_empty_population_keeps_the_genotypes_of_the_hosts_depth(tmp_path: Path) -> None:
    host, seed, deep = genotype_file(tmp_path, 2), genotype_file(tmp_path, 2, "other.abz"), genotype_file(tmp_path, 4)
    missing = str(tmp_path / "missing.abz")
    cfg = load(f"genotype: {host}\nsearch:\n  seed_genotypes: [{seed}, {deep}, {missing}]\n")
    assert cfg.supernet.population == [host, seed, missing]  # 12-layer shipped ones and the 4-layer one left out;
    # the unreadable one kept, so that `abz supernet` names it


@pytest.mark.parametrize("supernet, expected", [
    ({"strategy": "uniform"}, []),
    ({"strategy": "fair"}, ["genotypes/bert.abz", "genotypes/autobert_zero.abz"]),
    ({"strategy": "population", "population": ["genotypes/bert.abz"]}, ["genotypes/bert.abz"]),
])
def test_only_an_empty_population_of_a_population_strategy_is_filled_in(supernet: dict[str, Any],
                                                                         expected: list[str]) -> None:
    assert config_from_dict({"supernet": supernet}, world_size=1).supernet.population == expected
