"""`abz export` of a search folder exports the weights the search scored, and says what they are (issue #16,
part 2): a search scored through a supernet (`biws`) exports the supernet-inherited weights with the supernet's
tokenizer, exactly the weights it scored (with `evaluate.steps` 0 and `search.adapt_steps` 0); a search without
a supernet exports random weights only with `--untrained`; a supernet changed since the search is refused; every
rank folder gets a model card. Real supernet, search and evaluator at tiny sizes; no mocks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from autobert_zero.cli import main
from autobert_zero.config.load import load_config
from autobert_zero.grammar import formula, parse_genotype
from tests.support.training import tiny_config, tiny_yaml, write_genotype


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export_weights")


@pytest.fixture(scope="module")
def supernet_dir(tmp: Path) -> Path:
    """A supernet of `tiny_config(tmp)` trained 4 steps (as tests/train/conftest.py's fixture)."""
    from autobert_zero.train.supernet import train_supernet

    train_supernet(tiny_config(tmp, pretrain={"max_steps": 4, "checkpoint_every": 4}), tmp / "supernet")
    return tmp / "supernet"


@pytest.fixture(scope="module")
def biws_search(tmp: Path, supernet_dir: Path) -> Path:
    """A finished search scored through the supernet with no training: `biws`, 0 steps, no adaptation."""
    config = tiny_yaml(tmp, search={"evaluations": 4, "population_size": 2, "tournament_size": 2, "round_size": 1,
                                    "fitness": "evaluate", "supernet": str(supernet_dir), "adapt_steps": 0},
                       evaluate={"estimator": "biws", "steps": 0, "eval_batch_size": 8})
    assert main(["search", "--config", str(config), "--out", str(tmp / "search")]) == 0
    return tmp / "search"


@pytest.fixture(scope="module")
def synthetic_search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    import yaml

    config = root / "search.yaml"
    config.write_text(yaml.safe_dump({"genotype": str(write_genotype(root, layers=2)), "seed": 0,
                                      "logging": {"progress_bar": False},
                                      "search": {"evaluations": 8, "population_size": 4, "tournament_size": 2,
                                                 "fitness": "synthetic"}}), encoding="utf-8")
    assert main(["search", "--config", str(config), "--out", str(root / "search")]) == 0
    return root / "search"


def history(folder: Path) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in (folder / "history.jsonl").read_text(encoding="utf-8").splitlines()]
    return {line["id"]: line for line in reversed(lines)}  # the first line of each id


def rank_ids(out: Path) -> list[str]:
    ids = []
    for folder in sorted(out.glob("rank*")):
        first = (folder / "genotype.abz").read_text(encoding="utf-8").splitlines()[0]
        ids.append(first.split("id ")[1].strip())
    return ids


def test_the_exported_weights_are_the_scored_weights(biws_search: Path, supernet_dir: Path, tmp_path: Path,
                                                     abz: Any) -> None:
    """Each exported model, loaded back through transformers with its tokenizer, has the held-out MLM loss the
    search recorded for it, on the evaluator's own held-out batches."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    import autobert_zero
    from autobert_zero.train.evaluate import Evaluator
    from autobert_zero.train.mlm import mean_loss

    out = tmp_path / "best"
    done = abz("export", biws_search, "--top", "2", "--out", out)
    assert done.code == 0, done.err
    assert "supernet-inherited" in done.out
    lines = history(biws_search)
    ids = rank_ids(out)
    assert len(ids) == 2
    autobert_zero.register_auto_classes()
    evaluator = Evaluator(load_config(biws_search / "config.yaml"), supernet_dir)
    for rank, candidate in enumerate(ids, start=1):
        hf = out / f"rank{rank}" / "hf"
        model = AutoModelForMaskedLM.from_pretrained(hf)
        tokenizer = AutoTokenizer.from_pretrained(hf)
        assert len(tokenizer) == len(evaluator.tokenizer) and tokenizer.get_vocab() == evaluator.tokenizer.get_vocab()
        assert parse_genotype(model.config.genotype).id == candidate
        with torch.no_grad():
            loss = mean_loss(model, evaluator.eval_batches)
        recorded = lines[candidate]["eval_loss"]
        assert recorded is not None and math.isclose(loss, recorded, rel_tol=0, abs_tol=1e-5), (rank, loss, recorded)


def test_the_model_card_says_what_the_weights_are(biws_search: Path, supernet_dir: Path, tmp_path: Path,
                                                  abz: Any) -> None:
    from autobert_zero.evolve.state import supernet_identity

    out = tmp_path / "best"
    assert abz("export", biws_search, "--top", "2", "--out", out).code == 0
    lines = history(biws_search)
    identity = supernet_identity(supernet_dir)
    for rank, candidate in enumerate(rank_ids(out), start=1):
        card = (out / f"rank{rank}" / "README.md").read_text(encoding="utf-8")
        line = lines[candidate]
        genotype = parse_genotype(line["genotype"])
        assert candidate in card and "supernet-inherited" in card
        for graph in genotype.graphs:
            assert formula(graph) in card
        assert line["genotype"].strip() in card
        assert f"parameters: {line['params']:,} (the exported AutoBertZeroForMaskedLM)" in card
        assert "MFLOPs" in card and f"{line['eval_loss']:.6g}" in card and f"{line['fitness']:.6g}" in card
        assert str(supernet_dir) in card and identity["sha256"] in card and "training steps: 4" in card
        assert "before the search's own adaptation" not in card  # adapt_steps 0: it scored exactly these
        assert "scored exactly these weights" in card
        assert f"rank {rank}" in card and f"Candidate #{line['index']} of {biws_search.resolve()}" in card
    index = (out / "README.md").read_text(encoding="utf-8")
    assert "rank1/README.md" in index and "rank2/README.md" in index and "supernet-inherited" in index


def test_a_search_without_a_supernet_needs_untrained(synthetic_search: Path, tmp_path: Path, abz: Any) -> None:
    out = tmp_path / "best"
    refused = abz("export", synthetic_search, "--top", "2", "--out", out, "--hidden", "16", "--heads", "2",
                  "--intermediate", "32", "--vocab-size", "100")
    assert refused.code == 1 and "internal error" not in refused.err
    assert "synthetic fitness" in refused.err and "--untrained" in refused.err and "--no-hf" in refused.err
    assert not out.exists()
    done = abz("export", synthetic_search, "--top", "2", "--out", out, "--hidden", "16", "--heads", "2",
               "--intermediate", "32", "--vocab-size", "100", "--untrained", "--seed", "3")
    assert done.code == 0, done.err
    card = (out / "rank1" / "README.md").read_text(encoding="utf-8")
    assert "untrained: random initialisation, seed 3" in card and "supernet-inherited" not in card
    assert (out / "rank1" / "hf" / "model.safetensors").is_file() and (out / "rank2" / "README.md").is_file()
    # --no-hf needs no weights: genotypes and cards only; --force replaces the export's own files
    again = abz("export", synthetic_search, "--top", "1", "--out", out, "--no-hf", "--force")
    assert again.code == 0, again.err
    assert sorted(p.name for p in (out / "rank1").iterdir()) == ["README.md", "genotype.abz"]
    assert not (out / "rank2").exists()
    assert "none exported (--no-hf)" in (out / "rank1" / "README.md").read_text(encoding="utf-8")


def test_a_supernet_changed_since_the_search_is_refused(biws_search: Path, supernet_dir: Path, tmp_path: Path,
                                                        abz: Any) -> None:
    weights = supernet_dir / "final" / "model.safetensors"
    original = weights.read_bytes()
    data = bytearray(original)
    data[-1] ^= 1  # other weights, same files
    weights.write_bytes(bytes(data))
    out = tmp_path / "best"
    try:
        refused = abz("export", biws_search, "--top", "2", "--out", out)
    finally:
        weights.write_bytes(original)
    assert refused.code == 1 and "internal error" not in refused.err
    assert f"the supernet {supernet_dir} changed since" in refused.err and "weights sha256" in refused.err
    assert "--untrained" in refused.err
    assert not out.exists()
    moved = supernet_dir.with_name("moved")
    supernet_dir.rename(moved)
    try:
        gone = abz("export", biws_search, "--top", "1", "--out", out)
    finally:
        moved.rename(supernet_dir)
    assert gone.code == 1 and f"the supernet {supernet_dir} that" in gone.err and "is gone" in gone.err
    assert not out.exists()


def test_supernet_weights_keep_the_supernets_sizes(biws_search: Path, tmp_path: Path, abz: Any) -> None:
    out = tmp_path / "best"
    refused = abz("export", biws_search, "--out", out, "--hidden", "64")
    assert refused.code == 1 and "--hidden" in refused.err and "--untrained" in refused.err
    head = abz("export", biws_search, "--out", out, "--head", "classifier")
    assert head.code == 1 and "classification head" in head.err
    assert not out.exists()
